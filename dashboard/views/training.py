"""Training: loss / lr / throughput curves, the realised data mix, the lineage tree with scores."""

from __future__ import annotations

import common
import data
import plotly.graph_objects as go
import streamlit as st


def render(url: str) -> None:
    st.title("Training")
    runs = data.training_runs(url)
    if runs.empty:
        st.info("No training run yet: `medarena train pretrain -r tiny-demo -m tiny-medical-base`.")
        return
    labels = {
        f"run {row.run_id}: {row.kind} {row.recipe_name}, {row.base} -> {row.output or '?'} "
        f"({row.status})": int(row.run_id)
        for row in runs.itertuples()
    }
    run_id = labels[st.selectbox("Training run", list(labels), key="train_run")]
    run = runs.set_index("run_id").loc[run_id]
    cards = st.columns(4)
    cards[0].metric("Status", str(run["status"]))
    cards[1].metric("Tokens seen", f"{int(run['tokens_seen']):,}")
    cards[2].metric("World size", f"{int(run['world_size'])}")
    wall = run["wall_seconds"]
    cards[3].metric("Wall time", "-" if wall != wall or wall is None else f"{wall:.0f} s")

    steps = data.training_steps(url, run_id)
    if steps.empty:
        st.info("This run recorded no step metrics.")
    else:
        charts = st.columns(3)
        for column, (name, title) in zip(
            charts,
            (("loss", "loss"), ("lr", "learning rate"), ("tokens_per_s", "tokens / s")),
            strict=True,
        ):
            column.plotly_chart(curve(steps, name, title), key=f"train_{name}")
        with st.expander("Step metrics"):
            st.dataframe(steps, hide_index=True, key="train_steps")

    st.subheader("Realised data mix")
    mix = data.data_mix(url, run_id)
    if mix.empty:
        st.caption("No data mix recorded for this run.")
    else:
        st.dataframe(mix, hide_index=True, key="train_mix")

    st.subheader("Lineage")
    metric = common.metric_picker(url, "train_metric")
    tree = data.lineage(url, str(run["base"]), metric)
    st.caption(
        f"Base -> continual pretraining -> instruction tuning, from parent links; each node's "
        f"latest measured {metric} per task and setting."
    )
    st.dataframe(tree.drop(columns=["variant"]), hide_index=True, key="train_lineage")


def curve(steps, name: str, title: str) -> go.Figure:
    figure = go.Figure(go.Scatter(x=steps["step"], y=steps[name], mode="lines+markers"))
    figure.update_layout(title=title, xaxis_title="step", height=300, margin={"t": 40})
    return figure


common.guarded(render)
