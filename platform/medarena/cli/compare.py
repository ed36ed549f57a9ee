"""`medarena compare` (paired statistics of two variants on a task) and `medarena dashboard`.

Neither command imports torch.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from medarena.cli.common import EXIT_REFUSED, err, fail, out, reports_errors
from medarena.registry import find_workspace

if TYPE_CHECKING:
    from medarena.compare import ContaminationSplit

DASHBOARD_APP = Path("dashboard") / "app.py"


@reports_errors
def compare(
    ctx: typer.Context,
    variant_a: str = typer.Argument(..., help="Variant A."),
    variant_b: str = typer.Argument(..., help="Variant B."),
    task: str = typer.Option(..., "--task", "-t", help="The task both were evaluated on."),
    mode: str | None = typer.Option(None, help="Scoring mode, when several were run."),
    shots: int | None = typer.Option(None, min=0, help="Shots, when several were run."),
    metric: str | None = typer.Option(
        None,
        help="acc (default for QA), a per-item score (rouge_l, the default otherwise; "
        "bertscore_f1, exact_match...) or a corpus F1 (macro_f1, micro_f1, strict_f1, lenient_f1: "
        "paired bootstrap).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Paired comparison of A and B on one task (latest completed runs, same items): wins /
    losses / ties, exact McNemar (or sign-test) p-value, bootstrap 95% CI of the difference;
    for a corpus F1, the paired bootstrap's CI and p-value."""
    from medarena.compare import compare_variants, split_by_contamination

    with ctx.obj.store(create_if_empty=False) as store:
        result = compare_variants(
            store, variant_a, variant_b, task, scoring_mode=mode, shots=shots, metric=metric
        )
        split = split_by_contamination(store, result, result.stats.metric)
    stats = result.stats
    if as_json:
        data = {
            "variant_a": variant_a,
            "variant_b": variant_b,
            "task": task,
            "scoring_mode": result.run_a.scoring_mode,
            "shots": result.run_a.shots,
            "run_a": result.run_a.id,
            "run_b": result.run_b.id,
            **asdict(stats),
            "contamination": asdict(split) if split else None,
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table(
        title=f"{variant_a} (A) vs {variant_b} (B) on {task}, {result.run_a.scoring_mode} "
        f"{result.run_a.shots}-shot, runs {result.run_a.id} / {result.run_b.id}"
    )
    for column in ("metric", "items", "A", "B", "A - B [95% CI]", "A wins", "B wins", "ties"):
        table.add_column(column)
    table.add_column(f"p ({stats.test})")
    table.add_row(
        stats.metric,
        str(stats.n),
        f"{stats.mean_a:.4f}",
        f"{stats.mean_b:.4f}",
        f"{stats.difference:+.4f} [{stats.ci_low:+.4f}, {stats.ci_high:+.4f}]",
        str(stats.wins),
        str(stats.losses),
        str(stats.ties),
        f"{stats.p_value:.4g}",
    )
    out.print(table)
    if split is not None:
        out.print(_split_table(variant_a, variant_b, split))
    if stats.only_in_a or stats.only_in_b:
        err.print(
            f"note: compared on the {stats.n} items both runs scored; {stats.only_in_a} only in "
            f"A's run, {stats.only_in_b} only in B's"
        )


def _split_table(variant_a: str, variant_b: str, split: ContaminationSplit) -> Table:
    """Clean / contaminated items apart, and the paired test on the clean ones."""
    checks = ", ".join(
        f"{name} check {check}" if check else f"{name} not checked"
        for name, check in split.checks.items()
    )
    table = Table(title=f"by contamination (items flagged by either variant's check: {checks})")
    for column in ("items", "n", f"A ({variant_a}) [95% CI]", f"B ({variant_b}) [95% CI]"):
        table.add_column(column)
    table.add_column("clean: A - B [95% CI], p")
    for subset in split.subsets:
        paired = ""
        if subset.name == "clean" and split.clean is not None:
            clean = split.clean
            paired = (
                f"{clean.difference:+.4f} [{clean.ci_low:+.4f}, {clean.ci_high:+.4f}], "
                f"p {clean.p_value:.4g} ({clean.test})"
            )
        table.add_row(
            subset.name,
            str(subset.n),
            f"{subset.mean_a:.4f} [{subset.ci_a[0]:.4f}, {subset.ci_a[1]:.4f}]",
            f"{subset.mean_b:.4f} [{subset.ci_b[0]:.4f}, {subset.ci_b[1]:.4f}]",
            paired,
        )
    return table


@reports_errors
def dashboard(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None, "--db", help="SQLAlchemy URL or SQLite file; default: as `medarena --db`."
    ),
    port: int = typer.Option(8501, min=1, max=65535, help="Port on 127.0.0.1."),
) -> None:
    """Open the Streamlit dashboard on the results database (127.0.0.1 only; read-only)."""
    from medarena.store import resolve_url

    url = resolve_url(db, None) if db else ctx.obj.db_url()
    app_path = find_workspace(ctx.obj.workspace) / DASHBOARD_APP
    if not app_path.is_file():
        raise fail(f"{app_path} not found: run from a medarena checkout", EXIT_REFUSED)
    env = {**os.environ, "MEDARENA_DB_URL": url}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        # views show short messages themselves; never a traceback
        "--client.showErrorDetails",
        "none",
    ]
    out.print(f"dashboard on http://127.0.0.1:{port} for {url} (Ctrl-C stops)")
    sys.stdout.flush()
    # streamlit replaces this process, so Ctrl-C and signals reach the server itself
    os.execve(sys.executable, command, env)
