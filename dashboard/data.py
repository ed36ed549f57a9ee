"""Every read the dashboard makes, in one place: the database URL, its state, and cached reads.

Views never touch SQL or the Store themselves. The Store answers every question (it returns
entities, medarena.results); this module caches its answers per (URL, arguments) with
`st.cache_data` and shapes them into frames. The sidebar's refresh button clears the caches.
Imports medarena.store, medarena.results and medarena.compare only (no torch: a test checks).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import streamlit as st
from lineage import lineage_rows

from medarena.compare import (
    Comparison,
    ContaminationSplit,
    beside_measured,
    compare_variants,
    split_by_contamination,
)
from medarena.errors import StoreError
from medarena.results import (
    ApiUsage,
    Prediction,
    QueryResult,
    RunMetric,
    TrainingStep,
    VariantInfo,
)
from medarena.store import Store, queries, run_readonly_query
from medarena.store.database import DB_URL_ENV, check_schema, make_engine, resolve_url, sqlite_path
from medarena.store.models import utcnow
from medarena.store.readonly import DEFAULT_TIMEOUT_S

QUERIES_DOC = Path(__file__).resolve().parents[1] / "docs" / "queries.md"
MEASURED = "measured"
PUBLISHED = "published"
# what an empty database needs, shown verbatim in the app
PRODUCE_RESULTS = (
    "medarena demo                                   # offline: tiny models, 7 tasks, ~1 min\n"
    "medarena eval -m VARIANT -t TASK                # or evaluate your own variants"
)
ITEM_LIMIT = 2000  # rows of the per-item table; a run can have many thousands
ITEM_COLUMNS = ("item_id", "prompt", "raw_output", "parsed_answer", "gold", "correct", "score")


# --------------------------------------------------------------------------- the database


def db_url() -> str:
    """`--db URL` after `--` on the streamlit command line, else $MEDARENA_DB_URL (set by
    `medarena dashboard`), else the workspace's database found from the current folder."""
    args = sys.argv[1:]
    if "--db" in args and args.index("--db") + 1 < len(args):
        return resolve_url(args[args.index("--db") + 1], None)
    if os.environ.get(DB_URL_ENV):
        return resolve_url(None, None)
    from medarena.registry import STATE_DIR, find_workspace

    return resolve_url(None, find_workspace(None) / STATE_DIR)


