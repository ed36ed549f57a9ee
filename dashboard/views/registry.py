"""Registry: families, variants, recipes and chat templates, as synced into the database."""

from __future__ import annotations

import common
import data
import streamlit as st


def render(url: str) -> None:
    st.title("Registry")
    variants = data.variants(url)
    parents = variants.set_index("id")["variant"]
    variants = variants.assign(parent=variants["parent_id"].map(parents))
    st.subheader(f"{len(data.families(url))} families")
    st.dataframe(data.families(url), hide_index=True, key="reg_families")
    st.subheader(f"{len(variants)} variants")
    columns = [
        "variant",
        "family",
        "params_b",
        "context_length",
        "quant_method",
        "quant_bits",
        "chat_template",
        "instruction_tuned",
        "gated",
        "parent",
        "recipes",
        "in_registry",
    ]
    st.dataframe(variants[columns], hide_index=True, key="reg_variants")
    st.subheader("Recipes")
    recipes = variants[variants["recipes"] != ""][["recipes", "variant", "parent"]]
    st.dataframe(recipes.sort_values("recipes"), hide_index=True, key="reg_recipes")
    st.subheader("Chat templates")
    templates = (
        variants.dropna(subset=["chat_template"])
        .groupby("chat_template")["variant"]
        .agg(lambda names: ", ".join(sorted(names)))
        .reset_index()
        .rename(columns={"variant": "variants"})
    )
    st.dataframe(templates, hide_index=True, key="reg_templates")


common.guarded(render)
