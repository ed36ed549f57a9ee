"""Reproductions: every `medarena reproduce` report, a published result set against what was
measured under the same protocol, with its verdict and every known mismatch."""

from __future__ import annotations

import common
import data
import streamlit as st

VERDICTS = ("reproduced", "not reproduced", "not comparable")


def render(url: str) -> None:
    st.title("Reproductions")
    frame = data.reproductions(url)
    if frame.empty:
        st.info("No reproduction report yet.")
        st.code("medarena reproduce --protocol PROTOCOL --model MODEL", language="bash")
        return
    protocols = st.multiselect("Protocol", sorted(frame["protocol"].unique()), key="rep_protocol")
    shown = frame[frame["protocol"].isin(protocols)] if protocols else frame
    st.caption(
        "**reproduced**: the published value lies in the measured 95% CI; **not reproduced**: it "
        "does not; **not comparable**: something known differs (items, split, shots, an unmapped "
        "task), named in *mismatches*. Newest first."
    )
    counts = shown["verdict"].value_counts()
    for column, verdict in zip(st.columns(len(VERDICTS)), VERDICTS, strict=True):
        column.metric(verdict, int(counts.get(verdict, 0)))
    number = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(
        shown.drop(columns="eval_run_ids"),
        hide_index=True,
        column_config={
            name: number for name in ("published", "measured", "ci_low", "ci_high", "sd")
        },
        key="rep_table",
    )


common.guarded(render)
