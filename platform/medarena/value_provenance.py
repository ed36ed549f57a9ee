"""Where each value of a spec comes from: the `provenance:` block of a shipped recipe.

`provenance` maps a field path to a mark: `{source: "..."}` (a paper section or table, a model
card, a repository file, cited precisely) or `{medarena: "..."}` (medarena's own choice, with
the reason; "unconfirmed" says a value could not be checked against its source). A path names
one value or everything under it:

    optimizer.lr                       one field
    optimizer                          every field of the optimizer
    sources[papers].published_tokens   an item of a named list, by its name
    overrides[llama-2-70b].lr          an entry of a mapping, by its key
    "*"                                the whole spec (a demo: every value is medarena's)

A value's mark is the one of the most specific path that covers it. A spec with a provenance
block marks every value it runs with, defaults included (a default is a choice too), and every
path names a value the spec has: `provenance_gaps` lists what is not so, each with its place in
the YAML. Identity and documentation (name, description, citation, the provenance itself, a
list item's name) carry nothing to source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from medarena.errors import Problem
from medarena.schemas import Spec
from medarena.yaml_source import YamlDocument

_SEGMENT = r"[a-z_][a-z0-9_]*(\[[^\[\]]+\])?"
PATH_PATTERN = rf"^(\*|{_SEGMENT}(\.{_SEGMENT})*)$"
UNMARKED = frozenset({"name", "description", "citation", "provenance"})


class Mark(Spec):
    """Exactly one of `source` or `medarena`."""

    source: str | None = Field(
        None,
        min_length=1,
        description="where the value is published: paper section or table, card, repo file",
    )
    medarena: str | None = Field(
        None,
        min_length=1,
        description="why medarena chose the value (`unconfirmed`: its source could not be checked)",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Mark:
        if (self.source is None) == (self.medarena is None):
            raise ValueError(
                "give `source` (where the value is published) or `medarena` (why medarena "
                "chose it): exactly one"
            )
        return self


FieldPath = Annotated[str, Field(pattern=PATH_PATTERN)]
Provenance = dict[FieldPath, Mark]
Loc = tuple[str | int, ...]  # where a value is in the YAML: ("sources", 2, "ratio")


@dataclass(frozen=True)
class Value:
    path: str  # as a provenance block names it: sources[papers].ratio
    loc: Loc


@dataclass(frozen=True)
class Gap:
    loc: Loc
    field: str
    message: str


def values(spec: BaseModel, documentation: frozenset[str] = frozenset()) -> list[Value]:
    """Every value of `spec` that a provenance block must mark (`documentation`: more
    top-level fields that only document, like a protocol's source and url)."""
    return list(_walk(spec, "", (), skip=UNMARKED | documentation))


def _walk(value: Any, path: str, loc: Loc, skip: frozenset[str] = frozenset()) -> Iterator[Value]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if name not in skip:
                child = getattr(value, name)
                yield from _walk(child, f"{path}.{name}" if path else name, (*loc, name))
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk(child, f"{path}[{key}]", (*loc, key))
    elif isinstance(value, list) and value and all(_key(item) for item in value):
        for index, item in enumerate(value):
            key, field = _key(item)  # type: ignore[misc]
            yield from _walk(item, f"{path}[{key}]", (*loc, index), frozenset({field}))
    elif value is not None:  # a number, a switch, a string, a list of scalars: one value
        yield Value(path, loc)


def _key(item: Any) -> tuple[str, str] | None:
    """(key, field) naming a list item in a path: its `name`, or the `task` it is about."""
    for field in ("name", "task"):
        key = getattr(item, field, None) if isinstance(item, BaseModel) else None
        if isinstance(key, str):
            return key, field
    return None


def covers(key: str, path: str) -> bool:
    return key in ("*", path) or path.startswith((f"{key}.", f"{key}["))


def mark_for(provenance: Mapping[str, Mark], path: str) -> Mark | None:
    """The mark of the most specific path that covers `path`, or None."""
    keys = [key for key in provenance if covers(key, path)]
    if not keys:
        return None
    # "*" covers everything and is the least specific; otherwise longer is more specific
    return provenance[max(keys, key=lambda key: -1 if key == "*" else len(key))]


def provenance_gaps(
    spec: BaseModel, provenance: Mapping[str, Mark], documentation: frozenset[str] = frozenset()
) -> list[Gap]:
    """Values without a mark and paths that name no value; none when there is no block."""
    if not provenance:
        return []
    found = values(spec, documentation)
    gaps = [
        Gap(("provenance", key), f"provenance.{key}", "names no value (misspelt, or left empty)")
        for key in provenance
        if key != "*" and not any(covers(key, value.path) for value in found)
    ]
    gaps += [
        Gap(value.loc, value.path, "has neither a source nor a medarena mark in `provenance`")
        for value in found
        if mark_for(provenance, value.path) is None
    ]
    return gaps


def provenance_problems(document: YamlDocument, spec: Any) -> list[Problem]:
    """`spec.provenance_gaps()` located in its YAML file (for `load_spec_folder`'s check)."""
    return [
        Problem(document.path, document.line_of(gap.loc), gap.field, gap.message)
        for gap in spec.provenance_gaps()
    ]
