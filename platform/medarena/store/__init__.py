"""The results store: SQL tables, migrations, the Store API and read-only queries."""

from medarena.errors import SchemaBehind, StoreError, WriteRefused
from medarena.store.api import (
    EvalRun,
    EvalRunSpec,
    LeaderboardRow,
    MetricValue,
    Prediction,
    Store,
    SyncReport,
    TrainingRun,
    TrainingStep,
)
from medarena.store.database import resolve_url
from medarena.store.readonly import QueryResult, run_readonly_query

__all__ = [
    "EvalRun",
    "EvalRunSpec",
    "LeaderboardRow",
    "MetricValue",
    "Prediction",
    "QueryResult",
    "SchemaBehind",
    "Store",
    "StoreError",
    "SyncReport",
    "TrainingRun",
    "TrainingStep",
    "WriteRefused",
    "resolve_url",
    "run_readonly_query",
]
