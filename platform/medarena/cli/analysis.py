"""`medarena rescore` (stored outputs parsed again with another extraction rule) and
`medarena contamination` (benchmark items against a variant's training data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from medarena.cli.common import out, reports_errors
from medarena.errors import Refused

if TYPE_CHECKING:
    from medarena.store.reads import StoreReader


@reports_errors
def rescore(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., help="The stored generate run (its id in `results`)."),
    extractor: str | None = typer.Option(
        None, "--extractor", "-x", help="Extraction rule: medarena, lm-eval, me-llama, meditron."
    ),
    protocol: str | None = typer.Option(
        None, "--protocol", help="Take the extraction rule this protocol names for the task."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Parse a stored generate run's raw outputs again with another extraction rule (no model
    is called); the result is a new run linked to its source, compared like any run."""
    from medarena.analysis.rescore import rescore as rescore_run
    from medarena.store.queries import format_ci

    if (extractor is None) == (protocol is None):
        raise Refused("give one of --extractor NAME or --protocol P")
    root = ctx.obj.registry().root
    with ctx.obj.store(create_if_empty=False) as store:
        name = extractor or _protocol_rule(root, protocol or "", store, run_id)
        result = rescore_run(store, root, run_id, name)
    if as_json:
        data = {
            "run": result.run.id,
            "source_run": result.source.id,
            "extractor": name,
            "scoring_mode": result.run.scoring_mode,
            "changed": result.changed,
            "reused": result.reused,
            "metrics": [vars(metric) for metric in result.metrics],
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    stored = " (stored)" if result.reused else ""
    out.print(
        f"run {result.run.id}{stored}: run {result.source.id} ({result.run.variant} on "
        f"{result.run.task}) rescored with {name}, {result.changed} parses changed",
        highlight=False,
    )
    for metric in result.metrics:
        out.print(f"  {metric.name} {format_ci(metric)} (n={metric.n})", highlight=False)


def _protocol_rule(root: Path, protocol: str, store: StoreReader, run_id: int) -> str:
    """The extraction rule `protocol` names for the task of run `run_id`."""
    from medarena.evaluate.protocol import get_protocol, load_protocols

    chosen = get_protocol(load_protocols(root), protocol)
    spec = store.eval_run_spec(run_id)
    if spec is None:
        raise Refused(f"no evaluation run {run_id} in the store (see `medarena results`)")
    entry = chosen.entry(spec.task)
    if entry is None:
        raise Refused(f"protocol {protocol!r} does not evaluate task {spec.task}")
    return entry.extraction


@reports_errors
def contamination(
    ctx: typer.Context,
    variant: str = typer.Option(..., "--model", "-m", help="The variant whose training data."),
    task: str = typer.Option(..., "--task", "-t", help="The benchmark task whose items."),
    corpus: list[Path] = typer.Option(
        [], "--corpus", help="Another corpus (records file or folder of .txt); repeatable."
    ),
    text_field: str = typer.Option("text", help="The text field of --corpus records."),
    n: int = typer.Option(13, "-n", min=1, help="Words per n-gram (13: GPT-3, lm-eval)."),
    threshold: float = typer.Option(
        0.0, help="Contaminated when the share of an item's n-grams found exceeds this (0: any)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes cutting and hashing documents (same outcome)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Word n-gram overlap between a task's items and the data of every training run in the
    variant's lineage (plus --corpus); stored, and reused when run again on the same inputs."""
    from medarena.analysis.contamination import check
    from medarena.evaluate.protocol import sync_registry

    registry = ctx.obj.registry()
    with ctx.obj.store() as store:
        sync_registry(store, registry)  # the lineage is read from the store's variants
        outcome = check(
            store, registry.root, variant, task, extra=corpus, text_field=text_field, n=n,
            threshold=threshold, workers=workers,
        )  # fmt: skip
    result = outcome.check
    flagged = [item for item in outcome.items if item.contaminated]
    if as_json:
        data = {
            **{k: v for k, v in vars(result).items() if k != "created_at"},
            "reused": outcome.reused,
            "items": [vars(item) for item in outcome.items],
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    stored = " (stored)" if outcome.reused else ""
    out.print(
        f"check {result.id}{stored}: {result.n_contaminated} of {result.n_items} items of "
        f"{result.task} contaminated ({result.n}-grams, share found > {result.threshold:g}) in "
        f"{len(result.corpora)} corpora of {' <- '.join(result.lineage)}; "
        f"{result.documents_read} documents read",
        highlight=False,
    )
    if flagged:
        table = Table(title="contaminated items")
        for column in ("item", "n-grams found", "longest overlap (words)", "where"):
            table.add_column(column)
        for item in flagged:
            where = ", ".join(f"{s['corpus']}:{s['document']}" for s in item.sources)
            table.add_row(item.item_id, f"{item.matched}/{item.ngrams}", str(item.longest), where)
        out.print(table)
