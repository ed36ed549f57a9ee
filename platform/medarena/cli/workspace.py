"""`medarena validate` (the whole workspace), `medarena schema` (JSON Schemas of the YAML kinds)
and `medarena tiny build` (the embedded offline family)."""

from __future__ import annotations

import json

import typer

from medarena.cli.common import EXIT_REFUSED, fail, out, reports_errors
from medarena.cli.evaluate import validate_benchmarks
from medarena.cli.models import validate_registry

tiny_app = typer.Typer(help="The embedded tiny offline family.", no_args_is_help=True)


@reports_errors
def validate(ctx: typer.Context) -> None:
    """Validate the whole workspace: models/ (cards, chat templates, hardware, references),
    benchmarks/ (task specs and their bundled items), pretrain/ and instruct/ (recipes)."""
    from medarena.evaluate.protocol import check_references, check_tasks, load_protocols
    from medarena.instruct.recipe import check_names
    from medarena.instruct.recipe import load_recipes as load_instruct_recipes
    from medarena.pretrain.recipe import load_recipes

    registry = ctx.obj.registry()
    out.print(validate_registry(registry))
    tasks = validate_benchmarks(ctx.obj.workspace)
    recipes = load_recipes(ctx.obj.workspace)
    out.print(f"ok: {len(recipes)} pretraining recipes ({', '.join(sorted(recipes))})")
    tuning = load_instruct_recipes(ctx.obj.workspace)
    check_names(tuning, set(registry.chat_templates), set(tasks))
    out.print(f"ok: {len(tuning)} instruction-tuning recipes ({', '.join(sorted(tuning))})")
    if not tasks:  # a workspace of models only: nothing to map published results onto
        out.print("no benchmark specs: published results not checked against tasks and protocols")
        return
    protocols = load_protocols(registry.root)
    for protocol in protocols.values():
        check_tasks(protocol, tasks)
    check_references(registry, protocols, tasks)
    out.print(
        f"ok: {len(protocols)} evaluation protocols ({', '.join(sorted(protocols))}); every "
        "published result names its protocol and task"
    )


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
        raise fail(f"unknown kind {kind!r}; known: {', '.join(schemas)}", EXIT_REFUSED)
    out.print_json(json.dumps(schemas[kind]))


@tiny_app.command("build")
@reports_errors
def tiny_build(
    ctx: typer.Context,
    variant: str = typer.Option("tiny-medical-base", help="An embedded variant of the registry."),
    force: bool = typer.Option(False, help="Rebuild even if an identical build exists."),
) -> None:
    """Build the tiny model and tokenizer offline (seconds), where the registry expects them."""
    from medarena.tiny import build_embedded

    build = build_embedded(ctx.obj.registry(), variant, force=force)
    out.print_json(json.dumps(vars(build)))
