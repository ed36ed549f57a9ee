"""The resumable evaluation runner: one variant on one task, every item stored as it is scored.

Resuming: a run is identified by its reproducibility key (variant, weights, task, dataset hash,
prompt template hash, mode, shots, seed, engine). Run again after a kill, the runner finds the
unfinished run with the same key, skips the items it already stored, scores the rest and ends
with exactly one prediction per item. Predictions are written a chunk at a time, each chunk in
one transaction, so a kill loses at most the chunk being scored.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from medarena.data.records import read_records
from medarena.errors import Refused, UnknownName
from medarena.evaluate.bartscore import DEFAULT_MODEL as BARTSCORE_DEFAULT
from medarena.evaluate.engines import ENGINES, Engine, engine_version
from medarena.evaluate.formats import Item, to_items
from medarena.evaluate.identity import settings_hash
from medarena.evaluate.kinds import TASK_KINDS
from medarena.evaluate.modes import SCORING_MODES, BuiltPrompt, ChunkScorer, ScoringOptions
from medarena.evaluate.prompts import PromptSettings, build_prompt
from medarena.evaluate.spec import BenchmarkTask, DataSplits, FileData, spec_file, task_problem
from medarena.provenance import code_version
from medarena.registry import Registry, VariantEntry
from medarena.results import EvalRun, EvalRunSpec, MetricValue
from medarena.store import Store

DATA_CHOICES = ("bundled", "hub", "local")


@dataclass(frozen=True)
class EvalOptions:
    engine: str = "hf"
    mode: str = "loglik"
    shots: int = 0
    seed: int = 0
    cot: bool = False
    samples: int = 1
    temperature: float = 0.0
    limit: int | None = None
    data: str = "bundled"
    truncation: str = "left"
    chunk_size: int = 64
    bertscore_encoder: str = "minilm"
    bartscore_model: str = BARTSCORE_DEFAULT
    use_chat_template: bool = True
    extraction: str = "medarena"  # answer extraction rule of generate runs (extractors.py)

    def scoring(self, end_of_turn: tuple[str, ...] = ()) -> ScoringOptions:
        """The settings the scoring mode sees (plus the chat template's end of turn)."""
        return ScoringOptions(
            cot=self.cot,
            samples=self.samples,
            temperature=self.temperature,
            seed=self.seed,
            truncation=self.truncation,
            end_of_turn=end_of_turn,
            bertscore_encoder=self.bertscore_encoder,
            extraction=self.extraction,
            bartscore_model=self.bartscore_model,
        )

    def check(self, task: BenchmarkTask) -> None:
        """Refuse combinations that cannot be scored, before anything is loaded."""
        if self.mode not in task.scoring_modes:
            raise Refused(f"task {task.name} allows scoring modes {task.scoring_modes}")
        SCORING_MODES.get(self.mode).check(self.scoring())
        if self.samples > 1 and not TASK_KINDS.get(task.kind).choices:
            raise Refused(
                f"self-consistency votes on answers from a closed set; not on {task.kind}"
            )
        if self.data not in DATA_CHOICES:
            raise Refused(f"--data must be one of {DATA_CHOICES}")
        if self.data == "hub" and task.hub is None:
            raise Refused(f"task {task.name} declares no hub dataset")
        if self.data == "local" and task.local is None:
            raise Refused(f"task {task.name} declares no local dataset")
        if self.engine not in ENGINES:
            raise UnknownName(ENGINES.kind, self.engine, ENGINES.names())


@dataclass(frozen=True)
class EvalOutcome:
    run: EvalRun
    metrics: list[MetricValue]
    scored: int  # items scored in this call
    reused: int  # items found already stored (resume)
    already_complete: bool
    items_per_s: float | None = None  # of this call's scoring, model load excluded


@dataclass(frozen=True)
class TaskData:
    items: list[Item]
    pool: list[Item]
    hash: str


def load_task_data(
    task: BenchmarkTask,
    root: Path,
    *,
    data: str = "bundled",
    limit: int | None = None,
    need_pool: bool = False,
) -> TaskData:
    """The task's items (first `limit`) and few-shot pool, plus a hash over both."""
    splits = data_splits(task, root, data)
    benchmarks_dir = root / "benchmarks"
    items = _filtered(task, to_items(task.source_format, read_records(splits.eval, benchmarks_dir)))
    if not items:
        raise task_problem(
            task,
            "subjects",
            f"no item of subjects {task.subjects} in the data",
            f"task {task.name} has no items",
        )
    if limit is not None:
        items = items[:limit]
    pool: list[Item] = []
    if need_pool:
        if splits.fewshot is None:
            raise Refused(f"task {task.name} has no few-shot split; use --shots 0")
        pool = train_items(task, root, data=data)
    digest = hashlib.sha256()
    for item in [*items, *pool]:
        digest.update(json.dumps(item.canonical(), sort_keys=True, default=list).encode())
    return TaskData(items, pool, digest.hexdigest())


def train_items(task: BenchmarkTask, root: Path, *, data: str = "bundled") -> list[Item]:
    """The task's training split (the one few-shot demos come from), for instruction tuning."""
    splits = data_splits(task, root, data)
    if splits.fewshot is None:
        raise Refused(f"task {task.name} has no train split to learn from")
    records = read_records(splits.fewshot, root / "benchmarks")
    return _filtered(task, to_items(task.source_format, records))


def data_splits(task: BenchmarkTask, root: Path, data: str) -> DataSplits:
    """The task's bundled sample, hub dataset or local copy. A local copy (credentialed data,
    never bundled) whose files are missing is refused with where the data comes from."""
    splits = {"bundled": task.data, "hub": task.hub, "local": task.local}.get(data)
    if splits is None:
        raise Refused(f"task {task.name} declares no {data} dataset")
    if data == "local":
        for source in (splits.eval, splits.fewshot):
            if not isinstance(source, FileData):
                continue
            path = Path(source.path).expanduser()
            path = path if path.is_absolute() else root / "benchmarks" / path
            if not path.is_file():
                raise Refused(
                    f"{task.display_name} is not bundled: {path} is missing. "
                    f"{task.access or 'See the citation in ' + spec_file(task) + '.'} "
                    f"Put the files there or change `local` in {spec_file(task)}."
                )
    return splits


def _filtered(task: BenchmarkTask, items: list[Item]) -> list[Item]:
    if task.subjects is None:
        return items
    return [item for item in items if item.subject in task.subjects]


def _weights_hash(registry: Registry, entry: VariantEntry) -> str | None:
    if entry.variant.source.kind != "embedded":
        return None  # hub variants are pinned by revision; local folders by their path
    from medarena.tiny import read_manifest

    build = read_manifest(Path(registry.weights_location(entry.variant)))
    return build.weights_sha256 if build else None


def _quantization(entry: VariantEntry) -> dict[str, Any] | None:
    quantization = entry.variant.quantization
    return quantization.model_dump(mode="json") if quantization else None


@dataclass(frozen=True)
class RunPlan:
    """One variant on one task, ready to score: the run key and the prompts."""

    spec: EvalRunSpec
    prompts: list[BuiltPrompt]
    scoring: ScoringOptions


def plan_run(
    registry: Registry,
    variant_name: str,
    task: BenchmarkTask,
    options: EvalOptions,
    task_data: TaskData | None = None,
) -> RunPlan:
    """The run key and the prompts of `variant_name` on `task`; nothing is loaded or stored.
    The engine's version is left empty: it is recorded when a run is created, after its engine
    loaded (finding a stored run never imports the engine's backend)."""
    options.check(task)
    mode = SCORING_MODES.get(options.mode)
    entry = registry.variant(variant_name)
    if mode.scores_loglikelihood:
        source = entry.variant.source
        refusal = registry.weights_source(entry.variant).loglik_refusal(source, variant_name)
        if refusal:
            raise Refused(refusal)
    data = task_data or load_task_data(
        task, registry.root, data=options.data, limit=options.limit, need_pool=options.shots > 0
    )
    template = None
    if (
        options.use_chat_template
        and entry.variant.instruction_tuned
        and entry.variant.chat_template
    ):
        template = registry.chat_template(entry.variant.chat_template)
    settings = PromptSettings(
        options.mode,
        options.shots,
        options.seed,
        options.cot,
        template,
        truncation=options.truncation,
    )
    prompts = [build_prompt(task, item, data.pool, settings) for item in data.items]
    scoring = options.scoring(end_of_turn=tuple(template.stop_strings) if template else ())
    spec = EvalRunSpec(
        variant=variant_name,
        task=task.name,
        task_kind=task.kind,
        dataset_hash=data.hash,
        prompt_template_hash=settings.fingerprint(task),
        scoring_mode=mode.key(scoring),
        shots=options.shots,
        seed=options.seed,
        engine=options.engine,
        engine_version="",
        code_version=code_version(),
        variant_revision=getattr(entry.variant.source, "revision", None),
        weights_hash=_weights_hash(registry, entry),
        settings_hash=settings_hash(task, options, _quantization(entry)),
        config={**asdict(options), "chat_template": template.name if template else None},
        task_spec=task.model_dump(mode="json"),
    )
    return RunPlan(spec, prompts, scoring)


def evaluate(
    store: Store,
    registry: Registry,
    variant_name: str,
    task: BenchmarkTask,
    options: EvalOptions,
    engine_loader: Callable[[], Engine],
    progress: Callable[[int, int], None] | None = None,
    *,
    rerun: bool = False,
    task_data: TaskData | None = None,
) -> EvalOutcome:
    """Evaluate one variant on one task. `engine_loader` is called only if items remain (the
    caller caches the engine across tasks and closes it). `rerun` starts a new run even when
    one with the same key is stored (a resumed run is always the latest with that key).
    `task_data`: the task's items as load_task_data returned them for these options, when the
    caller already read them (to check them before opening the store)."""
    planned = plan_run(registry, variant_name, task, options, task_data)
    spec, prompts, scoring = planned.spec, planned.prompts, planned.scoring
    mode = SCORING_MODES.get(options.mode)
    run = None if rerun else store.find_eval_run(spec)
    if run is not None and run.status == "completed":
        return EvalOutcome(run, store.metrics(run.id), 0, run.n_items or 0, True)
    loaded: list[Engine] = []
    if run is None:
        # a new run scores every item: load first, so a model that cannot load leaves no run
        loaded.append(engine_loader())
        if not rerun:  # another process may have started or finished this key meanwhile
            run = store.find_eval_run(spec)
            if run is not None and run.status == "completed":
                return EvalOutcome(run, store.metrics(run.id), 0, run.n_items or 0, True)
        if run is None:
            run = store.create_eval_run(
                replace(spec, engine_version=engine_version(options.engine))
            )
    stored = store.stored_item_ids(run.id)
    todo = [prompt for prompt in prompts if prompt.item.id not in stored]
    if progress:
        progress(len(prompts) - len(todo), len(prompts))
    items_per_s = tokens_per_s = None
    if todo:
        loader = (lambda: loaded[0]) if loaded else engine_loader
        scorer = mode.scorer(task, scoring)
        items_per_s, tokens_per_s = _score_remaining(
            store, run, todo, options.chunk_size, scorer, loader, progress
        )
    metrics = compute_metrics(store, run.id, task, options.mode)
    finished = store.finish_eval_run(
        run.id, metrics, items_per_s=items_per_s, tokens_per_s=tokens_per_s
    )
    return EvalOutcome(finished, metrics, len(todo), len(prompts) - len(todo), False, items_per_s)


def _score_remaining(
    store: Store,
    run: EvalRun,
    todo: list[BuiltPrompt],
    chunk_size: int,
    scorer: ChunkScorer,
    engine_loader: Callable[[], Engine],
    progress: Callable[[int, int], None] | None,
) -> tuple[float, float]:
    engine = engine_loader()
    started, tokens = time.perf_counter(), 0
    try:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            result = scorer(engine, chunk)
            store.add_predictions(run.id, result.predictions)
            tokens += result.tokens
            if progress:
                progress(len(chunk), 0)
    except Exception:
        store.set_eval_run_status(run.id, "failed")
        raise
    except BaseException:  # Ctrl-C, SystemExit from a signal handler: stopped, not broken
        store.set_eval_run_status(run.id, "interrupted")
        raise
    seconds = max(time.perf_counter() - started, 1e-9)
    return len(todo) / seconds, tokens / seconds


def compute_metrics(store: Store, run_id: int, task: BenchmarkTask, mode: str) -> list[MetricValue]:
    """Every metric of the run, from its stored predictions alone."""
    return SCORING_MODES.get(mode).metrics(task, store.predictions(run_id))
