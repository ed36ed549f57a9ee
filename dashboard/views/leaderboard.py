"""Leaderboard: models x tasks for one metric; measured (with CIs) and published, filterable."""

from __future__ import annotations

import common
import data
import pandas as pd
import streamlit as st


def render(url: str) -> None:
    st.title("Leaderboard")
    metric = common.metric_picker(url, "lb_metric")
    frame = data.leaderboard(url, metric)
    if frame.empty:
        st.info(f"No measured or published {metric} yet.")
        return
    left, middle, right, last = st.columns(4)
    families = left.multiselect("Family", sorted(frame["family"].unique()), key="lb_family")
    sizes = sorted(frame["params_b"].dropna().unique())
    low, high = (
        middle.select_slider("Size (B parameters)", sizes, (sizes[0], sizes[-1]), key="lb_size")
        if len(sizes) > 1
        else (sizes[0], sizes[0])
    )
    measured_modes = sorted(frame.loc[frame["source"] == data.MEASURED, "scoring_mode"].unique())
    modes = right.multiselect("Scoring mode", measured_modes, key="lb_mode")
    published = last.checkbox("Published results", value=True, key="lb_published")

    shown = frame[frame["params_b"].between(low, high)]
    if families:
        shown = shown[shown["family"].isin(families)]
    if modes:
        shown = shown[(shown["source"] != data.MEASURED) | shown["scoring_mode"].isin(modes)]
    if not published:
        shown = shown[shown["source"] == data.MEASURED]
    st.caption(
        "**measured**: the latest completed run in this database (95% bootstrap CI); "
        "**published**: reported by the cited paper or model card, not measured here. "
        "Click a column header to sort."
    )
    st.subheader(f"{metric}: models x tasks")
    st.dataframe(pivot(shown), key="lb_pivot")
    st.subheader("With confidence intervals")
    columns = ["variant", "family", "params_b", "task", "setting", "value", "ci_low", "ci_high"]
    st.dataframe(shown[[*columns, "n", "source"]], hide_index=True, key="lb_long")


def pivot(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows: variant, source and setting; one column per task."""
    if frame.empty:
        return pd.DataFrame()
    table = frame.pivot_table(
        index=["variant", "source", "setting"], columns="task", values="value", aggfunc="first"
    )
    table.columns.name = None
    return table.reset_index()


common.guarded(render)
