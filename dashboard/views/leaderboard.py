"""Leaderboard: models x tasks for one metric; measured (with CIs) and published, filterable."""

from __future__ import annotations

import common
import data
import pandas as pd
import plotly.graph_objects as go
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
    sizes = sorted(frame["params_b"].dropna().unique())  # NaN: undisclosed (an API model)
    low, high = (
        middle.select_slider("Size (B parameters)", sizes, (sizes[0], sizes[-1]), key="lb_size")
        if len(sizes) > 1
        else (sizes[0], sizes[0])
        if sizes
        else (None, None)
    )
    measured_modes = sorted(frame.loc[frame["source"] == data.MEASURED, "scoring_mode"].unique())
    modes = right.multiselect("Scoring mode", measured_modes, key="lb_mode")
    published = last.checkbox("Published results", value=True, key="lb_published")

    # a size the provider never published stays in every size range
    shown = frame[frame["params_b"].between(low, high) | frame["params_b"].isna()]
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
    st.plotly_chart(chart(shown, metric), key="lb_chart")
    table = pivot(shown)
    tasks = [task for task in table.columns if task not in PIVOT_INDEX]
    # a model not evaluated on a task is a blank cell, not "None"
    styled = table.style.format("{:.4f}", subset=tasks, na_rep="")
    st.dataframe(styled, hide_index=True, key="lb_pivot")
    st.subheader("With confidence intervals")
    columns = ["variant", "family", "params_b", "task", "setting", "value", "ci_low", "ci_high"]
    st.dataframe(
        shown[
            [
                *columns,
                "n",
                "contaminated",
                "source",
                "protocol",
                "shots",
                "beside_measured",
                "unmapped",
                "reference",
            ]
        ],
        hide_index=True,
        column_config={"value": NUMBER, "ci_low": NUMBER, "ci_high": NUMBER},
        key="lb_long",
    )
    usage(url)


def usage(url: str) -> None:
    """Tokens and cost of the latest runs that went through an API, with their total."""
    frame = data.api_usage(url)
    if frame.empty:
        return
    st.subheader("API usage and cost")
    costs = frame["cost_usd"]
    total = "unknown" if costs.isna().any() else f"${costs.sum():,.4f}"
    st.caption(
        f"What the API billed for the latest completed runs: tokens in / out and US dollars at "
        f"the prices the variant declares (blank: it declares none). Total: {total}."
    )
    st.dataframe(
        frame.rename(columns={"input_tokens": "tokens_in", "output_tokens": "tokens_out"}),
        hide_index=True,
        column_config={"cost_usd": st.column_config.NumberColumn("USD", format="%.4f")},
        key="lb_usage",
    )


def chart(frame: pd.DataFrame, metric: str) -> go.Figure:
    """Measured values as bars with their 95% CIs, published ones as diamonds (labelled with
    their protocol), grouped by task."""
    figure = go.Figure()
    measured = frame[frame["source"] == data.MEASURED]
    for label, group in measured.groupby(measured["variant"] + " (" + measured["setting"] + ")"):
        figure.add_trace(
            go.Bar(
                name=label,
                x=group["task"],
                y=group["value"],
                error_y={
                    "type": "data",
                    "array": (group["ci_high"] - group["value"]).fillna(0),
                    "arrayminus": (group["value"] - group["ci_low"]).fillna(0),
                },
            )
        )
    published = frame[frame["source"] == data.PUBLISHED]
    labels = published["variant"] + " (published, " + published["protocol"].fillna("?") + ")"
    for label, group in published.groupby(labels):
        figure.add_trace(
            go.Scatter(
                name=label,
                x=group["task"],
                y=group["value"],
                mode="markers",
                marker={"symbol": "diamond", "size": 11},
            )
        )
    figure.update_layout(barmode="group", yaxis_title=metric, height=380, margin={"t": 20})
    return figure


PIVOT_INDEX = ["variant", "source", "setting", "reference"]
NUMBER = st.column_config.NumberColumn(format="%.4f")


def pivot(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows: variant, source, setting and reference, measured first; one column per task."""
    if frame.empty:
        return pd.DataFrame()
    table = frame.pivot_table(index=PIVOT_INDEX, columns="task", values="value", aggfunc="first")
    table.columns.name = None
    table = table.reset_index()
    # measured rows first, the citation last: the numbers are what the reader scans
    table = table.sort_values(["source", "variant"], key=_measured_first, kind="stable")
    return table[[c for c in table.columns if c != "reference"] + ["reference"]]


def _measured_first(column: pd.Series) -> pd.Series:
    return column.map({data.MEASURED: 0, data.PUBLISHED: 1}) if column.name == "source" else column


common.guarded(render)