@st.cache_data(show_spinner=False)
def database_problem(url: str) -> tuple[str, str] | None:
    """(kind, message) when the database cannot be shown: kind "empty" (nothing measured yet)
    or "error" (older schema, not a medarena database...); None when it can. Cached like the
    reads (every widget change reruns the app): *Refresh data* checks again."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return "empty", f"No database at {path} yet. Produce results with:"
    engine = make_engine(url)
    try:
        check_schema(engine, create_if_empty=False)
    except StoreError as exc:
        if "is empty" in str(exc):
            return "empty", f"The database {url} has no tables yet. Produce results with:"
        return "error", str(exc)
    finally:
        engine.dispose()
    if not _store(url).has_runs():
        return "empty", f"The database {url} holds no evaluation or training run yet. Run:"
    return None


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url, create_if_empty=False)


def _rows(entities: list, columns: list[str]) -> pd.DataFrame:
    # vars(), not dataclasses.asdict: asdict deep-copies every field (10x slower here)
    return pd.DataFrame([vars(entity) for entity in entities], columns=columns)


def refresh() -> None:
    """Forget every cached result: the next read sees what was written since."""
    st.cache_data.clear()


# ------------------------------------------------------------------------------ results


@st.cache_data(show_spinner=False)
def metric_names(url: str) -> list[str]:
    return sorted(_store(url).metric_names(), key=lambda name: (name != queries.ACCURACY, name))


@st.cache_data(show_spinner=False)
def variants(url: str) -> pd.DataFrame:
    """The registry as synced: one row per variant with its family and lineage links."""
    frame = _rows(_store(url).variants(), [f.name for f in fields(VariantInfo)])
    frame["recipes"] = [", ".join(recipes) for recipes in frame["recipes"]]
    return frame.rename(columns={"name": "variant"})


@st.cache_data(show_spinner=False)
def families(url: str) -> pd.DataFrame:
    columns = ["name", "display_name", "developer", "license", "paper", "continued_from"]
    return _rows(_store(url).families(), columns).rename(columns={"name": "family"})


@st.cache_data(show_spinner=False)
def leaderboard(url: str, metric: str) -> pd.DataFrame:
    """Latest completed run per variant x task x setting, then published results: `source` is
    "measured" or "published" (then `reference` cites the paper or card), with each variant's
    family and size."""
    rows = _store(url).leaderboard(metric)
    measured_rows = [row for row in rows if row.source == MEASURED]
    frame = _rows(rows, _LEADERBOARD_COLUMNS)
    # a published value stands beside a measured one only under the same protocol
    frame["beside_measured"] = [
        "" if row.source == MEASURED else beside_measured(row, measured_rows) for row in rows
    ]
    measured = frame["source"] == MEASURED
    frame["reference"] = frame["source"].where(~measured, "")
    frame["source"] = [MEASURED if m else PUBLISHED for m in measured]
    sizes = variants(url).set_index("variant")["params_b"]
    frame.insert(2, "params_b", frame["variant"].map(sizes))
    frame["shots"] = frame["shots"].astype("Int64")  # a published result may not state them
    # a published row's "scoring mode" is the paper's own description of its setting
    frame["setting"] = [
        f"{mode}, {shots}-shot" if is_measured else mode
        for mode, shots, is_measured in zip(frame.scoring_mode, frame.shots, measured, strict=True)
    ]
    frame["run_id"] = frame["run_id"].astype("Int64")
    frame["n"] = frame["n"].astype("Int64").where(measured)  # no item count behind a paper's number
    ordered = frame.assign(published=~measured).sort_values(
        ["published", "task", "value"], ascending=[True, True, False], kind="stable"
    )
    return ordered.drop(columns="published").reset_index(drop=True)


_LEADERBOARD_COLUMNS = [
    "variant",
    "family",
    "task",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "scoring_mode",
    "shots",
    "source",
    "run_id",
    "protocol",
    "unmapped",
    "contaminated",  # share of the task's items the variant's latest check flagged
]


@st.cache_data(show_spinner=False)
def api_usage(url: str) -> pd.DataFrame:
    """What the API billed for the latest completed run of each variant x task x setting that
    went through one: tokens in / out and US dollars (None: the variant declares no prices)."""
    frame = _rows(_store(url).api_usage(), [f.name for f in fields(ApiUsage)])
    frame["cost_usd"] = frame["cost_usd"].astype("Float64")
    return frame


SWEEP_CLAIM_COLUMNS = ["sweep", "cell", "state", "host", "pid", "slurm_job", "claimed_at",
                       "lease_until", "error"]  # fmt: skip


# shorter than the Sweeps view's 15 s re-run, so each re-run reads the database again
@st.cache_data(show_spinner=False, ttl=10)
def sweep_claims(url: str) -> pd.DataFrame:
    """The cells sweep workers hold or failed on: `running` while the holder renews its lease,
    `lease expired` when it stopped renewing (a killed job: the next worker takes the cell),
    `failed` with the error. Completed cells hold no claim (they are results)."""
    now = utcnow()
    rows = [
        {
            "sweep": claim.sweep,
            "cell": claim.cell,
            "state": "failed"
            if claim.error is not None
            else "running"
            if claim.expires_at > now
            else "lease expired",
            "host": claim.holder.host,
            "pid": claim.holder.pid,
            "slurm_job": claim.holder.slurm_job,
            "claimed_at": claim.claimed_at,
            "lease_until": claim.expires_at,
            "error": claim.error,
        }
        for claim in _store(url).sweep_claims()
    ]
    return pd.DataFrame(rows, columns=SWEEP_CLAIM_COLUMNS)


@st.cache_data(show_spinner=False)
def reproductions(url: str) -> pd.DataFrame:
    """Every stored reproduction report, newest first; mismatches joined into one cell."""
    frame = _rows(_store(url).reproductions(), _REPRODUCTION_COLUMNS)
    frame["mismatches"] = ["; ".join(found) for found in frame["mismatches"]]
    return frame


_REPRODUCTION_COLUMNS = [
    "protocol",
    "variant",
    "task",
    "metric",
    "published",
    "source",
    "measured",
    "ci_low",
    "ci_high",
    "sd",
    "n",
    "verdict",
    "mismatches",
    "eval_run_ids",
    "created_at",
]


@st.cache_data(show_spinner=False)
def tasks(url: str) -> list[str]:
    """Tasks with at least one completed run."""
    return _store(url).task_names(completed=True)


@st.cache_data(show_spinner=False)
def latest_runs(url: str, task: str) -> pd.DataFrame:
    """The latest completed run of each variant on `task` per scoring mode and shots."""
    runs = _store(url).latest_runs(task=task)
    columns = ["variant", "scoring_mode", "shots", "id"]
    return _rows(runs, columns).rename(columns={"id": "run_id"})


@st.cache_data(show_spinner=False)
def _first_item(url: str, run_id: int) -> list[Prediction]:
    return _store(url).predictions(run_id, limit=1)


def paired_metrics(url: str, run_id: int) -> list[str]:
    """What two runs of this kind can be compared on item by item: `acc` when items are right
    or wrong, else the per-item scores stored in the details (ROUGE-L first)."""
    return queries.paired_metrics(_first_item(url, run_id))


def default_metric(url: str, task: str) -> str:
    """`acc` for tasks scored right or wrong, else the first per-item score (ROUGE-L)."""
    runs = latest_runs(url, task)
    if not len(runs):
        return queries.ACCURACY
    return queries.default_paired_metric(_first_item(url, int(runs["run_id"].iloc[0])))


@st.cache_data(show_spinner=False)
def predictions(url: str, run_id: int, limit: int = ITEM_LIMIT) -> pd.DataFrame:
    """Per-item rows of one run (without log-probs and details), first `limit` by item id."""
    return _rows(_store(url).predictions(run_id, limit=limit), list(ITEM_COLUMNS))


@st.cache_data(show_spinner=False)
def head_to_head(
    url: str, variant_a: str, variant_b: str, task: str, setting: tuple[str, int], metric: str
) -> Comparison:
    mode, shots = setting
    return compare_variants(
        _store(url), variant_a, variant_b, task, scoring_mode=mode, shots=shots, metric=metric
    )


@st.cache_data(show_spinner=False)
def contamination_split(
    url: str, variant_a: str, variant_b: str, task: str, setting: tuple[str, int], metric: str
) -> ContaminationSplit | None:
    """The head-to-head split into clean / contaminated items (None: neither variant checked)."""
    comparison = head_to_head(url, variant_a, variant_b, task, setting, metric)
    return split_by_contamination(_store(url), comparison, metric)


@st.cache_data(show_spinner=False)
def history(url: str, variant: str, task: str, metric: str) -> pd.DataFrame:
    """Every completed run of a variant on a task, oldest first, with the metric's value."""
    points = _store(url).metric_history(variant, task, metric)
    return _rows(points, [f.name for f in fields(RunMetric)])


