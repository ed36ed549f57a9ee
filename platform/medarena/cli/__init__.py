"""The `medarena` command: one typer app assembled from one module per command group.

Commands parse options, call services (`medarena.training.service`, `medarena.evaluate.plans`,
`medarena.tiny`, the store) and print; errors are handled once (`common.reports_errors`). Heavy
libraries (torch, transformers...) are imported inside the commands that need them, so
`medarena --help` and `medarena models ls` stay fast.
"""

from __future__ import annotations

import typer

from medarena.cli import (
    analysis,
    compare,
    data,
    db,
    demo,
    evaluate,
    models,
    protocols,
    sweep,
    train,
    workspace,
)
from medarena.cli.common import Context

app = typer.Typer(
    name="medarena",
    help="Train and compare medical language models: registry, training, evaluation, results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def main(
    ctx: typer.Context,
    workspace_dir: str | None = typer.Option(
        None,
        "--workspace",
        "-w",
        envvar="MEDARENA_WORKSPACE",
        help="Workspace folder (holds models/); default: found upwards from the current folder.",
    ),
    db_url: str | None = typer.Option(
        None,
        "--db",
        envvar="MEDARENA_DB_URL",
        help="SQLAlchemy URL or SQLite file; default: <workspace>/.medarena/medarena.db.",
    ),
) -> None:
    ctx.obj = Context(workspace_dir, db_url)


app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.add_typer(workspace.tiny_app, name="tiny")
app.add_typer(evaluate.benchmarks_app, name="benchmarks")
app.add_typer(train.app, name="train")
app.add_typer(data.app, name="data")
app.add_typer(protocols.app, name="protocols")
app.add_typer(sweep.app, name="sweep")
app.command("validate")(workspace.validate)
app.command("schema")(workspace.schema)
app.command("query")(db.query)
app.command("eval")(evaluate.eval_command)
app.command("results")(evaluate.results)
app.command("reproduce")(protocols.reproduce)
app.command("compare")(compare.compare)
app.command("dashboard")(compare.dashboard)
app.command("demo")(demo.demo)
app.command("rescore")(analysis.rescore)
app.command("contamination")(analysis.contamination)

__all__ = ["app"]
