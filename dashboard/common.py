"""What every view shares: one guard so no traceback reaches the page, and pickers."""

from __future__ import annotations

from collections.abc import Callable

import data
import streamlit as st


def guarded(render: Callable[[str], None]) -> None:
    """Run a view on the app's database; any error becomes a one-line message."""
    try:
        render(data.db_url())
    except Exception as exc:
        st.error(f"This view could not be shown: {type(exc).__name__}: {exc}")


def metric_picker(url: str, key: str, default: str = "acc") -> str:
    names = data.metric_names(url)
    index = names.index(default) if default in names else 0
    return st.selectbox("Metric", names, index=index, key=key)


def task_picker(url: str, key: str) -> str | None:
    names = data.tasks(url)
    if not names:
        st.info("No completed evaluation run yet.")
        return None
    return st.selectbox("Task", names, key=key)
