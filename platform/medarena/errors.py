"""Errors a user can act on. Kept free of heavy imports so the CLI can catch them cheaply."""


class StoreError(Exception):
    """The database cannot be used as it is; the message says what to do."""


class SchemaBehind(StoreError):
    """The database has an older schema: `medarena db upgrade` migrates it."""


class WriteRefused(Exception):
    """A read-only query could change the database; it was not run."""
