"""`medarena benchmarks`, `medarena eval` and `medarena results`: evaluation from the command line.

Imported by medarena.cli after its commands are defined; torch and the engines load only inside
`eval`, so listing benchmarks and printing results stay fast.
"""

from __future__ import annotations

import functools
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medarena.cli import EXIT_REFUSED, app, err, out, reports_errors
from medarena.evaluate.spec import BenchmarkTask, load_benchmarks, select_tasks

benchmarks_app = typer.Typer(help="Benchmark task specs (benchmarks/*.yaml).", no_args_is_help=True)
app.add_typer(benchmarks_app, name="benchmarks")

F = TypeVar("F", bound=Callable[..., Any])


def refuses_bad_settings(command: F) -> F:
    """Settings that cannot be scored (wrong mode, too few demos, a prompt over the context
    with --truncation error, an unbuilt model) exit 2 with the reason."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValueError, FileNotFoundError) as exc:
            err.print(f"error: {exc}", style="red", markup=False, highlight=False)
            raise typer.Exit(EXIT_REFUSED) from None

    return wrapper  # type: ignore[return-value]


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


@benchmarks_app.command("validate")
@reports_errors
def benchmarks_validate(ctx: typer.Context) -> dict[str, Any]:
    """Check every spec, and that its bundled items load in its source format."""
    from medarena.evaluate.runner import load_task_data
    from medarena.registry import find_workspace

    root = find_workspace(ctx.obj.workspace)
    tasks = load_benchmarks(root)
    for task in tasks.values():
        data = load_task_data(task, root, need_pool=task.data.fewshot is not None)
        out.print(f"ok: {task.name}: {len(data.items)} items, {len(data.pool)} few-shot items")
    return tasks


@app.command("eval")
@reports_errors
@refuses_bad_settings
def eval_command(
    ctx: typer.Context,
    models: list[str] = typer.Option(..., "--model", "-m", help="Variant(s) to evaluate."),
    task_names: list[str] = typer.Option(
        ..., "--task", "-t", help="Task(s), or `all` for every benchmark."
    ),
    engine: str = typer.Option("hf", help="hf (transformers) or vllm."),
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
    data: str = typer.Option("bundled", help="bundled (offline samples) or hub (full datasets)."),
    truncation: str = typer.Option("left", help="Prompt over the context: left (cut) or error."),
    batch_size: int = typer.Option(32, min=1, help="hf engine batch size."),
    chunk_size: int = typer.Option(64, min=1, help="Items scored and stored per transaction."),
    bertscore_model: str = typer.Option(
        "minilm", help="BERTScore encoder: minilm (offline) or a bert-score model_type."
    ),
    chat_template: bool = typer.Option(
        True, help="Wrap prompts in the chat template of instruction-tuned variants."
    ),
    rerun: bool = typer.Option(
        False, help="Score again even if an identical completed run is stored (a new run)."
    ),
) -> None:
    """Evaluate variants on benchmark tasks; every item is stored, runs resume after a kill."""
    from medarena.evaluate.engines import ENGINES
    from medarena.evaluate.runner import EvalOptions, load_task_data
    from medarena.evaluate.tokens import TRUNCATION_POLICIES

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if truncation not in TRUNCATION_POLICIES:
        raise ValueError(f"--truncation must be one of {TRUNCATION_POLICIES}")
    registry = ctx.obj.registry()
    entries = [registry.variant(name) for name in models]
    benchmarks = load_benchmarks(registry.root)
    tasks = (
        list(benchmarks.values()) if task_names == ["all"] else select_tasks(benchmarks, task_names)
    )
    plans = [
        (
            task,
            EvalOptions(
                engine=engine,
                mode=mode or task.scoring_modes[0],
                shots=shots,
                seed=seed,
                cot=cot,
                samples=samples,
                temperature=temperature,
                limit=limit,
                data=data,
                truncation=truncation,
                chunk_size=chunk_size,
                bertscore_encoder=bertscore_model,
                use_chat_template=chat_template,
            ),
        )
        for task in tasks
        for seed in seeds
    ]
    for task, options in plans:
        options.check(task)  # refuse bad combinations before any model loads
    loaded: dict[tuple[Any, ...], Any] = {}
    for task, options in plans:  # and bad data (file:line: field) before the store is opened
        key = task_data_key(task, options)
        if key not in loaded:
            loaded[key] = load_task_data(
                task,
                registry.root,
                data=options.data,
                limit=options.limit,
                need_pool=options.shots > 0,
            )
    with ctx.obj.store() as store:
        outcomes = run_plans(
            store, registry, entries, plans, engine, batch_size, rerun=rerun, task_data=loaded
        )
    print_outcomes(outcomes)


def task_data_key(task: BenchmarkTask, options: Any) -> tuple[Any, ...]:
    """What load_task_data's result depends on, besides the task."""
    return (task.name, options.data, options.limit, options.shots > 0)


