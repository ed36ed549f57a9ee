"""The model registry: finds the workspace, loads every YAML under models/, checks it as a whole.

Layout of a workspace (the repository root, or any folder laid out the same way):

    models/<family>.yaml              one model family card each
    models/chat_templates/<name>.yaml one chat template each
    models/hardware/<name>.yaml       one hardware profile each
    models/reference/<source>.yaml    published results, one source each
    .medarena/                        local state: the default database, built tiny models
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from medarena.errors import Problem, ProblemsError, UnknownName, WorkspaceNotFound
from medarena.schemas import (
    ChatTemplate,
    HardwareProfile,
    ModelFamily,
    ModelVariant,
    ReferenceSet,
)
from medarena.weights import WEIGHTS_SOURCES, WeightsSource
from medarena.yaml_source import (
    YamlDocument,
    dump_yaml,
    field_path,
    parse_yaml,
    read_spec,
    read_yaml,
    write_atomic,
)

WORKSPACE_ENV = "MEDARENA_WORKSPACE"
STATE_DIR = ".medarena"


def find_workspace(explicit: str | Path | None = None, start: Path | None = None) -> Path:
    """The workspace root: `explicit`, else $MEDARENA_WORKSPACE, else the nearest folder
    upwards from `start` (the current directory) that holds a models/ folder."""
    chosen = explicit or os.environ.get(WORKSPACE_ENV)
    if chosen:
        root = Path(chosen).expanduser().resolve()
        if not (root / "models").is_dir():
            raise WorkspaceNotFound(f"{root} is not a medarena workspace: it has no models/ folder")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "models").is_dir():
            return folder
    raise WorkspaceNotFound(
        f"no medarena workspace in {here} or above it (a workspace is a folder with a models/ "
        f"folder); run from the repository, pass --workspace, or set {WORKSPACE_ENV}"
    )


T = TypeVar("T")


def _lookup(kind: str, entries: dict[str, T], name: str) -> T:
    if name not in entries:
        raise UnknownName(kind, name, list(entries))
    return entries[name]


@dataclass(frozen=True)
class VariantEntry:
    """A variant together with the family it belongs to."""

    family: ModelFamily
    variant: ModelVariant


@dataclass
class Registry:
    """Everything declared under models/, validated and cross-checked."""

    root: Path
    families: dict[str, ModelFamily] = field(default_factory=dict)
    chat_templates: dict[str, ChatTemplate] = field(default_factory=dict)
    hardware: dict[str, HardwareProfile] = field(default_factory=dict)
    references: dict[str, ReferenceSet] = field(default_factory=dict)
    # "families:<name>" (and the like) -> the file, relative to root
    files: dict[str, str] = field(default_factory=dict)

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def generated_dir(self) -> Path:
        """Where cards of models produced in this workspace (training runs) are written: a
        second layer loaded after the curated models/, which holds only curated cards."""
        return self.state_dir / "models"

    @property
    def variants(self) -> dict[str, VariantEntry]:
        return {
            variant.name: VariantEntry(family, variant)
            for family in self.families.values()
            for variant in family.variants
        }

    def family(self, name: str) -> ModelFamily:
        return _lookup("model family", self.families, name)

    def variant(self, name: str) -> VariantEntry:
        return _lookup("model variant", self.variants, name)

    def chat_template(self, name: str) -> ChatTemplate:
        return _lookup("chat template", self.chat_templates, name)

    def hardware_profile(self, name: str) -> HardwareProfile:
        return _lookup("hardware profile", self.hardware, name)

    def weights_source(self, variant: ModelVariant) -> WeightsSource:
        """The behaviour of the variant's source kind (hub, local, adapter, embedded, ...)."""
        return WEIGHTS_SOURCES.get(variant.source.kind)

    def weights_location(self, variant: ModelVariant) -> str:
        """Where from_pretrained should load this variant: a local folder or a hub repo id;
        Refused for weights that cannot be reached directly (an external distribution)."""
        return self.weights_source(variant).location(
            variant.source, variant.name, self.root, self.state_dir
        )

    def recorded_location(self, variant: ModelVariant) -> str:
        """The location the store records: where the weights are, or where they are distributed."""
        return self.weights_source(variant).recorded_location(
            variant.source, variant.name, self.root, self.state_dir
        )

    def lineage(self, name: str) -> list[str]:
        """Variant names from `name` back to its root ancestor."""
        chain = [name]
        while (parent := self.variant(chain[-1]).variant.parent) is not None:
            chain.append(parent)
        return chain


