"""Head-to-head: two variants on one task, paired statistics and the items where they differ."""

from __future__ import annotations

import common
import data
import pandas as pd
import streamlit as st


def render(url: str) -> None:
    st.title("Head-to-head")
    task = common.task_picker(url, "h2h_task")
    if task is None:
        return
    runs = data.latest_runs(url, task)
    settings = sorted(set(zip(runs["scoring_mode"], runs["shots"], strict=True)))
    left, middle, right = st.columns(3)
    setting = left.selectbox(
        "Setting", settings, format_func=lambda s: f"{s[0]}, {s[1]}-shot", key="h2h_setting"
    )
    in_setting = runs[(runs["scoring_mode"] == setting[0]) & (runs["shots"] == setting[1])]
    run_ids = dict(zip(in_setting["variant"], in_setting["run_id"], strict=True))
    names = sorted(run_ids)
    if len(names) < 2:
        st.info(f"Only {len(names)} variant(s) ran {task} in this setting: nothing to compare.")
        return
    variant_a = middle.selectbox("Model A", names, index=0, key="h2h_a")
    variant_b = right.selectbox("Model B", names, index=1, key="h2h_b")
    metric = st.selectbox(
        "Per-item metric",
        data.paired_metrics(url, int(run_ids[variant_a])),
        key=f"h2h_metric_{task}",
    )
    if variant_a == variant_b:
        st.info("Pick two different models.")
        return
    result = data.head_to_head(url, variant_a, variant_b, task, setting, metric)
    stats = result.stats
    cards = st.columns(6)
    cards[0].metric(f"A: {variant_a}", f"{stats.mean_a:.4f}")
    cards[1].metric(f"B: {variant_b}", f"{stats.mean_b:.4f}")
    cards[2].metric(
        "A - B (95% CI)",
        f"{stats.difference:+.4f}",
        f"[{stats.ci_low:+.4f}, {stats.ci_high:+.4f}]",
        delta_color="off",
        delta_arrow="off",
    )
    cards[3].metric("A wins / B wins / ties", f"{stats.wins} / {stats.losses} / {stats.ties}")
    cards[4].metric(f"p ({stats.test})", f"{stats.p_value:.4g}")
    cards[5].metric("Items compared", f"{stats.n}")
    if stats.only_in_a or stats.only_in_b:
        st.warning(
            f"Compared on the {stats.n} items both runs scored: {stats.only_in_a} only in A's run "
            f"{result.run_a.id}, {stats.only_in_b} only in B's run {result.run_b.id}."
        )
    st.caption(
        f"Runs {result.run_a.id} (A) and {result.run_b.id} (B), the latest completed of each. "
        "Wins: items where A scores higher. The p-value is the exact two-sided binomial test on "
        "the items where they differ; the CI is a paired bootstrap over items."
    )
    split = data.contamination_split(url, variant_a, variant_b, task, setting, metric)
    if split is not None:
        contamination(split)
    st.subheader("Items where they differ")
    differing = differences(result.pairs, metric)
    st.caption(f"{len(differing)} of {stats.n} items")
    st.dataframe(differing, hide_index=True, key="h2h_items")


def contamination(split) -> None:
    """Clean and contaminated items apart (`medarena contamination`), and the paired test on
    the clean ones."""
    st.subheader("Clean and contaminated items")
    rows = [
        {
            "items": subset.name,
            "n": subset.n,
            "A": subset.mean_a,
            "A 95% CI": f"[{subset.ci_a[0]:.4f}, {subset.ci_a[1]:.4f}]",
            "B": subset.mean_b,
            "B 95% CI": f"[{subset.ci_b[0]:.4f}, {subset.ci_b[1]:.4f}]",
        }
        for subset in split.subsets
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="h2h_contamination")
    checks = ", ".join(
        f"{name}: check {check}" if check else f"{name}: not checked"
        for name, check in split.checks.items()
    )
    clean = split.clean
    paired = (
        f" On the clean items: A - B {clean.difference:+.4f} "
        f"[{clean.ci_low:+.4f}, {clean.ci_high:+.4f}], p {clean.p_value:.4g} ({clean.test})."
        if clean is not None
        else " No clean item to compare."
    )
    st.caption(f"Contaminated: flagged by either model's latest check ({checks}).{paired}")


def differences(pairs, metric: str) -> pd.DataFrame:
    """Side by side: gold, each model's answer or output and its per-item value."""
    from medarena.compare import item_values

    rows = []
    for a, b in pairs:
        value_a = item_values([a], metric)[a.item_id]
        value_b = item_values([b], metric)[b.item_id]
        if value_a == value_b:
            continue
        rows.append(
            {
                "item_id": a.item_id,
                "gold": a.gold,
                "A answer": a.parsed_answer if a.parsed_answer is not None else a.raw_output,
                "B answer": b.parsed_answer if b.parsed_answer is not None else b.raw_output,
                f"A {metric}": value_a,
                f"B {metric}": value_b,
                "prompt": a.prompt,
            }
        )
    return pd.DataFrame(rows)


common.guarded(render)
