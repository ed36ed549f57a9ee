"""The `medarena` command. Heavy libraries (torch, transformers...) are imported inside the
commands that need them, so `medarena --help` and `medarena models ls` stay fast."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from medarena.errors import MedarenaError
from medarena.registry import STATE_DIR, Registry, add_family, find_workspace, load_family_file, load_registry
from medarena.yaml_source import field_path
from medarena.errors import Problem, ProblemsError

app = typer.Typer(
    name="medarena",
    help="Train and compare medical language models: registry, training, evaluation, results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(help="The model registry (models/*.yaml).", no_args_is_help=True)
db_app = typer.Typer(help="The results database.", no_args_is_help=True)
tiny_app = typer.Typer(help="The embedded tiny offline family.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(tiny_app, name="tiny")

# wide tables when piped (rich assumes 80 columns without a terminal); $COLUMNS still wins
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)

EXIT_FAILED = 1  # something went wrong while working
EXIT_REFUSED = 2  # bad input or a refused request: nothing was changed


@dataclass
class Context:
    workspace: str | None
    db: str | None

    def registry(self) -> Registry:
        return load_registry(self.workspace)

    def db_url(self) -> str:
        from medarena.store import resolve_url

        state_dir = None
        if self.db is None:
            state_dir = find_workspace(self.workspace) / STATE_DIR
        return resolve_url(self.db, state_dir)

    def store(self, *, create_if_empty: bool = True):
        from medarena.store import Store

        return Store(self.db_url(), create_if_empty=create_if_empty)


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn the errors a user can fix into a message on stderr and a non-zero exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MedarenaError as exc:  # exit 2: bad input or refused; 1: failed while working
            err.print(f"error: {exc}", style="red", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    ctx: typer.Context,
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        "-w",
        envvar="MEDARENA_WORKSPACE",
        help="Workspace folder (holds models/); default: found upwards from the current folder.",
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        envvar="MEDARENA_DB_URL",
        help="SQLAlchemy URL or SQLite file; default: <workspace>/.medarena/medarena.db.",
    ),
) -> None:
    ctx.obj = Context(workspace, db)


# --------------------------------------------------------------------------------- models


@models_app.command("ls")
@reports_errors
def models_ls(
    ctx: typer.Context,
    family: str | None = typer.Option(None, "--family", help="Only this family."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List model families and their variants."""
    registry: Registry = ctx.obj.registry()
    families = (
        [registry.family(family)]
        if family
        else [registry.families[name] for name in sorted(registry.families)]
    )
    if as_json:
        data = [f.model_dump(mode="json", exclude_none=True) for f in families]
        out.print_json(json.dumps(data))
        return
    table = Table(
        title=f"{len(families)} model families, {sum(len(f.variants) for f in families)} variants"
    )
    for column in (
        "family",
        "variant",
        "params",
        "context",
        "quantization",
        "template",
        "access",
        "source",
    ):
        table.add_column(column)
    for fam in families:
        for index, variant in enumerate(fam.variants):
            table.add_row(
                fam.name if index == 0 else "",
                variant.name,
                _params(variant.params_b),
                str(variant.context_length),
                _quantization(variant.quantization),
                variant.chat_template or "-",
                "gated" if variant.gated else "open",
                _source(variant),
            )
    out.print(table)


def _quantization(quant: Any) -> str:
    if quant is None:
        return "-"
    detail = quant.scheme or (f"g{quant.group_size}" if quant.group_size else "")
    return f"{quant.method} {quant.bits}-bit {detail}".strip()


def _params(params_b: float) -> str:
    return f"{params_b:g}B" if params_b >= 1 else f"{params_b * 1000:g}M"


def _source(variant: Any) -> str:
    source = variant.source
    return {
        "hub": lambda: f"hub:{source.repo_id}",
        "local": lambda: f"local:{source.path}",
        "adapter": lambda: f"adapter:{source.path} on {source.base}",
        "external": lambda: f"external:{source.url}",
        "embedded": lambda: f"embedded:{source.builder} seed={source.seed}",
    }[source.kind]()


