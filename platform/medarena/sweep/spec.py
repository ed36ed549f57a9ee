"""The sweep file: variants x tasks x settings (named `medarena eval` settings, or protocols),
the engine and data every cell shares, and how a SLURM array runs it. Validated like every
other YAML (pydantic, unknown keys refused), then checked against the registry, the benchmarks
and the protocols, every problem with its file:line: field."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from medarena.errors import Problem, ProblemsError
from medarena.evaluate.bartscore import DEFAULT_MODEL as BARTSCORE_DEFAULT
from medarena.evaluate.runner import DATA_CHOICES, EvalOptions
from medarena.registry import Registry
from medarena.schemas import Name, Spec
from medarena.yaml_source import YamlDocument, field_path, read_yaml


class SweepSetting(Spec):
    """One named evaluation setting: what `medarena eval`'s options set."""

    name: Name
    mode: str | None = Field(None, description="scoring mode; default: each task's first")
    shots: int = Field(0, ge=0)
    seeds: list[int] = Field([0], min_length=1, description="one cell per seed")
    cot: bool = False
    samples: int = Field(1, ge=1, description="self-consistency: samples per item")
    temperature: float = Field(0.0, ge=0.0)
    extraction: str = "medarena"
    bertscore_model: str = "minilm"
    bartscore_model: str = BARTSCORE_DEFAULT
    chat_template: bool = True


class SlurmSettings(Spec):
    """How `sweep run --slurm` asks for resources (GPUs per job come from the variant's size
    and the hardware profile: medarena.sweep.slurm)."""

    gpus: bool = Field(True, description="false: CPU-only jobs (no GPU requested)")
    partition: str | None = None
    time: str | None = Field(None, description="time limit per job, e.g. 04:00:00")
    cpus_per_task: int = Field(4, ge=1)
    mem: str | None = Field(None, description="memory per job, e.g. 64G")
    cells_per_job: int = Field(0, ge=0, description="0: all of one variant's cells per job")
    max_parallel: int | None = Field(None, ge=1, description="array tasks running at once")
    sbatch: list[str] = Field(default_factory=list, description="more #SBATCH options")


class Sweep(Spec):
    """An evaluation sweep: every variant on every task under every setting."""

    name: Name
    description: str | None = None
    variants: list[Name] = Field(min_length=1)
    tasks: list[Name] = Field(
        default_factory=list, description="benchmarks (with protocols: default all of theirs)"
    )
    settings: list[SweepSetting] = Field(default_factory=list)
    protocols: list[Name] = Field(default_factory=list)
    engine: str = "hf"
    variant_engines: dict[Name, str] = Field(
        default_factory=dict,
        description="variant -> engine where it differs from `engine` (an API model: openai)",
    )
    data: str = Field("bundled", description=f"one of {DATA_CHOICES}")
    limit: int | None = Field(None, ge=1, description="only the first n items of each task")
    truncation: str = "left"
    chunk_size: int = Field(64, ge=1)
    batch_size: int = Field(32, ge=1)
    concurrency: int = Field(8, ge=1)
    hardware: Name = Field("h100-80gb-sxm", description="profile for --plan and SLURM GPUs")
    slurm: SlurmSettings = SlurmSettings()

    @model_validator(mode="after")
    def _settings_or_protocols(self) -> Sweep:
        if bool(self.settings) == bool(self.protocols):
            raise ValueError("give either `settings` or `protocols` (exactly one of them)")
        if self.settings and not self.tasks:
            raise ValueError("`settings` need `tasks`")
        for field in ("variants", "tasks", "protocols"):
            names = getattr(self, field)
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"{field} listed twice: {twice}")
        names = [setting.name for setting in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"setting names must differ: {names}")
        return self

    def engine_of(self, variant: str) -> str:
        return self.variant_engines.get(variant, self.engine)

    def base_options(self, engine: str | None = None) -> EvalOptions:
        """What every cell of an engine (default: the sweep's) shares."""
        return EvalOptions(
            engine=engine or self.engine,
            limit=self.limit,
            data=self.data,
            truncation=self.truncation,
            chunk_size=self.chunk_size,
        )


def load_sweep(path: Path, registry: Registry) -> Sweep:
    """Read and check a sweep file; ProblemsError lists every problem at its file:line."""
    document, problems = read_yaml(path)
    sweep = None
    if document is not None:
        sweep, problems = document.validate(Sweep)
    if sweep is not None and document is not None:
        problems = _unknown_names(sweep, document, registry)  # type: ignore[arg-type]
    if problems or sweep is None:
        raise ProblemsError(problems, headline=f"{path} is not a valid sweep")
    return sweep  # type: ignore[return-value]


def _unknown_names(sweep: Sweep, document: YamlDocument, registry: Registry) -> list[Problem]:
    from medarena.evaluate.engines import ENGINES
    from medarena.evaluate.protocol import load_protocols
    from medarena.evaluate.spec import load_benchmarks

    benchmarks = load_benchmarks(registry.root)
    protocols = load_protocols(registry.root) if sweep.protocols else {}
    known = {
        "variants": list(registry.variants),
        "tasks": list(benchmarks),
        "protocols": list(protocols),
    }
    problems = []

    def problem(loc: list[int | str], message: str) -> None:
        problems.append(Problem(document.path, document.line_of(loc), field_path(loc), message))

    for field, names in known.items():
        for index, name in enumerate(getattr(sweep, field)):
            if name not in names:
                problem([field, index], f"unknown {field[:-1]} {name!r}; known: {sorted(names)}")
    if sweep.hardware not in registry.hardware:
        problem(["hardware"], f"unknown hardware profile; known: {sorted(registry.hardware)}")
    if sweep.engine not in ENGINES:
        problem(["engine"], f"unknown engine {sweep.engine!r}; known: {list(ENGINES)}")
    for variant, engine in sweep.variant_engines.items():
        if variant not in sweep.variants:
            problem(["variant_engines", variant], f"{variant!r} is not one of the `variants`")
        if engine not in ENGINES:
            message = f"unknown engine {engine!r}; known: {list(ENGINES)}"
            problem(["variant_engines", variant], message)
    if sweep.data not in DATA_CHOICES:
        problem(["data"], f"must be one of {DATA_CHOICES}")
    for index, setting in enumerate(sweep.settings):
        for position, task in enumerate(sweep.tasks):
            allowed = benchmarks[task].scoring_modes if task in benchmarks else None
            if setting.mode is not None and allowed is not None and setting.mode not in allowed:
                message = f"task {task} (tasks[{position}]) allows scoring modes {allowed}"
                problem(["settings", index, "mode"], message)
    return problems
