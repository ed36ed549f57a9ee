"""The results store: SQL tables, migrations, the Store API and read-only queries.

The entities it takes and returns live in medarena.results; what results mean (the run key, the
latest completed run, the default paired metric) in medarena.store.queries.
"""

from medarena.errors import SchemaBehind, StoreError, WriteRefused
from medarena.store.api import Store
from medarena.store.database import resolve_url
from medarena.store.readonly import run_readonly_query

__all__ = [
    "SchemaBehind",
    "Store",
    "StoreError",
    "WriteRefused",
    "resolve_url",
    "run_readonly_query",
]
