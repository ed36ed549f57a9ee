"""The medarena dashboard: `medarena dashboard [--db URL] [--port P]` starts it on 127.0.0.1.

Read-only over the results store. The app checks the database first: an empty one shows how to
produce results, an older schema says to run `medarena db upgrade`; no view shows a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the views import data and common from here
    sys.path.insert(0, str(HERE))

import data  # noqa: E402
import streamlit as st  # noqa: E402

PAGES = [
    ("views/leaderboard.py", "Leaderboard", ":material/leaderboard:"),
    ("views/task.py", "Task", ":material/assignment:"),
    ("views/head_to_head.py", "Head-to-head", ":material/compare_arrows:"),
    ("views/training.py", "Training", ":material/model_training:"),
    ("views/history.py", "History", ":material/timeline:"),
    ("views/reproductions.py", "Reproductions", ":material/fact_check:"),
    ("views/sweeps.py", "Sweeps", ":material/grid_view:"),
    ("views/sql.py", "SQL", ":material/database:"),
    ("views/registry.py", "Registry", ":material/inventory_2:"),
]


def main() -> None:
    st.set_page_config(page_title="medarena", page_icon=":material/monitoring:", layout="wide")
    try:
        url = data.db_url()
        problem = data.database_problem(url)
    except Exception as exc:
        url, problem = "?", ("error", f"{type(exc).__name__}: {exc}")
    with st.sidebar:
        st.caption(f"Database: `{url}`")
        if st.button("Refresh data", icon=":material/refresh:", key="refresh"):
            data.refresh()
    if problem is not None:
        kind, message = problem
        st.title("medarena")
        if kind == "empty":
            st.info(message)
            st.code(data.PRODUCE_RESULTS, language="bash")
            st.caption("Then press Refresh data.")
        else:
            st.error(message)
        st.stop()
    pages = [
        st.Page(str(HERE / path), title=title, icon=icon, default=index == 0)
        for index, (path, title, icon) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()
