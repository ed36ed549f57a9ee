"""A small generic registry for extension points (engines, scoring modes, task kinds, source
formats, data readers, weights source kinds), in the spirit of lm-evaluation-harness's
`Registry`: one module defines a thing and registers it under a name; callers look it up by name.

- A duplicate name is a programming error (`DuplicateRegistration`), never a silent override.
- Heavy backends register lazily as "package.module:attribute" and are imported on first use, so
  listing names never imports torch or vLLM.
- An unknown name is a user error (`UnknownName`) that lists the known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, overload

from medarena.errors import UnknownName

T = TypeVar("T")


class DuplicateRegistration(Exception):
    """Two extensions registered under one name (a bug in the code that registers them)."""


class ExtensionRegistry(Generic[T]):
    """Names -> objects of one kind of extension (e.g. `kind="engine"`)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Register `obj` under `name`; without `obj`, a decorator that registers what it
        decorates."""
        if obj is None:

            def decorator(target: T) -> T:
                self._add(name, target)
                return target

            return decorator
        self._add(name, obj)
        return obj

    def register_lazy(self, name: str, target: str) -> None:
        """Register "package.module:attribute", imported only when `name` is first looked up."""
        if ":" not in target:
            raise ValueError(f"lazy target must be 'module:attribute', got {target!r}")
        self._add(name, target)

    def _add(self, name: str, obj: T | str) -> None:
        if name in self._entries:
            raise DuplicateRegistration(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """The extension registered as `name`; UnknownName (listing the known ones) if none."""
        if name not in self._entries:
            raise UnknownName(self.kind, name, list(self._entries))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def temporarily(self, name: str, obj: T) -> Iterator[T]:
        """Register `obj` for the duration of a `with` block (tests register toy extensions)."""
        self._add(name, obj)
        try:
            yield obj
        finally:
            del self._entries[name]