# ------------------------------------------------------------------------------------ loading

_KINDS: list[tuple[str, str, type[BaseModel]]] = [
    # (folder under models/, registry attribute, schema)
    ("", "families", ModelFamily),
    ("chat_templates", "chat_templates", ChatTemplate),
    ("hardware", "hardware", HardwareProfile),
    ("reference", "references", ReferenceSet),
]


@dataclass(frozen=True)
class _Declared:
    """A family's variants as written: validated ones, or the raw mappings of a file that failed
    validation (so its names still count and its references are still checked)."""

    key: str
    family: str
    variants: list[dict[str, Any]]


def _declared(registry: Registry) -> list[_Declared]:
    return [
        _Declared(f"families:{name}", name, [v.model_dump() for v in family.variants])
        for name, family in registry.families.items()
    ]


def _raw_variants(document: YamlDocument) -> list[dict[str, Any]]:
    variants = document.data.get("variants")
    if not isinstance(variants, list):
        return []
    return [v if isinstance(v, dict) else {} for v in variants]


def load_registry(workspace: str | Path | None = None) -> Registry:
    """Load and validate every YAML under models/; raise ProblemsError listing ALL problems."""
    root = find_workspace(workspace)
    registry = Registry(root=root)
    problems: list[Problem] = []
    documents: dict[str, YamlDocument] = {}
    invalid_families: list[_Declared] = []
    for folder, attribute, schema in _KINDS:
        paths = sorted((registry.models_dir / folder).glob("*.yaml"))
        if attribute == "families":
            paths += sorted(registry.generated_dir.glob("*.yaml"))
        for path in paths:
            shown = str(path.relative_to(root))
            named = attribute != "references"  # one file per source, no name inside
            document, spec, found = read_spec(path, shown, schema, named=named)
            problems += found
            if document is None:
                continue
            if spec is None:
                if attribute == "families":
                    key = f"families:{path.stem}"
                    documents[key], registry.files[key] = document, shown
                    invalid_families.append(_Declared(key, path.stem, _raw_variants(document)))
                continue
            key = spec.name if named else path.stem
            if f"{attribute}:{key}" in registry.files:
                first = registry.files[f"{attribute}:{key}"]
                problems.append(
                    Problem(shown, None, "name", f"{key!r} is already defined by {first}")
                )
                continue
            documents[f"{attribute}:{key}"] = document
            registry.files[f"{attribute}:{key}"] = shown
            getattr(registry, attribute)[key] = spec
    problems += cross_check(registry, documents, _declared(registry) + invalid_families)
    if problems:
        raise ProblemsError(problems, headline=f"registry at {root / 'models'} is invalid")
    return registry


