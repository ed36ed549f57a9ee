"""YAML in and out with line numbers: errors point at `file:line: field`, writes are atomic."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from medarena.errors import Problem, ProblemsError


def field_path(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as `variants[0].source.repo_id`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class YamlDocument:
    """Parsed YAML plus its node tree, which remembers where each value was written."""

    path: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Sequence[int | str]) -> int | None:
        """1-based line of the value at `loc`, or of its closest existing ancestor."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line

    def validate(self, model: type[BaseModel]) -> tuple[BaseModel | None, list[Problem]]:
        """Validate against `model`; problems carry this file's lines and field paths."""
        try:
            return model.model_validate(self.data), []
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                loc = _written_loc(self.data, error["loc"])
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    message = "unknown key (not in the schema; check the spelling)"
                problems.append(Problem(self.path, self.line_of(loc), field_path(loc), message))
            return None, problems


def _is_union_tag(part: int | str) -> bool:
    # pydantic puts the discriminator value ("hub", "local"...) into error locations
    return part in {"hub", "local", "adapter", "external", "embedded", "api", "file"}


def _written_loc(data: Any, loc: Sequence[int | str]) -> list[int | str]:
    """`loc` without the discriminator values pydantic inserts; a key the file really has is
    kept even when it is spelled like one (a benchmark's `hub:` block: hub.eval.hub.dataset)."""
    kept: list[int | str] = []
    node = data
    for part in loc:
        written = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not written and _is_union_tag(part):
            continue
        kept.append(part)
        node = node[part] if written else None  # type: ignore[index]
    return kept


def _child(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def _duplicate_keys(node: yaml.Node | None, path: list[int | str], found: list) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append(([*path, key.value], key.start_mark.line + 1))
            seen.add(key.value)
            _duplicate_keys(value, [*path, key.value], found)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _duplicate_keys(item, [*path, index], found)


# libyaml's safe loader where PyYAML was built with it (the wheels are): ~8x the pure-Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, path: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one YAML document; malformed YAML and duplicate keys become located problems."""
    loader = _LOADER(text)
    try:  # one parse: the node tree (lines) and the data built from it
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or exc.context or "malformed YAML"
        return None, [Problem(path, line, "", f"malformed YAML: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(path, None, "", f"malformed YAML: {exc}")]
    finally:
        loader.dispose()
    duplicates: list = []
    _duplicate_keys(root, [], duplicates)
    problems = [
        Problem(path, line, field_path(loc), "key appears twice in the same mapping")
        for loc, line in duplicates
    ]
    if data is None:
        problems.append(Problem(path, None, "", "the file is empty"))
    elif not isinstance(data, dict):
        problems.append(Problem(path, 1, "", "expected a mapping at the top level"))
    return (None if problems else YamlDocument(path, data, root)), problems


def read_yaml(path: Path, shown_as: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Read and parse a YAML file; unreadable or non-UTF-8 files become problems too."""
    label = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(label, None, "", f"not UTF-8 text (byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(label, None, "", f"cannot read: {exc.strerror}")]
    return parse_yaml(text, label)


def read_spec(
    path: Path, shown_as: str, schema: type[BaseModel], *, named: bool = True
) -> tuple[YamlDocument | None, BaseModel | None, list[Problem]]:
    """Read, parse and validate one spec file. With `named`, the spec's `name` must equal the
    file name, so that a writer knows where a spec goes and a reader where to look."""
    document, problems = read_yaml(path, shown_as)
    if document is None:
        return None, None, problems
    spec, problems = document.validate(schema)
    if spec is not None and named and spec.name != path.stem:  # type: ignore[attr-defined]
        problems.append(
            Problem(
                shown_as,
                document.line_of(["name"]),
                "name",
                f"{spec.name!r} must match the file name {path.stem!r}",  # type: ignore[attr-defined]
            )
        )
    return document, spec, problems


def dump_yaml(data: Any, header: str = "") -> str:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def write_atomic(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part.

    With `exclusive`, refuse to replace an existing file (checked again at the final link, so a
    concurrent writer cannot be overwritten either).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and path.exists():
        raise FileExistsError(f"{path} already exists")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp_name, path)  # fails with FileExistsError if someone got there first
        else:
            os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


S = TypeVar("S", bound=BaseModel)


def load_spec_folder(
    root: Path,
    folder: Path,
    schema: type[S],
    headline: str,
    *,
    check: Callable[[YamlDocument, S], list[Problem]] | None = None,
) -> dict[str, S]:
    """Every named spec in `root / folder` (*.yaml), by name; ProblemsError lists ALL problems
    of all files (`headline` introduces them), with those `check` finds in a valid spec. A
    missing folder holds no spec."""
    specs: dict[str, S] = {}
    problems: list[Problem] = []
    directory = root / folder
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        document, spec, found = read_spec(path, str(path.relative_to(root)), schema)
        problems += found
        if spec is not None:
            if check is not None and document is not None:
                problems += check(document, spec)  # type: ignore[arg-type]
            specs[spec.name] = spec  # type: ignore[attr-defined]
    if problems:
        raise ProblemsError(problems, headline=headline)
    return specs
