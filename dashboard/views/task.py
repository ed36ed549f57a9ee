"""Task: each model's score with its CI as bars, and the per-item rows of one run."""

from __future__ import annotations

import common
import data
import plotly.graph_objects as go
import streamlit as st


def render(url: str) -> None:
    st.title("Task")
    left, right = st.columns(2)
    with left:
        task = common.task_picker(url, "task_task")
    if task is None:
        return
    with right:
        metric = common.metric_picker(
            url, f"task_metric_{task}", default=data.default_metric(url, task)
        )
    frame = data.leaderboard(url, metric)
    rows = frame[(frame["task"] == task) & (frame["source"] == data.MEASURED)]
    if rows.empty:
        st.info(f"No measured {metric} on {task}.")
        return
    rows = rows.assign(label=rows["variant"] + " (" + rows["setting"] + ")")
    st.plotly_chart(bars(rows, metric), key="task_bars")
    st.dataframe(
        rows[["variant", "setting", "value", "ci_low", "ci_high", "n", "contaminated", "run_id"]],
        hide_index=True,
        key="task_scores",
    )
    st.subheader("Items")
    labels = dict(
        zip(rows["label"] + ", run " + rows["run_id"].astype(str), rows["run_id"], strict=True)
    )
    choice = st.selectbox("Run", list(labels), key="task_run")
    items = data.predictions(url, int(labels[choice]))
    st.caption(f"{len(items)} items shown (first {data.ITEM_LIMIT} by item id at most).")
    st.dataframe(items, hide_index=True, key="task_items")


def bars(rows, metric: str) -> go.Figure:
    """One bar per model and setting, with the 95% CI as error bars."""
    low = rows["ci_low"].fillna(rows["value"])
    high = rows["ci_high"].fillna(rows["value"])
    figure = go.Figure(
        go.Bar(
            x=rows["label"],
            y=rows["value"],
            error_y={
                "type": "data",
                "array": high - rows["value"],
                "arrayminus": rows["value"] - low,
            },
        )
    )
    figure.update_layout(yaxis_title=metric, height=380, margin={"t": 20})
    return figure


common.guarded(render)
