"""The package's import graph: no cycles, and dependencies point one way only
(cli -> services -> registry | store -> results | schemas), lazy imports inside functions
included (docs/DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "medarena"

# lower number: lower layer; a module may import its own layer or lower ones only. Keys are
# module paths under medarena; the longest matching one applies.
LAYERS: dict[str, int] = {
    "errors": 0,
    "extensions": 0,
    "provenance": 0,
    "results": 0,
    "schemas": 0,
    "slurm_queue": 0,
    "value_provenance": 0,
    "yaml_source": 0,
    "weights": 1,
    "registry": 1,
    "store": 1,
    "data": 2,
    "adapters": 2,
    "tiny": 2,
    "quantize": 2,
    "training": 3,
    "compare": 3,
    "evaluate": 3,
    "pretrain": 4,
    "instruct": 4,
    "analysis": 4,  # reads stored runs, evaluation specs and the training data of recipes
    "sweep": 4,  # evaluation sweeps: plans and runs evaluations, submits SLURM arrays
    "training.service": 5,  # runs both kinds of training: above pretrain/ and instruct/
    "training.finish": 5,  # a SLURM job's last step: registers through training.service
    "cli": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every medarena module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("medarena")}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            base = node.module or ""
            if not base.startswith("medarena"):
                continue
            for alias in node.names:  # `from medarena.cli import models` imports a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {name for name in found if name in MODULES}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def layer(module: str) -> int:
    parts = module.split(".")[1:]
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    raise KeyError(module)


def test_every_module_has_a_layer() -> None:
    missing = []
    for name in MODULES:
        if "." in name:
            try:
                layer(name)
            except KeyError:
                missing.append(name)
    assert missing == [], "give these a layer in LAYERS"


def test_the_import_graph_has_no_cycle() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_imports_point_down_the_layers() -> None:
    upward = sorted(
        f"{source} imports {target}"
        for source, targets in GRAPH.items()
        if "." in source
        for target in targets
        if "." in target and layer(target) > layer(source)
    )
    assert upward == []


def test_a_planted_cycle_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = {name: set(targets) for name, targets in GRAPH.items()}
    planted["medarena.errors"].add("medarena.cli.common")  # which imports errors
    monkeypatch.setattr(__import__(__name__, fromlist=["GRAPH"]), "GRAPH", planted)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_the_import_graph_has_no_cycle()
