"""`medarena protocols ls | show` and `medarena reproduce`: evaluation protocols of the seed
papers and leaderboards, and reproduction reports of published results under them."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import typer
from rich.table import Table

from medarena.cli.common import out, reports_errors
from medarena.cli.evaluate import print_outcomes, progress_bar

app = typer.Typer(help="Evaluation protocols (benchmarks/protocols/*.yaml).", no_args_is_help=True)


@app.command("ls")
@reports_errors
def protocols_ls(ctx: typer.Context) -> None:
    """List the protocols: tasks, scoring, shots and seeds, and their source."""
    from medarena.evaluate.protocol import load_protocols

    protocols = load_protocols(ctx.obj.workspace)
    table = Table(title=f"{len(protocols)} evaluation protocols")
    for column in ("protocol", "tasks", "settings", "source"):
        table.add_column(column)
    for protocol in protocols.values():
        table.add_row(
            protocol.name,
            "\n".join(entry.task for entry in protocol.tasks),
            "\n".join(_setting(entry) for entry in protocol.tasks),
            protocol.source,
        )
    out.print(table)


def _setting(entry: Any, shots: int | None = None) -> str:
    """`entry`'s settings in a few words (`shots`: the variant's, after size overrides)."""
    parts = [entry.mode, f"{entry.shots if shots is None else shots}-shot"]
    if len(entry.seeds) > 1:
        parts.append(f"{len(entry.seeds)} seeds")
    if entry.cot:
        parts.append("CoT")
    if entry.samples > 1:
        parts.append(f"SC {entry.samples} @ T={entry.temperature:g}")
    elif entry.temperature:
        parts.append(f"T={entry.temperature:g}")
    return ", ".join(parts)


@app.command("show")
@reports_errors
def protocols_show(ctx: typer.Context, name: str = typer.Argument(..., help="A protocol.")):
    """Print one protocol as JSON (every setting, its source and its known differences)."""
    from medarena.evaluate.protocol import get_protocol, load_protocols

    protocol = get_protocol(load_protocols(ctx.obj.workspace), name)
    out.print_json(json.dumps(protocol.model_dump(mode="json")))


@reports_errors
def reproduce(
    ctx: typer.Context,
    protocol_name: str = typer.Option(..., "--protocol", "-p", help="A protocol (protocols ls)."),
    model: str = typer.Option(..., "--model", "-m", help="The variant whose results to check."),
    task_names: list[str] = typer.Option(
        [], "--task", "-t", help="Only these of the protocol's tasks."
    ),
    plan_only: bool = typer.Option(False, "--plan", help="List the runs and their cost only."),
    engine: str = typer.Option("hf", help="hf (transformers), vllm, or openai (API variants)."),
    data: str = typer.Option("bundled", help="bundled (offline samples) or hub (full datasets)."),
    limit: int | None = typer.Option(None, min=1, help="Only the first n items of each task."),
    hardware: str = typer.Option(
        "h100-80gb-sxm", help="Hardware profile the --plan estimate assumes."
    ),
) -> None:
    """Run (or resume) a protocol on a variant, then set every published result of that variant
    under the same protocol beside the measurement: measured with 95% CI, published,
    difference, whether it lies in the CI, and every known mismatch. Reports are stored."""
    from medarena.evaluate.plans import plan_protocol_evaluation, run_plans
    from medarena.evaluate.protocol import get_protocol, load_protocols
    from medarena.evaluate.reproduce import Measured, compare_published, published_results
    from medarena.evaluate.runner import EvalOptions

    registry = ctx.obj.registry()
    protocol = get_protocol(load_protocols(registry.root), protocol_name)
    base = EvalOptions(engine=engine, data=data, limit=limit)
    planned = plan_protocol_evaluation(registry, protocol, [model], task_names, base)
    ((entry, plans),) = planned.work
    published = [
        found
        for found in published_results(registry, model, protocol.name)
        if not task_names or found.result.task in task_names
    ]
    if plan_only:
        print_reproduction_plan(registry, protocol, planned, hardware, published)
        return
    with ctx.obj.store() as store:
        outcomes = run_plans(
            store,
            registry,
            [entry],
            plans,
            engine,
            task_data=planned.task_data,
            progress=progress_bar,
        )
        by_task: dict[str, Measured] = defaultdict(lambda: Measured([], []))
        for task, _options, outcome in outcomes:
            by_task[task.name].runs.append(outcome.run)
            by_task[task.name].metrics.append(outcome.metrics)
        reports = [compare_published(protocol, p, by_task.get(p.result.task)) for p in published]
        store.add_reproductions(reports)
        checks = {task: store.latest_contamination(model, task) for task in sorted(by_task)}
    print_outcomes(outcomes)
    print_reports(reports, protocol.name, model)
    for task, check in checks.items():
        if check is not None:  # `medarena contamination` was run: say what it found
            out.print(
                f"contamination: {check.n_contaminated} of {check.n_items} {task} items "
                f"flagged in {model}'s training data (check {check.id}, {check.n}-grams)",
                highlight=False,
            )
    if protocol.differences:
        out.print("known differences of this protocol from its source:")
        for difference in protocol.differences:
            out.print(f"  - {difference}")


def print_reproduction_plan(registry, protocol, planned, hardware, published) -> None:
    from medarena.evaluate.plans import task_data_key
    from medarena.evaluate.reproduce import api_cost, estimate, item_tokens, mean_item_chars

    profile = registry.hardware_profile(hardware)
    ((entry, plans),) = planned.work
    source = entry.variant.source
    api = source.kind == "api"
    prices = source.prices if api else None
    table = Table(
        title=f"plan: {len(plans)} runs of {entry.variant.name}"
        + ("" if api else f" (estimates on {hardware})")
    )
    columns = ["task", "setting", "seed", "items", "tokens"]
    columns += (["cost (USD)"] if prices else []) if api else ["GPU-hours"]
    for column in columns:
        table.add_column(column)
    total = cost = 0.0
    for task, options in plans:
        data = planned.task_data[task_data_key(task, options)]
        chars = mean_item_chars(data.items)
        expected = protocol.entry(task.name).expected_items
        items = expected or len(data.items)
        if api:  # billed per token; its size may be undisclosed and no GPU of ours runs it
            tokens, hours = items * sum(item_tokens(task, options, chars)), 0.0
        else:
            params = entry.variant.params_b * 1e9
            tokens, hours = estimate(task, options, items, chars, params, profile)
        total += hours
        row = [
            task.name,
            _setting(protocol.entry(task.name), options.shots),
            str(options.seed),
            f"{items:,}" + ("" if expected else " (bundled sample)"),
            f"{tokens:,.0f}",
        ]
        if prices:
            run_cost = api_cost(task, options, items, chars, prices)
            cost += run_cost
            row.append(f"{run_cost:,.2f}")
        elif not api:
            row.append(f"{hours:.2f}")
        table.add_row(*row)
    out.print(table)
    if prices:
        out.print(
            f"this protocol on {entry.variant.name} costs about ${cost:,.2f}: "
            f"${prices.input_per_million:g} / ${prices.output_per_million:g} per million tokens "
            f"in / out ({prices.source}, {prices.date}), 4 characters per token, every "
            "generation at its full token budget"
        )
    elif api:
        out.print(f"cost unknown: {entry.variant.name} declares no prices")
    else:
        out.print(
            f"about {total:.1f} GPU-hours on {hardware}: prompts at 40% MFU, generated tokens at "
            "2% MFU (docs/PERFORMANCE.md, Baselines), 4 characters per token"
        )
    out.print(f"{len(published)} published result(s) under this protocol to compare")


def print_reports(reports: list[Any], protocol: str, model: str) -> None:
    table = Table(title=f"reproduction of {model}'s published results under {protocol}")
    for column in ("task", "metric", "published", "measured [95% CI]", "difference", "verdict"):
        table.add_column(column)
    for report in reports:
        measured = "-"
        if report.measured is not None:
            measured = f"{report.measured:.3f}"
            if report.sd is not None:
                measured += f" ± {report.sd:.3f} sd"
            if report.ci_low is not None:
                measured += f" [{report.ci_low:.3f}, {report.ci_high:.3f}]"
        difference = report.difference
        verdict = report.verdict + "".join(f"\n- {m}" for m in report.mismatches)
        table.add_row(
            report.task,
            report.metric,
            f"{report.published:.3f}",
            measured,
            "-" if difference is None else f"{difference:+.3f}",
            verdict,
        )
    out.print(table if reports else f"no published result of {model} under {protocol}")