# ----------------------------------------------------------------------------- training


@st.cache_data(show_spinner=False)
def training_runs(url: str) -> pd.DataFrame:
    frame = _rows(_store(url).training_runs(), _TRAINING_RUN_COLUMNS)
    return frame.rename(
        columns={"id": "run_id", "base_variant": "base", "output_variant": "output"}
    )


_TRAINING_RUN_COLUMNS = [
    "id",
    "kind",
    "recipe_name",
    "base_variant",
    "output_variant",
    "status",
    "tokens_seen",
    "world_size",
    "hardware",
    "started_at",
    "wall_seconds",
]


@st.cache_data(show_spinner=False)
def training_steps(url: str, run_id: int) -> pd.DataFrame:
    return _rows(_store(url).training_steps(run_id), [f.name for f in fields(TrainingStep)])


@st.cache_data(show_spinner=False)
def data_mix(url: str, run_id: int) -> pd.DataFrame:
    """The realised mix the run trained on: one row per source (empty if none was recorded)."""
    mix = _store(url).data_mix(run_id)
    rows = [
        {"source": name, **(share if isinstance(share, dict) else {"value": share})}
        for name, share in sorted(mix.items())
    ]
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False)
def lineage(url: str, variant: str, metric: str) -> pd.DataFrame:
    """The lineage tree containing `variant`, each node with its latest measured `metric` per
    task and setting (columns "task (setting)")."""
    board = leaderboard(url, metric)
    measured = board[board["source"] == MEASURED]
    scores = pd.DataFrame(
        {
            "variant": measured["variant"],
            "column": measured["task"] + " (" + measured["setting"] + ")",
            "value": measured["value"],
        }
    )
    return lineage_rows(variants(url), training_runs(url), scores, variant)


# ---------------------------------------------------------------------------------- SQL


def run_sql(
    url: str, sql: str, max_rows: int = 10_000, timeout_s: float = DEFAULT_TIMEOUT_S
) -> QueryResult:
    """A read-only query (never cached: the user asks for fresh rows), stopped after
    `timeout_s` seconds. Raises WriteRefused, QueryTimeout."""
    return run_readonly_query(url, sql, max_rows=max_rows, timeout_s=timeout_s)


@st.cache_data(show_spinner=False)
def example_queries() -> dict[str, str]:
    """Title -> SQL of every example in docs/queries.md (empty when the docs are not there)."""
    if not QUERIES_DOC.is_file():
        return {}
    examples: dict[str, str] = {}
    title = "query"
    for block in re.split(r"^(## .*)$", QUERIES_DOC.read_text(), flags=re.M):
        if block.startswith("## "):
            title = block[3:].strip()
            continue
        for index, sql in enumerate(re.findall(r"```sql\n(.*?)```", block, flags=re.S)):
            examples[title if index == 0 else f"{title} ({index + 1})"] = sql.strip()
    return examples