@models_app.command("show")
@reports_errors
def models_show(ctx: typer.Context, name: str = typer.Argument(..., help="Family or variant.")):
    """Show one family card, or one variant with its family and lineage."""
    registry: Registry = ctx.obj.registry()
    if name in registry.families:
        data: dict[str, Any] = registry.families[name].model_dump(mode="json", exclude_none=True)
        data["file"] = registry.files[f"families:{name}"]
    else:
        entry = registry.variant(name)
        data = {
            "family": entry.family.name,
            **entry.variant.model_dump(mode="json", exclude_none=True),
            "lineage": registry.lineage(name),
            "load_from": _load_from(registry, entry.variant),
        }
    out.print_json(json.dumps(data))


def _load_from(registry: Registry, variant: Any) -> str:
    try:
        return registry.weights_location(variant)
    except ValueError as exc:
        return str(exc)


@models_app.command("validate")
@reports_errors
def models_validate(ctx: typer.Context) -> None:
    """Load and check every YAML under models/; list every problem with file, line and field."""
    registry: Registry = ctx.obj.registry()
    out.print(
        f"ok: {len(registry.families)} families, {len(registry.variants)} variants, "
        f"{len(registry.chat_templates)} chat templates, {len(registry.hardware)} hardware "
        f"profiles, {sum(len(r.results) for r in registry.references.values())} published results"
    )


# flag name -> field path in the card, so errors about flags name the flag
_ADD_FLAGS = {
    "name": "--name",
    "display_name": "--display-name",
    "developer": "--developer",
    "license": "--license",
    "paper": "--paper",
    "continued_from": "--continued-from",
    "variants[0].name": "--variant",
    "variants[0].params_b": "--params-b",
    "variants[0].context_length": "--context-length",
    "variants[0].architecture": "--architecture",
    "variants[0].dtype": "--dtype",
    "variants[0].chat_template": "--chat-template",
    "variants[0].parent": "--parent",
    "variants[0].source.repo_id": "--hub-id",
    "variants[0].source.revision": "--revision",
    "variants[0].source.path": "--local-path",
}


@models_app.command("add")
@reports_errors
def models_add(
    ctx: typer.Context,
    file: Path | None = typer.Option(None, "--file", "-f", help="A family card YAML to add."),
    name: str | None = typer.Option(None, help="Family name (lower-case id)."),
    display_name: str | None = typer.Option(None, help="Human-readable family name."),
    developer: str | None = typer.Option(None),
    license: str | None = typer.Option(None, help="License id as on the model card."),
    paper: str | None = typer.Option(None, help="arXiv id or URL."),
    continued_from: str | None = typer.Option(None, help="What the family was trained from."),
    variant: str | None = typer.Option(None, help="Name of the first variant."),
    params_b: float | None = typer.Option(None, help="Parameters, in billions."),
    context_length: int | None = typer.Option(None),
    hub_id: str | None = typer.Option(None, help="Hugging Face repo id of the weights."),
    revision: str = typer.Option("main", help="Hub revision; pin a commit for reproducibility."),
    local_path: str | None = typer.Option(None, help="Local folder of the weights instead."),
    architecture: str = typer.Option("llama"),
    dtype: str = typer.Option("bfloat16"),
    chat_template: str | None = typer.Option(None, help="Name of a registered chat template."),
    instruction_tuned: bool = typer.Option(False),
    gated: bool = typer.Option(False, help="Access must be requested before download."),
    parent: str | None = typer.Option(None, help="Variant this one was trained from."),
) -> None:
    """Add a model family from a YAML card (--file) or from flags (one variant).

    The card is validated with the whole registry (duplicate names, unknown chat template or
    parent) and written to models/<family>.yaml atomically; on any error nothing is written.
    """
    registry: Registry = ctx.obj.registry()
    if file is not None:
        family, source = load_family_file(file)
        path = add_family(registry, family, source=source)
    else:
        family = _family_from_flags(locals())
        try:
            path = add_family(registry, family, origin=COMMAND_LINE)
        except ProblemsError as exc:
            raise ProblemsError(
                [_as_flag(problem) for problem in exc.problems], headline=exc.headline
            ) from None
    out.print(f"added family {family.name!r} with {len(family.variants)} variant(s): {path}")


