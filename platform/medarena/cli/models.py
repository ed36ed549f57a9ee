"""`medarena models ...`: list, show, validate, add and sync the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medarena.cli.common import out, reports_errors
from medarena.errors import Problem, ProblemsError, Refused
from medarena.registry import Registry, add_family, load_family_file
from medarena.results import UNDISCLOSED
from medarena.yaml_source import field_path

app = typer.Typer(help="The model registry (models/*.yaml).", no_args_is_help=True)


def models_table(registry: Registry, family: str | None = None) -> Table:
    """Families and their variants, one row per variant (also printed by the demo)."""
    families = _families(registry, family)
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
                registry.weights_source(variant).describe(variant.source),
            )
    return table


@app.command("ls")
@reports_errors
def models_ls(
    ctx: typer.Context,
    family: str | None = typer.Option(None, "--family", help="Only this family."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List model families and their variants."""
    registry: Registry = ctx.obj.registry()
    if as_json:
        data = [f.model_dump(mode="json", exclude_none=True) for f in _families(registry, family)]
        out.print_json(json.dumps(data))
        return
    out.print(models_table(registry, family))


def _families(registry: Registry, family: str | None) -> list[Any]:
    if family:
        return [registry.family(family)]
    return [registry.families[name] for name in sorted(registry.families)]


def _quantization(quant: Any) -> str:
    if quant is None:
        return "-"
    detail = quant.scheme or (f"g{quant.group_size}" if quant.group_size else "")
    return f"{quant.method} {quant.bits}-bit {detail}".strip()


def _params(params_b: float | None) -> str:
    if params_b is None:
        return UNDISCLOSED
    return f"{params_b:g}B" if params_b >= 1 else f"{params_b * 1000:g}M"


# variant fields about the weights, shown for a model served by an API only if its card sets them
WEIGHTS_ONLY = ("architecture", "dtype", "tensor_parallel")


@app.command("show")
@reports_errors
def models_show(ctx: typer.Context, name: str = typer.Argument(..., help="Family or variant.")):
    """Show one family card, or one variant with its family and lineage."""
    from medarena.evaluate.engines import capabilities

    registry: Registry = ctx.obj.registry()
    if name in registry.families:
        data: dict[str, Any] = registry.families[name].model_dump(mode="json", exclude_none=True)
        data["file"] = registry.files[f"families:{name}"]
    else:
        entry = registry.variant(name)
        dump = entry.variant.model_dump(mode="json", exclude_none=True)
        if entry.variant.source.kind == "api":  # no weights: their defaults would say nothing
            for field in WEIGHTS_ONLY:
                if field not in entry.variant.model_fields_set:
                    dump.pop(field, None)
        data = {
            "family": entry.family.name,
            **dump,
            # a size the provider never published is said, not left out
            "params_b": dump.get("params_b", UNDISCLOSED),
            "lineage": registry.lineage(name),
            "load_from": _load_from(registry, entry.variant),
            # engine -> device kind -> yes, or why not (what `medarena eval` refuses)
            "runs_on": capabilities(entry.variant),
        }
    out.print_json(json.dumps(data))


def _load_from(registry: Registry, variant: Any) -> str:
    try:
        return registry.weights_location(variant)
    except Refused as exc:
        return str(exc)


def validate_registry(registry: Registry) -> str:
    """The one-line summary `models validate` prints for a registry that loaded."""
    return (
        f"ok: {len(registry.families)} families, {len(registry.variants)} variants, "
        f"{len(registry.chat_templates)} chat templates, {len(registry.hardware)} hardware "
        f"profiles, {sum(len(r.results) for r in registry.references.values())} published results"
    )


@app.command("validate")
@reports_errors
def models_validate(ctx: typer.Context) -> None:
    """Load and check every YAML under models/; list every problem with file, line and field."""
    out.print(validate_registry(ctx.obj.registry()))


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
COMMAND_LINE = "command line"


@app.command("add")
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


@app.command("sync")
@reports_errors
def models_sync(ctx: typer.Context) -> None:
    """Copy the registry into the database so SQL queries can join on it."""
    from medarena.evaluate.protocol import sync_registry

    registry = ctx.obj.registry()
    with ctx.obj.store() as store:
        report = sync_registry(store, registry)
    out.print(
        f"synced {report.families} families, {report.variants} variants, "
        f"{report.reference_results} published results into {ctx.obj.db_url()}"
    )