def run_plans(
    store: Any,
    registry: Any,
    entries: list[Any],
    plans: list[tuple[BenchmarkTask, Any]],
    engine: str,
    batch_size: int = 32,
    *,
    rerun: bool = False,
    task_data: dict[tuple[Any, ...], Any] | None = None,
) -> list[tuple[BenchmarkTask, Any, Any]]:
    """Every plan (task, options) for every variant; one engine per variant, loaded only if
    some item still needs scoring, closed when the variant is done. `task_data`: items already
    read, by task_data_key."""
    from medarena.evaluate.engines import load_engine
    from medarena.evaluate.runner import evaluate

    store.sync_registry(registry)
    outcomes = []
    for entry in entries:
        loaded: list[Any] = []

        def engine_loader(entry: Any = entry, loaded: list[Any] = loaded) -> Any:
            if not loaded:
                extra = {"batch_size": batch_size} if engine == "hf" else {}
                loaded.append(load_engine(engine, registry, entry, **extra))
            return loaded[0]

        try:
            for task, options in plans:
                label = f"{entry.variant.name} {task.name} {options.mode} seed={options.seed}"
                with _progress() as bar:
                    bar_id = bar.add_task(label, total=None)

                    def advance(
                        done: int, total: int, bar: Any = bar, bar_id: Any = bar_id
                    ) -> None:
                        if total:
                            bar.update(bar_id, total=total, completed=done)
                        else:
                            bar.advance(bar_id, done)

                    outcome = evaluate(
                        store,
                        registry,
                        entry.variant.name,
                        task,
                        options,
                        engine_loader,
                        advance,
                        rerun=rerun,
                        task_data=(task_data or {}).get(task_data_key(task, options)),
                    )
                outcomes.append((task, options, outcome))
        finally:
            if loaded:
                loaded[0].close()
    return outcomes


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no bar redraws in logs and pipes
    )


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


@app.command("results")
@reports_errors
def results(
    ctx: typer.Context,
    metric: str = typer.Option(
        "acc", help="Metric to rank by (acc, acc_norm, macro_f1, rouge_l...)."
    ),
    task: str | None = typer.Option(None, help="Only this task."),
    reference: bool = typer.Option(True, help="Also show published reference results."),
) -> None:
    """The leaderboard: latest measured result per model x task, then published numbers,
    kept apart."""
    from medarena.store.queries import format_ci

    with ctx.obj.store() as store:
        rows = store.leaderboard(metric, include_reference=reference)
    if task:
        rows = [row for row in rows if row.task == task]
    measured = [row for row in rows if row.source == "measured"]
    published = [row for row in rows if row.source != "measured"]
    table = Table(title=f"measured {metric} (latest completed run; 95% bootstrap CI)")
    for column in ("task", "model", "family", "mode", "shots", metric, "n"):
        table.add_column(column)
    for row in measured:
        table.add_row(
            row.task,
            row.variant,
            row.family,
            row.scoring_mode,
            str(row.shots),
            format_ci(row),
            str(row.n),
        )
    out.print(table if measured else f"no measured {metric} yet: run `medarena eval`")
    if published:
        ref = Table(title=f"published {metric} (reference results, not measured here)")
        for column in ("task", "model", "setting", metric, "source"):
            ref.add_column(column)
        for row in published:
            ref.add_row(row.task, row.variant, row.scoring_mode, f"{row.value:.3f}", row.source)
        out.print(ref)


def demo_evaluation(ctx: typer.Context, variants: list[str]) -> None:
    """`medarena demo`'s evaluation: every bundled task in each of its scoring modes, 0-shot."""
    from medarena.evaluate.runner import EvalOptions

    registry = ctx.obj.registry()
    tasks = load_benchmarks(registry.root)
    if not tasks:
        out.print(f"no benchmark specs in {registry.root / 'benchmarks'}: nothing to evaluate")
        return
    plans = [
        (task, EvalOptions(mode=mode)) for task in tasks.values() for mode in task.scoring_modes
    ]
    with ctx.obj.store() as store:
        outcomes = run_plans(store, registry, [registry.variant(v) for v in variants], plans, "hf")
    print_outcomes(outcomes)
