"""`medarena benchmarks validate --hub`: every hub split of every task loaded (this needs the
network), converted by the task's source format, and its rows counted against the spec's
`expected_items`. The revision pins the rows; the count is what tells a user, before any model
runs, that the rows are the ones the spec and the published numbers are about."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medarena.data.records import read_records
from medarena.errors import Problem, ProblemsError, Refused
from medarena.evaluate.formats import to_items
from medarena.evaluate.spec import BenchmarkTask, spec_file
from medarena.schemas import HubData
from medarena.yaml_source import read_yaml

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class SplitCount:
    """One hub split of a task (`split` is the spec's key: eval or fewshot) and its rows."""

    task: BenchmarkTask
    split: str
    source: HubData
    items: int

    @property
    def expected(self) -> int | None:
        return self.source.expected_items

    @property
    def matches(self) -> bool:
        return self.expected is None or self.items == self.expected


def hub_splits(task: BenchmarkTask) -> list[tuple[str, HubData]]:
    """The task's hub sources by spec key (eval, fewshot); none without a `hub:` block."""
    if task.hub is None:
        return []
    sources = {"eval": task.hub.eval, "fewshot": task.hub.fewshot}
    return [(key, source) for key, source in sources.items() if isinstance(source, HubData)]


def count_hub_items(
    tasks: list[BenchmarkTask],
    root: Path,
    on_split: Callable[[SplitCount], None] | None = None,
) -> list[SplitCount]:
    """Load, convert and count every hub split of `tasks` (reported to `on_split` as each one is
    done: a large split takes minutes). Refused when the hub is switched off."""
    offline = [name for name in OFFLINE_VARIABLES if _truthy(os.environ.get(name))]
    if offline:
        raise Refused(
            f"--hub reads every hub split over the network, but {offline[0]} is set; unset it "
            "(or check the bundled samples only, without --hub)"
        )
    counts = []
    for task in tasks:
        for key, source in hub_splits(task):
            records = read_records(source, root / "benchmarks")
            to_items(task.source_format, records)  # the rows fit the task's source format
            count = SplitCount(task, key, source, len(records))
            if on_split is not None:
                on_split(count)
            counts.append(count)
    return counts


def check_counts(counts: list[SplitCount], root: Path) -> None:
    """A ProblemsError naming each split whose rows differ from its `expected_items`, at the
    spec's line."""
    problems = []
    for count in counts:
        if count.matches:
            continue
        where = spec_file(count.task)
        document, _ = read_yaml(root / where, where)
        loc = ["hub", count.split, "expected_items"]
        line = document.line_of(loc) if document is not None else None
        message = f"the hub split has {count.items} items, the spec expects {count.expected}"
        problems.append(Problem(where, line, ".".join(loc), message))
    if problems:
        raise ProblemsError(problems, "hub splits differ from their specs")


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}
