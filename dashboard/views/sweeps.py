"""Sweeps: the cells evaluation sweeps (`medarena sweep run`) are running or failed on, read
from the workers' claims and refreshed while the page is open, so a SLURM array can be watched
as it runs; finished cells are results (the leaderboard and the other views)."""

from __future__ import annotations

import common
import data
import streamlit as st

REFRESH_S = 15


def render(url: str) -> None:
    st.title("Sweeps")
    st.caption(
        "Cells held by sweep workers (host, process, SLURM job) and cells that failed, with "
        f"the error; this page re-reads them every {REFRESH_S} s. Done and pending cells of a "
        "sweep file: `medarena sweep status FILE`."
    )
    claims(url)


@st.fragment(run_every=REFRESH_S)
def claims(url: str) -> None:
    frame = data.sweep_claims(url)
    if frame.empty:
        st.info(
            "No sweep cell is running or failed. Start one with `medarena sweep run FILE` "
            "(`--workers N` here, `--slurm` on a cluster); its results appear in the other "
            "views as cells complete."
        )
        return
    for sweep, cells in frame.groupby("sweep", sort=True):
        st.subheader(str(sweep))
        counts = cells["state"].value_counts()
        columns = st.columns(3)
        for column, state in zip(columns, ("running", "lease expired", "failed"), strict=True):
            column.metric(state, int(counts.get(state, 0)))
        st.dataframe(cells.drop(columns=["sweep"]), hide_index=True, key=f"sweep_cells_{sweep}")


common.guarded(render)
