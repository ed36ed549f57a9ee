"""The generic extension registry, the weights source kinds registered in it, and the error
handler every command shares."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from medarena.cli.common import reports_errors
from medarena.errors import EngineError, Refused, UnknownName, WriteRefused
from medarena.extensions import DuplicateRegistration, ExtensionRegistry
from medarena.registry import load_registry
from medarena.weights import WEIGHTS_SOURCES, WeightsSource


def test_register_get_and_list_in_order() -> None:
    registry: ExtensionRegistry[int] = ExtensionRegistry("number")
    registry.register("one", 1)

    @registry.register("two")
    def two() -> int:
        return 2

    assert registry.names() == ("one", "two")
    assert registry.get("one") == 1 and registry.get("two") is two
    assert "one" in registry and "three" not in registry and len(registry) == 2


def test_a_duplicate_name_is_a_bug_and_an_unknown_one_lists_the_known() -> None:
    registry: ExtensionRegistry[int] = ExtensionRegistry("number")
    registry.register("one", 1)
    with pytest.raises(DuplicateRegistration, match="number 'one' is registered twice"):
        registry.register("one", 11)
    assert registry.get("one") == 1
    with pytest.raises(UnknownName, match=r"unknown number 'zero'; known: one"):
        registry.get("zero")


def test_lazy_targets_are_imported_on_first_lookup_only() -> None:
    registry: ExtensionRegistry[object] = ExtensionRegistry("codec")
    registry.register_lazy("json", "json:dumps")
    registry.register_lazy("missing", "medarena.no_such_module:thing")
    import json

    assert registry.get("json") is json.dumps
    with pytest.raises(ModuleNotFoundError):
        registry.get("missing")  # a broken registration surfaces when it is used


def test_temporarily_registers_for_a_block() -> None:
    registry: ExtensionRegistry[int] = ExtensionRegistry("number")
    with registry.temporarily("toy", 7):
        assert registry.get("toy") == 7
    assert "toy" not in registry


def test_weights_sources_of_every_kind_in_the_catalogue_are_registered() -> None:
    registry = load_registry(Path(__file__).resolve().parents[2])
    kinds = {entry.variant.source.kind for entry in registry.variants.values()}
    assert kinds <= set(WEIGHTS_SOURCES.names())
    assert WEIGHTS_SOURCES.names() == ("hub", "local", "adapter", "embedded", "external", "api")


def test_a_toy_weights_source_is_one_class_and_one_registration(workspace: Path) -> None:
    class Bucket(WeightsSource):
        def location(self, source, variant_name, root, state_dir) -> str:
            return f"/mnt/bucket/{source.key}/{variant_name}"

        def describe(self, source) -> str:
            return f"bucket:{source.key}"

    registry = load_registry(workspace)
    variant = SimpleNamespace(name="v1", source=SimpleNamespace(kind="bucket", key="k9"))
    with WEIGHTS_SOURCES.temporarily("bucket", Bucket()):
        assert registry.weights_location(variant) == "/mnt/bucket/k9/v1"
        assert registry.weights_source(variant).describe(variant.source) == "bucket:k9"
    with pytest.raises(UnknownName, match="unknown weights source kind 'bucket'"):
        registry.weights_location(variant)


def _command_raising(error: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @reports_errors
    def run() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Refused("--mode generate needs a chat model"), 2),
        (WriteRefused("the query tried to write"), 2),
        (EngineError("cannot load tiny from /x"), 1),
    ],
)
def test_user_errors_exit_2_and_failures_exit_1_with_one_line(error, code) -> None:
    result = CliRunner().invoke(_command_raising(error), [])
    assert result.exit_code == code
    assert result.stderr == f"error: {error}\n"
    assert result.stdout == ""


def test_anything_else_is_a_bug_and_keeps_its_traceback() -> None:
    result = CliRunner().invoke(_command_raising(ValueError("a programming error")), [])
    assert isinstance(result.exception, ValueError)  # not turned into "exit 2, nothing changed"
    assert "error:" not in result.stderr
