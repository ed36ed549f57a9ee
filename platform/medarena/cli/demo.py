"""`medarena demo`: the whole loop on the embedded tiny family, offline, then a summary of what
each stage changed (the leaderboard and paired head-to-heads read back from the store). Every
stage calls a service (the tiny build, training, evaluation, the store), never another command."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from medarena.cli.common import out, reports_errors
from medarena.cli.evaluate import print_outcomes, progress_bar
from medarena.cli.models import models_table
from medarena.cli.train import run_prepared
from medarena.registry import Registry, load_registry

if TYPE_CHECKING:
    from medarena.evaluate.plans import Plan
    from medarena.evaluate.runner import EvalOptions
    from medarena.evaluate.spec import BenchmarkTask

DEMO_BASE = "tiny-medical-base"
DEMO_PRETRAINED = "tiny-medical-base-tiny-demo"
DEMO_TUNED = "tiny-medical-chat"
DEMO_RECIPE = "tiny-demo"

# what a leaderboard cell shows when the task has no accuracy (QA cells: acc and parse
# failures): the first three of these the task reports, in this order
HEADLINE = (
    "strict_f1",
    "lenient_f1",
    "micro_f1",
    "macro_f1",
    "exact_match",
    "token_f1",
    "rouge_l",
    "bertscore_f1",
    "bartscore",
)


@dataclass(frozen=True)
class HeadToHead:
    """One paired comparison the demo reports: what a stage should change, and where."""

    a: str
    b: str
    mode: str
    claim: str
    # check A's items against its training data and split the gain into clean / flagged items
    contamination: bool = False


@reports_errors
def demo(ctx: typer.Context) -> None:
    """The offline demo: build the tiny family, create the database, register the catalogue,
    continually pretrain the tiny model on the tiny-demo mix with DeepSpeed, LoRA-tune the result
    on the bundled instruction samples, evaluate all three on every bundled benchmark in every
    scoring mode, and summarise. Run twice, it reuses what is already built, trained and
    evaluated."""
    from medarena.evaluate.protocol import sync_registry
    from medarena.tiny import build_embedded

    registry: Registry = ctx.obj.registry()
    db_url = ctx.obj.db_url()
    embedded = [
        name for name, entry in registry.variants.items() if entry.variant.source.kind == "embedded"
    ]
    for name in embedded:
        build = build_embedded(registry, name)
        out.print(
            f"[1/7] tiny model {name}: {build.num_parameters:,} parameters, vocab "
            f"{build.vocab_size}, weights sha256 {build.weights_sha256[:12]} at {build.path}"
        )
    with ctx.obj.store() as store:
        report = sync_registry(store, registry)
    out.print(
        f"[2/7] database {db_url}: {report.families} families, "
        f"{report.variants} variants, {report.reference_results} published results"
    )
    out.print("[3/7] the registry:")
    out.print(models_table(registry))
    out.print(
        f"[4/7] continual pretraining of {DEMO_BASE} on the {DEMO_RECIPE} mix "
        "(pretrain/tiny-demo.yaml; DeepSpeed ZeRO-2 on the CPU):"
    )
    pretrained = train_once(registry, db_url, "pretrain", DEMO_BASE, DEMO_PRETRAINED)
    tuned = None
    if pretrained:
        out.print(
            f"[5/7] LoRA instruction tuning of {pretrained} (instruct/tiny-demo.yaml; PEFT + "
            "DeepSpeed, ChatML):"
        )
        tuned = train_once(load_registry(registry.root), db_url, "instruct", pretrained, DEMO_TUNED)
    variants = embedded + [name for name in (pretrained, tuned) if name]
    out.print(
        f"[6/7] evaluating {', '.join(variants)} on every bundled benchmark, every scoring mode "
        "(hf engine, 0-shot, seed 0):"
    )
    evaluate_all(ctx, variants)
    out.print("[7/7] what each stage changed (read back from the database):")
    with ctx.obj.store() as store:
        print_summary(store, variants, registry.root)
    out.print(
        "next: medarena results --metric acc | "
        f"medarena compare {DEMO_TUNED} {DEMO_BASE} -t medqa_4options --mode generate | "
        'medarena query "SELECT kind, step, loss FROM training_steps JOIN training_runs r '
        'ON r.id = training_run_id ORDER BY r.id, step"'
    )
    out.print(f"open the dashboard: medarena dashboard --db {db_url}   (http://127.0.0.1:8501)")


def train_once(registry: Registry, db_url: str, kind: str, model: str, output: str) -> str | None:
    """The demo's training steps: recipe tiny-demo of `kind` (pretrain or instruct) on one CPU
    process, once. Returns the trained variant's name (None when the workspace lacks the
    recipe)."""
    from medarena.instruct.recipe import load_recipes as load_instruct_recipes
    from medarena.pretrain.recipe import load_recipes
    from medarena.training.service import Placement, prepare_instruct, prepare_pretrain

    recipes = (load_recipes if kind == "pretrain" else load_instruct_recipes)(registry.root)
    if DEMO_RECIPE not in recipes:
        out.print(f"no recipe {DEMO_RECIPE!r} under {registry.root / kind}: skipped")
        return None
    if output in registry.variants:
        out.print(f"{output} is already trained and registered: reused")
        return output
    prepare = prepare_pretrain if kind == "pretrain" else prepare_instruct
    prepared = prepare(registry, db_url, DEMO_RECIPE, model, Placement(), output)
    run_prepared(registry, prepared, hostfile=None)
    return output


def evaluate_all(ctx: typer.Context, variants: list[str]) -> None:
    """Every bundled task in each of its scoring modes, 0-shot, for every variant."""
    from medarena.evaluate.plans import every_mode, run_plans

    registry = ctx.obj.registry()
    plans = [with_tiny_bartscore(task, options) for task, options in every_mode(registry)]
    if not plans:
        out.print(f"no benchmark specs in {registry.root / 'benchmarks'}: nothing to evaluate")
        return
    entries = [registry.variant(v) for v in variants]
    with ctx.obj.store() as store:
        outcomes = run_plans(store, registry, entries, plans, "hf", progress=progress_bar)
    print_outcomes(outcomes)


def with_tiny_bartscore(task: BenchmarkTask, options: EvalOptions) -> Plan:
    """Summaries are also scored by BARTScore on the offline tiny BART (random weights: the
    demo shows the metric stored per item, not a quality)."""
    from medarena.evaluate.bartscore import TINY

    if task.kind != "summarization" or "bartscore" in task.metrics:
        return task, options
    task = task.model_copy(update={"metrics": [*task.metrics, "bartscore"]})
    return task, replace(options, bartscore_model=TINY)


def print_summary(store, variants: list[str], root: Path) -> None:
    """The leaderboard of the demo's variants, then the paired comparisons that show what
    continual pretraining (cloze accuracy) and instruction tuning (generated answers) did; the
    pretraining gain is split into items its training data contains and the others (the
    tiny-demo mix's key-facts passages were written to teach the bundled items' facts)."""
    latest = store.latest_metrics(variants, shots=0)
    out.print(_leaderboard(latest, variants))
    comparisons = []
    if DEMO_PRETRAINED in variants:
        comparisons.append(
            HeadToHead(
                DEMO_PRETRAINED,
                DEMO_BASE,
                "cloze",
                "pretraining: option-text likelihood",
                contamination=True,
            )
        )
    if DEMO_TUNED in variants:
        comparisons.append(HeadToHead(DEMO_TUNED, DEMO_BASE, "generate", "instruction tuning"))
    for comparison in comparisons:
        out.print(_head_to_head(store, latest, comparison, root))


def _leaderboard(latest: dict[tuple[str, str, str], dict[str, float]], variants: list[str]):
    table = Table(
        title="leaderboard: 0-shot, seed 0 (acc / parse failures; otherwise the headline "
        "metrics; BARTScore on the tiny BART)"
    )
    table.add_column("task")
    table.add_column("mode")
    for variant in variants:
        table.add_column(variant, justify="right")
    for task, mode in sorted({(task, mode) for _, task, mode in latest}):
        cells = []
        for variant in variants:
            values = latest.get((variant, task, mode))
            cells.append(_cell(values) if values else "-")
        table.add_row(task, mode, *cells)
    return table


def _cell(values: dict[str, float]) -> str:
    if "micro_f1" in values:  # label sets: Me-LLaMA reports macro F1; exact-set acc says little
        return f"macro_f1 {values['macro_f1']:.3f} / micro_f1 {values['micro_f1']:.3f}"
    if "acc" in values:
        failures = values.get("parse_failure_rate")
        return f"{values['acc']:.3f}" + ("" if failures is None else f" / {failures:.2f} fail")
    shown = [name for name in HEADLINE if name in values][:3]
    return " / ".join(f"{name} {values[name]:.3f}" for name in shown)


def _head_to_head(store, latest, comparison: HeadToHead, root: Path) -> Table:
    from medarena.compare import compare_variants

    table = Table(
        title=f"{comparison.claim}: {comparison.a} (A) vs {comparison.b} (B), "
        f"{comparison.mode} mode, paired per item"
    )
    columns = ["task", "metric", "items", "A", "B", "A wins", "B wins", "p", "parse fail A/B"]
    if comparison.contamination:
        columns.append("A - B: flagged items / clean items")
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    a, b = comparison.a, comparison.b
    tasks = sorted({task for variant, task, mode in latest if mode == comparison.mode})
    for task in tasks:
        if any((variant, task, comparison.mode) not in latest for variant in (a, b)):
            continue
        result = compare_variants(store, a, b, task, scoring_mode=comparison.mode, shots=0)
        stats = result.stats
        fail_a = latest[(a, task, comparison.mode)].get("parse_failure_rate")
        fail_b = latest[(b, task, comparison.mode)].get("parse_failure_rate")
        table.add_row(
            task,
            stats.metric,
            str(stats.n),
            f"{stats.mean_a:.3f}",
            f"{stats.mean_b:.3f}",
            str(stats.wins),
            str(stats.losses),
            f"{stats.p_value:.2g} ({stats.test})",
            "-" if fail_a is None or fail_b is None else f"{fail_a:.2f} / {fail_b:.2f}",
            *([_gain_by_contamination(store, root, result)] if comparison.contamination else []),
        )
    return table


def _gain_by_contamination(store, root: Path, result) -> str:
    """A's 13-gram check against its own training data, then A - B on the flagged and on the
    clean items (`n` each): how much of a gain sits on items the training data contains."""
    from medarena.analysis.contamination import check
    from medarena.compare import split_by_contamination

    check(store, root, result.run_a.variant, result.run_a.task)
    split = split_by_contamination(store, result, result.stats.metric)
    parts = {subset.name: subset for subset in split.subsets} if split else {}
    return " / ".join(
        f"{parts[name].mean_a - parts[name].mean_b:+.3f} (n={parts[name].n})"
        if name in parts
        else "- (n=0)"
        for name in ("contaminated", "clean")
    )
