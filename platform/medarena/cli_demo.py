"""`medarena demo`: the whole loop on the embedded tiny family, offline, then a summary of what
each stage changed (the leaderboard and paired head-to-heads read back from the store)."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.table import Table

from medarena.cli import _build_embedded, app, models_ls, out, reports_errors
from medarena.registry import Registry

DEMO_BASE = "tiny-medical-base"
DEMO_PRETRAINED = "tiny-medical-base-tiny-demo"
DEMO_TUNED = "tiny-medical-chat"
DEMO_RECIPE = "tiny-demo"

# what a summarization cell of the leaderboard shows (QA cells: acc and parse failures)
SUMMARY_SHOWN = ("rouge_l", "bertscore_f1")


@dataclass(frozen=True)
class HeadToHead:
    """One paired comparison the demo reports: what a stage should change, and where."""

    a: str
    b: str
    mode: str
    claim: str


@app.command("demo")
@reports_errors
def demo(ctx: typer.Context) -> None:
    """The offline demo: build the tiny family, create the database, register the catalogue,
    continually pretrain the tiny model on the tiny-demo mix with DeepSpeed, LoRA-tune the result
    on the bundled instruction samples, evaluate all three on every bundled benchmark in every
    scoring mode, and summarise. Run twice, it reuses what is already built, trained and
    evaluated."""
    from medarena.cli_evaluate import demo_evaluation
    from medarena.cli_train import demo_training

    registry: Registry = ctx.obj.registry()
    embedded = [
        name for name, entry in registry.variants.items() if entry.variant.source.kind == "embedded"
    ]
    for name in embedded:
        build = _build_embedded(registry, name)
        out.print(
            f"[1/7] tiny model {name}: {build.num_parameters:,} parameters, vocab "
            f"{build.vocab_size}, weights sha256 {build.weights_sha256[:12]} at {build.path}"
        )
    with ctx.obj.store() as store:
        report = store.sync_registry(registry)
    out.print(
        f"[2/7] database {ctx.obj.db_url()}: {report.families} families, "
        f"{report.variants} variants, {report.reference_results} published results"
    )
    out.print("[3/7] the registry:")
    models_ls(ctx, family=None, as_json=False)
    out.print(
        f"[4/7] continual pretraining of {DEMO_BASE} on the {DEMO_RECIPE} mix "
        "(pretrain/tiny-demo.yaml; DeepSpeed ZeRO-2 on the CPU):"
    )
    pretrained = demo_training(ctx, "pretrain", DEMO_BASE, DEMO_RECIPE, DEMO_PRETRAINED)
    tuned = None
    if pretrained:
        out.print(
            f"[5/7] LoRA instruction tuning of {pretrained} (instruct/tiny-demo.yaml; PEFT + "
            "DeepSpeed, ChatML):"
        )
        tuned = demo_training(ctx, "instruct", pretrained, DEMO_RECIPE, DEMO_TUNED)
    variants = embedded + [name for name in (pretrained, tuned) if name]
    out.print(
        f"[6/7] evaluating {', '.join(variants)} on every bundled benchmark, every scoring mode "
        "(hf engine, 0-shot, seed 0):"
    )
    demo_evaluation(ctx, variants)
    out.print("[7/7] what each stage changed (read back from the database):")
    with ctx.obj.store() as store:
        print_summary(store, variants)
    out.print(
        "next: medarena results --metric acc | "
        f"medarena compare {DEMO_TUNED} {DEMO_BASE} -t medqa_4options --mode generate | "
        'medarena query "SELECT kind, step, loss FROM training_steps JOIN training_runs r '
        'ON r.id = training_run_id ORDER BY r.id, step"'
    )
    out.print(
        f"open the dashboard: medarena dashboard --db {ctx.obj.db_url()}   (http://127.0.0.1:8501)"
    )


def print_summary(store, variants: list[str]) -> None:
    """The leaderboard of the demo's variants, then the paired comparisons that show what
    continual pretraining (cloze accuracy) and instruction tuning (generated answers) did."""
    latest = store.latest_metrics(variants, shots=0)
    out.print(_leaderboard(latest, variants))
    comparisons = []
    if DEMO_PRETRAINED in variants:
        comparisons.append(
            HeadToHead(DEMO_PRETRAINED, DEMO_BASE, "cloze", "pretraining: option-text likelihood")
        )
    if DEMO_TUNED in variants:
        comparisons.append(HeadToHead(DEMO_TUNED, DEMO_BASE, "generate", "instruction tuning"))
    for comparison in comparisons:
        out.print(_head_to_head(store, latest, comparison))


def _leaderboard(latest: dict[tuple[str, str, str], dict[str, float]], variants: list[str]):
    table = Table(title="leaderboard: 0-shot, seed 0 (acc / parse failures; ROUGE-L / BERTScore)")
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
    if "acc" in values:
        failures = values.get("parse_failure_rate")
        return f"{values['acc']:.3f}" + ("" if failures is None else f" / {failures:.2f} fail")
    return " / ".join(f"{values[name]:.3f}" for name in SUMMARY_SHOWN if name in values)


def _head_to_head(store, latest, comparison: HeadToHead) -> Table:
    from medarena.compare import compare_variants

    table = Table(
        title=f"{comparison.claim}: {comparison.a} (A) vs {comparison.b} (B), "
        f"{comparison.mode} mode, paired per item"
    )
    for column in ("task", "metric", "items", "A", "B", "A wins", "B wins", "p", "parse fail A/B"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    a, b = comparison.a, comparison.b
    tasks = sorted({task for variant, task, mode in latest if mode == comparison.mode})
    for task in tasks:
        if any((variant, task, comparison.mode) not in latest for variant in (a, b)):
            continue
        stats = compare_variants(store, a, b, task, scoring_mode=comparison.mode, shots=0).stats
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
        )
    return table