COMMAND_LINE = "command line"


def _as_flag(problem: Problem) -> Problem:
    """Name the flag rather than the card field, for cards built from flags."""
    return Problem(
        COMMAND_LINE, None, _ADD_FLAGS.get(problem.field, problem.field), problem.message
    )


def _family_from_flags(flags: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from medarena.schemas import ModelFamily

    source: dict[str, Any]
    if flags["local_path"]:
        source = {"kind": "local", "path": flags["local_path"]}
    else:
        source = {"kind": "hub", "repo_id": flags["hub_id"], "revision": flags["revision"]}
    card = {
        "name": flags["name"],
        "display_name": flags["display_name"] or flags["name"],
        "developer": flags["developer"],
        "license": flags["license"],
        "paper": flags["paper"],
        "continued_from": flags["continued_from"],
        "variants": [
            {
                "name": flags["variant"],
                "params_b": flags["params_b"],
                "source": source,
                "context_length": flags["context_length"],
                "architecture": flags["architecture"],
                "dtype": flags["dtype"],
                "chat_template": flags["chat_template"],
                "instruction_tuned": flags["instruction_tuned"],
                "gated": flags["gated"],
                "parent": flags["parent"],
            }
        ],
    }
    try:
        return ModelFamily.model_validate(card)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = field_path([p for p in error["loc"] if p not in {"hub", "local"}])
            problems.append(_as_flag(Problem(COMMAND_LINE, None, path, error["msg"])))
        raise ProblemsError(problems, headline="family not added") from None


@models_app.command("sync")
@reports_errors
def models_sync(ctx: typer.Context) -> None:
    """Copy the registry into the database so SQL queries can join on it."""
    registry = ctx.obj.registry()
    with ctx.obj.store() as store:
        report = store.sync_registry(registry)
    out.print(
        f"synced {report.families} families, {report.variants} variants, "
        f"{report.reference_results} published results into {ctx.obj.db_url()}"
    )


@app.command("validate")
@reports_errors
def validate(ctx: typer.Context) -> None:
    """Validate the whole workspace: models/ (cards, chat templates, hardware, references),
    benchmarks/ (task specs and their bundled items), pretrain/ and instruct/ (recipes)."""
    models_validate(ctx)
    from medarena.cli_evaluate import benchmarks_validate
    from medarena.instruct.recipe import check_names
    from medarena.instruct.recipe import load_recipes as load_instruct_recipes
    from medarena.pretrain.recipe import load_recipes

    tasks = benchmarks_validate(ctx)
    recipes = load_recipes(ctx.obj.workspace)
    out.print(f"ok: {len(recipes)} pretraining recipes ({', '.join(sorted(recipes))})")
    tuning = load_instruct_recipes(ctx.obj.workspace)
    check_names(tuning, set(ctx.obj.registry().chat_templates), set(tasks))
    out.print(f"ok: {len(tuning)} instruction-tuning recipes ({', '.join(sorted(tuning))})")


@app.command("schema")
def schema(
    kind: str = typer.Argument(
        "model-family",
        help="model-family, chat-template, hardware-profile, reference-results, benchmark-task, "
        "pretrain-recipe or instruct-recipe",
    ),
) -> None:
    """Print the JSON Schema of a YAML kind (for editors and docs)."""
    from medarena.evaluate.spec import BenchmarkTask
    from medarena.instruct.recipe import InstructRecipe
    from medarena.pretrain.recipe import PretrainRecipe
    from medarena.schemas import json_schemas

    schemas = {
        **json_schemas(),
        "benchmark-task": BenchmarkTask.model_json_schema(),
        "pretrain-recipe": PretrainRecipe.model_json_schema(),
        "instruct-recipe": InstructRecipe.model_json_schema(),
    }
    if kind not in schemas:
        err.print(f"error: unknown kind {kind!r}; known: {', '.join(schemas)}", style="red")
        raise typer.Exit(EXIT_REFUSED)
    out.print_json(json.dumps(schemas[kind]))


# ------------------------------------------------------------------------------------- db


@contextmanager
def _engine(ctx: typer.Context) -> Iterator[Any]:
    from medarena.store.database import make_engine

    engine = make_engine(ctx.obj.db_url())
    try:
        yield engine
    finally:
        engine.dispose()


@db_app.command("upgrade")
@reports_errors
def db_upgrade(ctx: typer.Context) -> None:
    """Create the database or migrate it to the current schema."""
    from medarena.store.database import upgrade

    with _engine(ctx) as engine:
        before, after = upgrade(engine)
    if before == after:
        out.print(f"{ctx.obj.db_url()}: already at schema revision {after}")
    else:
        out.print(f"{ctx.obj.db_url()}: schema revision {before or '(empty)'} -> {after}")


@db_app.command("current")
@reports_errors
def db_current(ctx: typer.Context) -> None:
    """Print the database's schema revision and the one this code expects."""
    from medarena.store.database import current_revision, head_revision

    with _engine(ctx) as engine:
        current = current_revision(engine)
    out.print(
        f"{ctx.obj.db_url()}: revision {current or '(empty)'}; "
        f"this medarena expects {head_revision()}"
    )


# ---------------------------------------------------------------------------------- query


@app.command("query")
@reports_errors
def query(
    ctx: typer.Context,
    sql: str = typer.Argument(..., help="One SELECT / WITH / EXPLAIN statement."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    max_rows: int = typer.Option(10_000, help="Stop after this many rows."),
) -> None:
    """Run a read-only SQL query over the results history (writes are refused, exit 2)."""
    from medarena.store import run_readonly_query

    if fmt not in {"table", "csv", "json"}:
        raise ProblemsError([Problem("command line", None, "--format", f"unknown {fmt!r}")])
    result = run_readonly_query(ctx.obj.db_url(), sql, max_rows=max_rows)
    if fmt == "json":
        rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("NULL" if value is None else str(value) for value in row))
        out.print(table)
    if result.truncated:
        err.print(f"(stopped after {max_rows} rows: raise --max-rows to see more)")


# ----------------------------------------------------------------------------------- tiny


@tiny_app.command("build")
@reports_errors
def tiny_build(
    ctx: typer.Context,
    variant: str = typer.Option("tiny-medical-base", help="An embedded variant of the registry."),
    force: bool = typer.Option(False, help="Rebuild even if an identical build exists."),
) -> None:
    """Build the tiny model and tokenizer offline (seconds), where the registry expects them."""
    build = _build_embedded(ctx.obj.registry(), variant, force=force)
    out.print_json(json.dumps(vars(build)))


def _build_embedded(registry: Registry, name: str, *, force: bool = False) -> Any:
    from transformers.utils import logging as hf_logging

    from medarena.tiny import build_tiny

    hf_logging.disable_progress_bar()  # a 1 MB save needs no progress bar in the demo output

    entry = registry.variant(name)
    source = entry.variant.source
    if source.kind != "embedded":
        raise ProblemsError(
            [
                Problem(
                    registry.files[f"families:{entry.family.name}"],
                    None,
                    "source",
                    f"variant {name!r} is not embedded (source kind {source.kind!r})",
                )
            ]
        )
    template = (
        registry.chat_template(entry.variant.chat_template).template
        if entry.variant.chat_template
        else registry.chat_template("chatml").template
    )
    return build_tiny(
        registry.weights_location(entry.variant),
        seed=source.seed,
        chat_template=template,
        force=force,
    )


# Evaluation and training commands live in their own modules; importing them registers them.
from medarena import cli_compare, cli_demo, cli_evaluate, cli_train  # noqa: E402, F401
