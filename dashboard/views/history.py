"""History: a metric over time (every run of a model on a task) and over checkpoints (the
variants of its lineage, each produced by a training run)."""

from __future__ import annotations

import common
import data
import plotly.graph_objects as go
import streamlit as st


def render(url: str) -> None:
    st.title("History")
    left, middle, right = st.columns(3)
    with left:
        task = common.task_picker(url, "hist_task")
    if task is None:
        return
    names = sorted(data.latest_runs(url, task)["variant"].unique())
    variant = middle.selectbox("Model", names, key="hist_variant")
    with right:
        metric = common.metric_picker(
            url, f"hist_metric_{task}", default=data.default_metric(url, task)
        )

    st.subheader("Over time")
    runs = data.history(url, variant, task, metric)
    if runs.empty:
        st.info(f"No completed run of {variant} on {task} has {metric}.")
    else:
        figure = go.Figure()
        for (mode, shots), group in runs.groupby(["scoring_mode", "shots"]):
            figure.add_trace(
                go.Scatter(
                    x=group["created_at"],
                    y=group["value"],
                    mode="lines+markers",
                    name=f"{mode}, {shots}-shot",
                    error_y={
                        "type": "data",
                        "array": (group["ci_high"] - group["value"]).fillna(0),
                        "arrayminus": (group["value"] - group["ci_low"]).fillna(0),
                    },
                )
            )
        figure.update_layout(yaxis_title=metric, height=340, margin={"t": 20})
        st.plotly_chart(figure, key="hist_time")
        st.dataframe(runs, hide_index=True, key="hist_runs")

    st.subheader("Over checkpoints")
    st.caption(
        "Checkpoints are the variants of this model's lineage (parent links; each trained one "
        "records the run that produced it), with their latest score on this task. Intermediate "
        "checkpoints of one training run are not evaluated separately."
    )
    tree = data.lineage(url, variant, metric)
    columns = [c for c in tree.columns if c.startswith(f"{task} (")]
    st.dataframe(
        tree[["depth", "node", "produced_by", *columns]], hide_index=True, key="hist_lineage"
    )


common.guarded(render)
