"""`medarena benchmarks ...`, `medarena eval` and `medarena results`: evaluation from the command
line. torch and the engines load only inside `eval`, so listing benchmarks and printing results
stay fast."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medarena.cli.common import err, out, reports_errors
from medarena.errors import Refused
from medarena.evaluate.bartscore import DEFAULT_MODEL as BARTSCORE_DEFAULT
from medarena.evaluate.bartscore import TINY as TINY_BART
from medarena.evaluate.hub_check import SplitCount, check_counts, count_hub_items
from medarena.evaluate.spec import BenchmarkTask, load_benchmarks
from medarena.registry import find_workspace

benchmarks_app = typer.Typer(help="Benchmark task specs (benchmarks/*.yaml).", no_args_is_help=True)


@benchmarks_app.command("ls")
@reports_errors
def benchmarks_ls(ctx: typer.Context) -> None:
    """List benchmark tasks: format, scoring modes, metrics, where the data comes from."""
    tasks = load_benchmarks(ctx.obj.workspace)
    table = Table(title=f"{len(tasks)} benchmark tasks")
    for column in ("task", "kind", "format", "modes", "metrics", "bundled sample", "hub"):
        table.add_column(column)
    for task in tasks.values():
        hub = task.hub.eval if task.hub else None
        table.add_row(
            task.name,
            task.kind,
            task.source_format,
            ",".join(task.scoring_modes),
            ",".join(task.metrics),
            getattr(task.data.eval, "path", "hub"),
            f"{hub.dataset}:{hub.split}" if hub is not None and hub.kind == "hub" else "-",
        )
    out.print(table)


def validate_benchmarks(workspace: str | None) -> dict[str, BenchmarkTask]:
    """Check every spec, and that its bundled items load in its source format; print a line
    per task."""
    from medarena.evaluate.runner import load_task_data

    root = find_workspace(workspace)
    tasks = load_benchmarks(root)
    for task in tasks.values():
        data = load_task_data(task, root, need_pool=task.data.fewshot is not None)
        out.print(f"ok: {task.name}: {len(data.items)} items, {len(data.pool)} few-shot items")
    return tasks


@benchmarks_app.command("validate")
@reports_errors
def benchmarks_validate(
    ctx: typer.Context,
    hub: bool = typer.Option(
        False,
        "--hub",
        help="Also load every hub split (network) and check its items against expected_items.",
    ),
) -> None:
    """Check every spec, and that its bundled items load in its source format; with --hub,
    also that every hub split loads and holds the items its spec expects."""
    tasks = validate_benchmarks(ctx.obj.workspace)
    if hub:
        root = find_workspace(ctx.obj.workspace)
        counts = count_hub_items(list(tasks.values()), root, on_split=print_split_count)
        check_counts(counts, root)


def print_split_count(count: SplitCount) -> None:
    source = count.source
    revision = (source.revision or "unpinned")[:12]
    where = f"{source.dataset}@{revision} ({source.config or 'default'}, {source.split})"
    if count.expected is None:
        verdict, note = "ok", " (no expected_items in the spec)"
    elif count.matches:
        verdict, note = "ok", ""
    else:
        verdict, note = "mismatch", f", the spec expects {count.expected}"
    out.print(f"{verdict}: {count.task.name} hub {count.split}: {where}: {count.items} items{note}")


@reports_errors
def eval_command(
    ctx: typer.Context,
    models: list[str] = typer.Option(..., "--model", "-m", help="Variant(s) to evaluate."),
    task_names: list[str] = typer.Option(
        [],
        "--task",
        "-t",
        help="Task(s), or `all` (with --protocol: a subset of its tasks).",
    ),
    protocol: str | None = typer.Option(
        None, "--protocol", "-p", help="Run a protocol's tasks with its settings (protocols ls)."
    ),
    engine: str = typer.Option(
        "hf", help="hf (transformers), vllm, or openai (a variant behind an API)."
    ),
    mode: str | None = typer.Option(
        None,
        help="loglik (choice labels), cloze (option texts) or generate; default: first listed.",
    ),
    shots: int = typer.Option(0, min=0, help="Demonstrations from the few-shot split."),
    seeds: list[int] = typer.Option(
        [0], "--seed", help="Demo-drawing and sampling seed; repeat for mean and spread."
    ),
    limit: int | None = typer.Option(None, min=1, help="Only the first n items."),
    cot: bool = typer.Option(False, help="Chain-of-thought (generate mode)."),
    samples: int = typer.Option(
        1, min=1, help="Self-consistency: samples per item, majority vote."
    ),
    temperature: float = typer.Option(0.0, min=0.0, help="Sampling temperature (0: greedy)."),
    data: str = typer.Option(
        "bundled", help="bundled (offline samples), hub (full datasets) or local (data you hold)."
    ),
    truncation: str = typer.Option("left", help="Prompt over the context: left (cut) or error."),
    batch_size: int = typer.Option(32, min=1, help="hf engine batch size."),
    concurrency: int = typer.Option(8, min=1, help="openai engine: requests in flight."),
    chunk_size: int = typer.Option(64, min=1, help="Items scored and stored per transaction."),
    bertscore_model: str = typer.Option(
        "minilm", help="BERTScore encoder: minilm (offline) or a bert-score model_type."
    ),
    bartscore_model: str = typer.Option(
        BARTSCORE_DEFAULT,
        help=f"BARTScore's BART: a hub id or directory, or {TINY_BART} (offline, random weights).",
    ),
    chat_template: bool = typer.Option(
        True, help="Wrap prompts in the chat template of instruction-tuned variants."
    ),
    rerun: bool = typer.Option(
        False, help="Score again even if an identical completed run is stored (a new run)."
    ),
) -> None:
    """Evaluate variants on benchmark tasks; every item is stored, runs resume after a kill."""
    from medarena.evaluate.plans import plan_evaluation, plan_protocol_evaluation, run_plans
    from medarena.evaluate.runner import EvalOptions

    registry = ctx.obj.registry()
    options = EvalOptions(
        engine=engine,
        shots=shots,
        cot=cot,
        samples=samples,
        temperature=temperature,
        limit=limit,
        data=data,
        truncation=truncation,
        chunk_size=chunk_size,
        bertscore_encoder=bertscore_model,
        bartscore_model=bartscore_model,
        use_chat_template=chat_template,
    )
    if protocol is not None:
        from medarena.evaluate.protocol import get_protocol, load_protocols

        chosen = get_protocol(load_protocols(registry.root), protocol)
        planned = plan_protocol_evaluation(registry, chosen, models, task_names, options)
    elif not task_names:
        raise Refused("name the tasks (--task, or --task all) or a protocol (--protocol)")
    else:
        planned = plan_evaluation(registry, models, task_names, options, mode=mode, seeds=seeds)
    with ctx.obj.store() as store:
        outcomes = [
            outcome
            for entry, plans in planned.work
            for outcome in run_plans(
                store,
                registry,
                [entry],
                plans,
                engine,
                batch_size,
                concurrency=concurrency,
                rerun=rerun,
                task_data=planned.task_data,
                progress=progress_bar,
            )
        ]
    print_outcomes(outcomes)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A transient bar on a terminal (none in logs and pipes) fed with (done, total)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no bar redraws in logs and pipes
    )
    with bar:
        bar_id = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            if total:
                bar.update(bar_id, total=total, completed=done)
            else:
                bar.advance(bar_id, done)

        yield advance


def print_outcomes(outcomes: list[tuple[BenchmarkTask, Any, Any]]) -> None:
    from medarena.store.queries import format_ci

    table = Table(title="evaluation runs (95% bootstrap CI)")
    for column in ("run", "model", "task", "mode", "shots", "seed", "metrics", "items", "items/s"):
        table.add_column(column)
    spread: dict[tuple[str, str, str, int, str], list[float]] = defaultdict(list)
    for task, _options, outcome in outcomes:
        run = outcome.run
        shown = [m for m in outcome.metrics if m.name != "truncated_items" or m.value]
        table.add_row(
            str(run.id),
            run.variant,
            task.name,
            run.scoring_mode,
            str(run.shots),
            str(run.seed),
            "\n".join(f"{m.name} {format_ci(m)}" for m in shown),
            f"{run.n_items}"
            + (" (resumed)" if outcome.reused and outcome.scored else "")
            + (" (stored)" if outcome.already_complete else ""),
            f"{outcome.items_per_s:.1f}" if outcome.items_per_s else "-",
        )
        for m in shown:
            spread[(run.variant, task.name, run.scoring_mode, run.shots, m.name)].append(m.value)
    out.print(table)
    multi = {key: values for key, values in spread.items() if len(values) > 1}
    if multi:
        summary = Table(title="across seeds: mean ± standard deviation")
        for column in ("model", "task", "mode", "shots", "metric", "seeds", "mean ± sd"):
            summary.add_column(column)
        for (variant, task_name, mode, shots, metric), values in multi.items():
            summary.add_row(
                variant,
                task_name,
                mode,
                str(shots),
                metric,
                str(len(values)),
                f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}",
            )
        out.print(summary)


@reports_errors
def results(
    ctx: typer.Context,
    metric: str = typer.Option(
        "acc", help="Metric to rank by (acc, acc_norm, macro_f1, rouge_l...)."
    ),
    task: str | None = typer.Option(None, help="Only this task."),
    reference: bool = typer.Option(True, help="Also show published reference results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """The leaderboard: latest measured result per model x task, then published numbers,
    kept apart: a published value stands beside a measured one only under the same protocol."""
    from medarena.store.queries import format_ci

    with ctx.obj.store() as store:
        rows = store.leaderboard(metric, include_reference=reference)
        usage = store.api_usage()
    if task:
        rows = [row for row in rows if row.task == task]
    measured = [row for row in rows if row.source == "measured"]
    published = [row for row in rows if row.source != "measured"]
    from medarena.compare import beside_measured

    if as_json:
        data = [vars(row) for row in measured] + [
            {**vars(row), "beside_measured": beside_measured(row, measured)} for row in published
        ]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table(title=f"measured {metric} (latest completed run; 95% bootstrap CI)")
    quantized = any(row.quantization for row in measured)  # a column only when it says something
    columns = ("task", "model", *(("quantization",) if quantized else ()), "family", "mode")
    for column in (*columns, "shots", metric, "n", "contaminated"):
        table.add_column(column)
    for row in measured:
        table.add_row(
            row.task,
            row.variant,
            *((row.quantization or "-",) if quantized else ()),
            row.family,
            row.scoring_mode,
            str(row.shots),
            format_ci(row),
            str(row.n),
            "-" if row.contaminated is None else f"{row.contaminated:.0%}",
        )
    out.print(table if measured else f"no measured {metric} yet: run `medarena eval`")
    if published:
        out.print(_published_table(metric, published, measured))
    if usage:
        out.print(_usage_table([row for row in usage if not task or row.task == task]))


def _usage_table(usage: list) -> Table:
    """Tokens and cost of the latest API runs, with their total."""
    table = Table(title="API usage (latest completed runs)")
    for column in ("task", "model", "mode", "shots", "items", "tokens in", "tokens out", "USD"):
        table.add_column(column)
    for row in usage:
        table.add_row(
            row.task,
            row.variant,
            row.scoring_mode,
            str(row.shots),
            str(row.n_items),
            f"{row.input_tokens:,}",
            f"{row.output_tokens:,}",
            "unknown" if row.cost_usd is None else f"{row.cost_usd:,.4f}",
        )
    costs = [row.cost_usd for row in usage]
    if len(usage) > 1:
        total = "unknown" if None in costs else f"{sum(costs):,.4f}"  # type: ignore[arg-type]
        table.add_row("total", "", "", "", "", "", "", total)
    return table


def _published_table(metric: str, published: list, measured: list) -> Table:
    """Published values with their protocol and how each stands beside the measured ones."""
    from medarena.compare import beside_measured

    table = Table(title=f"published {metric} (reference results, not measured here)")
    for column in ("task", "model", "protocol", "shots", metric, "beside measured", "source"):
        table.add_column(column)
    for row in published:
        table.add_row(
            row.task,
            row.variant,
            row.protocol or "-",
            "unknown" if row.shots is None else str(row.shots),
            f"{row.value:.3f}",
            beside_measured(row, measured),
            row.source,
        )
    return table