def cross_check(
    registry: Registry, documents: dict[str, YamlDocument], declared: list[_Declared]
) -> list[Problem]:
    """Checks that span files: unique variant names, known templates, parents and variants."""
    problems: list[Problem] = []

    def report(key: str, loc: list[int | str], message: str) -> None:
        document = documents.get(key)
        line = document.line_of(loc) if document else None
        problems.append(Problem(registry.files.get(key, key), line, field_path(loc), message))

    owner: dict[str, str] = {}
    for family in declared:
        for index, variant in enumerate(family.variants):
            name = variant.get("name")
            if isinstance(name, str) and name in owner:
                report(
                    family.key,
                    ["variants", index, "name"],
                    f"variant {name!r} is already defined by family {owner[name]!r}",
                )
            if isinstance(name, str):
                owner.setdefault(name, family.family)
    templates = ", ".join(sorted(registry.chat_templates))
    for family in declared:
        for index, variant in enumerate(family.variants):
            loc: list[int | str] = ["variants", index]
            template, parent = variant.get("chat_template"), variant.get("parent")
            if isinstance(template, str) and template not in registry.chat_templates:
                report(
                    family.key,
                    [*loc, "chat_template"],
                    f"unknown chat template {template!r}; known: {templates}",
                )
            source = variant.get("source")
            api = isinstance(source, dict) and source.get("kind") == "api"
            # an API model is prompted through the server's own chat template
            if variant.get("instruction_tuned") is True and template is None and not api:
                report(
                    family.key, [*loc, "chat_template"], "an instruction-tuned variant needs one"
                )
            if isinstance(parent, str) and parent not in owner:
                report(family.key, [*loc, "parent"], f"unknown parent variant {parent!r}")
            if isinstance(source, dict) and source.get("kind") == "adapter":
                base = source.get("base")
                if isinstance(base, str) and base not in owner:
                    report(family.key, [*loc, "source", "base"], f"unknown base variant {base!r}")
            if api:
                served = source.get("serves")  # type: ignore[union-attr]
                if isinstance(served, str) and served not in owner:
                    report(family.key, [*loc, "source", "serves"], f"unknown variant {served!r}")
    for source_key, reference in registry.references.items():
        for index, result in enumerate(reference.results):
            if result.variant not in owner:
                report(
                    f"references:{source_key}",
                    ["results", index, "variant"],
                    f"unknown variant {result.variant!r}",
                )
    return problems


# ------------------------------------------------------------------------------------- adding

CARD_HEADER = "# Model family card. Check: medarena models validate; list: medarena models ls\n"


def add_family(
    registry: Registry,
    family: ModelFamily,
    *,
    source: YamlDocument | None = None,
    origin: str | None = None,
    generated: bool = False,
) -> Path:
    """Write models/<family>.yaml for a new family (`generated`: the workspace's
    .medarena/models/, for models a training run produced), atomically, after checking the
    registry with the family included. Raises ProblemsError and writes nothing when anything is
    wrong.

    Problems are reported against where the card came from: `source` (a YAML file the user
    wrote, with its lines) or `origin` (e.g. "command line").
    """
    path = (registry.generated_dir if generated else registry.models_dir) / f"{family.name}.yaml"
    shown = str(path.relative_to(registry.root))
    label = source.path if source is not None else (origin or shown)
    if family.name in registry.families or path.exists():
        raise ProblemsError(
            [Problem(label, None, "name", f"family {family.name!r} already exists ({shown})")],
            headline="refusing to add a duplicate family",
        )
    text = dump_yaml(family.model_dump(mode="json", exclude_none=True), header=CARD_HEADER)
    # validate what will be written, not what was meant: the file must load back identically
    document, problems = parse_yaml(text, shown)
    if document is not None:
        reloaded, problems = document.validate(ModelFamily)
        if reloaded is not None and reloaded != family:
            problems = [Problem(shown, None, "", "card does not survive a YAML round trip")]
    key = f"families:{family.name}"
    candidate = Registry(
        root=registry.root,
        families={**registry.families, family.name: family},
        chat_templates=registry.chat_templates,
        hardware=registry.hardware,
        references=registry.references,
        files={**registry.files, key: label},
    )
    documents = {key: source} if source is not None else {}
    problems += [
        problem
        for problem in cross_check(candidate, documents, _declared(candidate))
        if problem.file == label
    ]
    if problems:
        raise ProblemsError(problems, headline=f"family {family.name!r} not added")
    write_atomic(path, text, exclusive=True)
    return path


def load_family_file(path: Path) -> tuple[ModelFamily, YamlDocument]:
    """Read one family card from anywhere (for `models add --file`), with located errors."""
    document, problems = read_yaml(path)
    if document is not None:
        family, problems = document.validate(ModelFamily)
        if family is not None:
            return family, document  # type: ignore[return-value]
    raise ProblemsError(problems, headline=f"{path} is not a valid family card")
