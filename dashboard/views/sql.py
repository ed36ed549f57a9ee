"""SQL: a read-only query box with the examples of docs/queries.md, a time limit, results and
CSV download."""

from __future__ import annotations

import common
import data
import pandas as pd
import streamlit as st

from medarena.errors import QueryTimeout, StoreError, WriteRefused

OWN = "(your own query)"


def render(url: str) -> None:
    st.title("SQL")
    st.caption(
        "Read-only: one SELECT / WITH / EXPLAIN statement; anything that could write is refused "
        "and the database is left unchanged. A query running past the time limit is stopped."
    )
    examples = data.example_queries()
    # opens on the first worked example, so the box shows what a query looks like
    options = [OWN, *examples]
    choice = st.selectbox("Example", options, index=min(1, len(examples)), key="sql_example")
    sql = st.text_area("Query", value=examples.get(choice, ""), height=260, key=f"sql_{choice}")
    timeout = st.number_input(
        "Time limit (s)", min_value=0.1, value=data.DEFAULT_TIMEOUT_S, step=5.0, key="sql_timeout"
    )
    if not st.button("Run query", type="primary", key="sql_run"):
        return
    try:
        result = data.run_sql(url, sql, timeout_s=timeout)
    except WriteRefused as exc:
        st.error(f"Refused: {exc}")
        return
    except QueryTimeout as exc:
        st.error(f"Time limit: {exc}. Raise the limit above to give it longer.")
        return
    except StoreError as exc:
        st.error(str(exc))
        return
    frame = pd.DataFrame(result.rows, columns=result.columns)
    st.caption(f"{len(frame)} rows" + (" (stopped at the row limit)" if result.truncated else ""))
    st.dataframe(frame, hide_index=True, key="sql_result")
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False),
        file_name="medarena-query.csv",
        mime="text/csv",
        key="sql_csv",
    )


common.guarded(render)
