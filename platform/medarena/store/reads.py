"""Reading the store: every read returns entities (medarena.results), never ORM rows.

Reads select plain columns rather than ORM objects: loading runs with their JSON config as
objects took several times the query itself (docs/PERFORMANCE.md, Dashboard).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from medarena.results import (
    ApiUsage,
    ContaminationCheck,
    EvalRun,
    EvalRunSpec,
    FamilyInfo,
    ItemContamination,
    LeaderboardRow,
    MetricValue,
    Prediction,
    Reproduction,
    RunMetric,
    TrainingRun,
    TrainingStep,
    VariantInfo,
    quantization_label,
)
from medarena.store.database import check_schema, make_engine
from medarena.store.models import (
    ContaminatedItemRow,
    ContaminationCheckRow,
    EvalRunRow,
    MetricRow,
    ModelFamilyRow,
    ModelVariantRow,
    PredictionRow,
    ReferenceResultRow,
    ReproductionRow,
    TaskRow,
    TrainingRunRow,
    TrainingStepRow,
)
from medarena.store.queries import (
    COMPLETED,
    latest_completed_runs,
    latest_metrics_query,
    same_run_key,
    task_is,
    variant_is,
)

MEASURED = "measured"  # LeaderboardRow.source of a result measured here
_Reader = TypeVar("_Reader", bound="StoreReader")


def _eval_runs() -> Select:
    """EvalRun's columns, in its field order, with the variant and task names joined."""
    return (
        select(
            EvalRunRow.id,
            EvalRunRow.run_uuid,
            ModelVariantRow.name,
            TaskRow.name,
            EvalRunRow.scoring_mode,
            EvalRunRow.shots,
            EvalRunRow.seed,
            EvalRunRow.engine,
            EvalRunRow.status,
            EvalRunRow.n_items,
            EvalRunRow.created_at,
            EvalRunRow.finished_at,
        )
        .join(ModelVariantRow, ModelVariantRow.id == EvalRunRow.variant_id)
        .join(TaskRow, TaskRow.id == EvalRunRow.task_id)
    )


def _training_runs() -> Select:
    """TrainingRun's columns, in its field order, with the base and output variant names."""
    base, output = aliased(ModelVariantRow), aliased(ModelVariantRow)
    return (
        select(
            TrainingRunRow.id,
            TrainingRunRow.run_uuid,
            TrainingRunRow.kind,
            TrainingRunRow.recipe_name,
            base.name,
            output.name,
            TrainingRunRow.status,
            TrainingRunRow.tokens_seen,
            TrainingRunRow.started_at,
            TrainingRunRow.ended_at,
            TrainingRunRow.world_size,
            TrainingRunRow.hardware,
            TrainingRunRow.wall_seconds,
        )
        .join(base, base.id == TrainingRunRow.base_variant_id)
        .outerjoin(output, output.id == TrainingRunRow.output_variant_id)
    )


def eval_run(session: Session, run_id: int) -> EvalRun:
    return EvalRun(*session.execute(_eval_runs().where(EvalRunRow.id == run_id)).one())


def training_run(session: Session, run_id: int) -> TrainingRun:
    return TrainingRun(*session.execute(_training_runs().where(TrainingRunRow.id == run_id)).one())


class StoreReader:
    """Read access to a results store on any SQLAlchemy URL (the Store adds the writes)."""

    def __init__(self, url: str, *, create_if_empty: bool = True):
        self.url = url
        self.engine: Engine = make_engine(url)
        check_schema(self.engine, create_if_empty=create_if_empty)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self: _Reader) -> _Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _session(self) -> Session:
        return self._sessions.begin()  # type: ignore[return-value]

    # ---------------------------------------------------------------------------- registry

    def variant_names(self) -> list[str]:
        with self._session() as session:
            return list(
                session.scalars(select(ModelVariantRow.name).order_by(ModelVariantRow.name))
            )

    def families(self) -> list[FamilyInfo]:
        query = select(
            ModelFamilyRow.name,
            ModelFamilyRow.display_name,
            ModelFamilyRow.developer,
            ModelFamilyRow.license,
            ModelFamilyRow.paper,
            ModelFamilyRow.continued_from,
        ).order_by(ModelFamilyRow.name)
        with self._session() as session:
            return [FamilyInfo(*row) for row in session.execute(query)]

    def variants(self) -> list[VariantInfo]:
        """Every variant synced, by family and size, with the recipes its card names."""
        query = (
            select(
                ModelVariantRow.id,
                ModelVariantRow.name,
                ModelFamilyRow.name,
                ModelVariantRow.params_b,
                ModelVariantRow.parent_id,
                ModelVariantRow.produced_by_run_id,
                ModelVariantRow.instruction_tuned,
                ModelVariantRow.chat_template,
                ModelVariantRow.quant_method,
                ModelVariantRow.quant_bits,
                ModelVariantRow.gated,
                ModelVariantRow.context_length,
                ModelVariantRow.in_registry,
                ModelVariantRow.spec,
            )
            .join(ModelFamilyRow, ModelFamilyRow.id == ModelVariantRow.family_id)
            # undisclosed sizes (API models) last, on every database
            .order_by(
                ModelFamilyRow.name,
                ModelVariantRow.params_b.asc().nulls_last(),
                ModelVariantRow.name,
            )
        )
        with self._session() as session:
            return [
                VariantInfo(*row[:-1], tuple(row[-1].get("recipes") or ()))
                for row in session.execute(query)
            ]

    # -------------------------------------------------------------------------- evaluation

    def task_names(self, *, completed: bool = False) -> list[str]:
        """Tasks evaluated at least once (`completed`: by a run that completed)."""
        query = select(TaskRow.name).order_by(TaskRow.name)
        if completed:
            query = query.where(
                TaskRow.id.in_(select(EvalRunRow.task_id).where(EvalRunRow.status == COMPLETED))
            )
        with self._session() as session:
            return list(session.scalars(query))

    def has_runs(self) -> bool:
        """Whether any evaluation or training run was recorded."""
        with self._session() as session:
            return any(
                session.scalar(select(func.count()).select_from(table))
                for table in (EvalRunRow, TrainingRunRow)
            )

    def find_eval_run(self, spec: EvalRunSpec) -> EvalRun | None:
        """The latest run with the same run key (for resuming), if any."""
        query = _eval_runs().where(*same_run_key(spec)).order_by(EvalRunRow.id.desc()).limit(1)
        with self._session() as session:
            row = session.execute(query).first()
            return EvalRun(*row) if row else None

    def eval_run(self, run_id: int) -> EvalRun | None:
        """The run with store id `run_id`, if any."""
        with self._session() as session:
            row = session.execute(_eval_runs().where(EvalRunRow.id == run_id)).first()
            return EvalRun(*row) if row else None

    def eval_run_spec(self, run_id: int) -> EvalRunSpec | None:
        """What run `run_id` was stored under (its key, config and its task's spec), if any."""
        query = (
            select(
                ModelVariantRow.name,
                TaskRow.name,
                TaskRow.kind,
                EvalRunRow.dataset_hash,
                EvalRunRow.prompt_template_hash,
                EvalRunRow.scoring_mode,
                EvalRunRow.shots,
                EvalRunRow.seed,
                EvalRunRow.engine,
                EvalRunRow.engine_version,
                EvalRunRow.code_version,
                EvalRunRow.variant_revision,
                EvalRunRow.weights_hash,
                EvalRunRow.settings_hash,
                EvalRunRow.config,
                TaskRow.spec,
            )
            .join(ModelVariantRow, ModelVariantRow.id == EvalRunRow.variant_id)
            .join(TaskRow, TaskRow.id == EvalRunRow.task_id)
            .where(EvalRunRow.id == run_id)
        )
        with self._session() as session:
            row = session.execute(query).first()
            return EvalRunSpec(*row) if row else None

    def latest_runs(
        self, *, variant: str | None = None, task: str | None = None, shots: int | None = None
    ) -> list[EvalRun]:
        """The latest completed run per variant x task x scoring mode x shots
        (`medarena.store.queries.latest_completed_runs`), narrowed by the arguments; by
        variant, task, mode and shots."""
        where = [variant_is(variant)] if variant is not None else []
        where += [task_is(task)] if task is not None else []
        where += [EvalRunRow.shots == shots] if shots is not None else []
        latest = latest_completed_runs(*where)
        query = (
            _eval_runs()
            .join(latest, latest.c.run_id == EvalRunRow.id)
            .order_by(ModelVariantRow.name, TaskRow.name, EvalRunRow.scoring_mode, EvalRunRow.shots)
        )
        with self._session() as session:
            return [EvalRun(*row) for row in session.execute(query)]

    def latest_metrics(
        self, variants: Sequence[str], *, shots: int
    ) -> dict[tuple[str, str, str], dict[str, float]]:
        """(variant, task, scoring mode) -> metric values of the latest completed `shots`-shot
        run of each of `variants`."""
        query = (
            latest_metrics_query(
                ModelVariantRow.name,
                TaskRow.name,
                EvalRunRow.scoring_mode,
                MetricRow.name,
                MetricRow.value,
                where=[EvalRunRow.shots == shots],
            )
            .where(ModelVariantRow.name.in_(variants))
            .order_by(MetricRow.name)
        )
        found: dict[tuple[str, str, str], dict[str, float]] = {}
        with self._session() as session:
            for variant, task, mode, name, value in session.execute(query):
                found.setdefault((variant, task, mode), {})[name] = value
        return found

    def stored_item_ids(self, run_id: int) -> set[str]:
        with self._session() as session:
            return set(
                session.scalars(
                    select(PredictionRow.item_id).where(PredictionRow.eval_run_id == run_id)
                )
            )

    def predictions(self, run_id: int, *, limit: int | None = None) -> list[Prediction]:
        """The run's per-item results by item id (the first `limit` when given)."""
        columns = [getattr(PredictionRow, name) for name in Prediction.__dataclass_fields__]
        query = (
            select(*columns)
            .where(PredictionRow.eval_run_id == run_id)
            .order_by(PredictionRow.item_id)
            .limit(limit)
        )
        with self._session() as session:
            return [Prediction(*row) for row in session.execute(query)]

    def metrics(self, run_id: int) -> list[MetricValue]:
        query = (
            select(
                MetricRow.name, MetricRow.value, MetricRow.n, MetricRow.ci_low, MetricRow.ci_high
            )
            .where(MetricRow.eval_run_id == run_id)
            .order_by(MetricRow.name)
        )
        with self._session() as session:
            return [MetricValue(*row) for row in session.execute(query)]

    def metric_names(self) -> list[str]:
        """Every metric measured or published, by name."""
        measured = select(MetricRow.name).distinct()
        published = select(ReferenceResultRow.metric).distinct()
        with self._session() as session:
            return sorted(set(session.scalars(measured)) | set(session.scalars(published)))

    def metric_history(self, variant: str, task: str, metric: str) -> list[RunMetric]:
        """`metric` of every completed run of `variant` on `task`, oldest first."""
        query = (
            select(
                EvalRunRow.id,
                EvalRunRow.created_at,
                EvalRunRow.scoring_mode,
                EvalRunRow.shots,
                EvalRunRow.seed,
                EvalRunRow.engine,
                EvalRunRow.code_version,
                MetricRow.value,
                MetricRow.ci_low,
                MetricRow.ci_high,
                MetricRow.n,
            )
            .join(MetricRow, MetricRow.eval_run_id == EvalRunRow.id)
            .where(
                variant_is(variant),
                task_is(task),
                MetricRow.name == metric,
                EvalRunRow.status == COMPLETED,
            )
            .order_by(EvalRunRow.id)
        )
        with self._session() as session:
            return [RunMetric(*row) for row in session.execute(query)]

    def leaderboard(self, metric: str, *, include_reference: bool = True) -> list[LeaderboardRow]:
        """The latest completed run per (variant, task, scoring mode, shots) for `metric`, then
        the published results for it, marked by their source."""
        query = (
            latest_metrics_query(
                ModelVariantRow.name,
                ModelFamilyRow.name,
                TaskRow.name,
                MetricRow.name,
                MetricRow.value,
                MetricRow.ci_low,
                MetricRow.ci_high,
                MetricRow.n,
                EvalRunRow.scoring_mode,
                EvalRunRow.shots,
                EvalRunRow.id,
                ModelVariantRow.quant_method,
                ModelVariantRow.quant_bits,
                ModelVariantRow.quant_group_size,
                ModelVariantRow.quant_scheme,
            )
            .join(ModelFamilyRow, ModelFamilyRow.id == ModelVariantRow.family_id)
            .where(MetricRow.name == metric)
        )
        with self._session() as session:
            shares = self._contaminated_shares(session)
            rows = [
                LeaderboardRow(
                    *row[:10],
                    MEASURED,
                    row[10],
                    contaminated=shares.get((row[0], row[2])),
                    quantization=quantization_label(*row[11:]),
                )
                for row in session.execute(query)
            ]
            if include_reference:
                rows += self._published(session, metric)
        return sorted(rows, key=lambda r: (r.task, r.source != MEASURED, -r.value))

    def api_usage(self) -> list[ApiUsage]:
        """Tokens and cost of the latest completed runs that went through an API."""
        latest = latest_completed_runs(EvalRunRow.input_tokens.is_not(None))
        query = (
            select(
                EvalRunRow.id,
                ModelVariantRow.name,
                TaskRow.name,
                EvalRunRow.scoring_mode,
                EvalRunRow.shots,
                EvalRunRow.n_items,
                EvalRunRow.input_tokens,
                EvalRunRow.output_tokens,
                EvalRunRow.cost_usd,
            )
            .join(latest, latest.c.run_id == EvalRunRow.id)
            .join(ModelVariantRow, ModelVariantRow.id == EvalRunRow.variant_id)
            .join(TaskRow, TaskRow.id == EvalRunRow.task_id)
            .order_by(ModelVariantRow.name, TaskRow.name, EvalRunRow.id)
        )
        with self._session() as session:
            return [ApiUsage(*row) for row in session.execute(query)]

    @staticmethod
    def _published(session: Session, metric: str) -> list[LeaderboardRow]:
        """Published results for `metric`; their "scoring mode" is the paper's own setting."""
        query = (
            select(ReferenceResultRow, ModelVariantRow.name, ModelFamilyRow.name)
            .join(ModelVariantRow, ModelVariantRow.id == ReferenceResultRow.variant_id)
            .join(ModelFamilyRow, ModelFamilyRow.id == ModelVariantRow.family_id)
            .where(ReferenceResultRow.metric == metric)
        )
        return [
            LeaderboardRow(
                variant,
                family,
                ref.task,
                ref.metric,
                ref.value,
                None,
                None,
                0,
                ref.setting,
                ref.shots,
                ref.source,
                protocol=ref.protocol or ref.other_protocol,
                unmapped=ref.unmapped,
                expected_mode=ref.expected_mode,
                expected_shots=ref.expected_shots,
            )
            for ref, variant, family in session.execute(query)
        ]

    def reproductions(self, *, protocol: str | None = None) -> list[Reproduction]:
        """Every stored `medarena reproduce` report (newest first), of one protocol or all."""
        query = (
            select(ReproductionRow, ModelVariantRow.name)
            .join(ModelVariantRow, ModelVariantRow.id == ReproductionRow.variant_id)
            .order_by(ReproductionRow.id.desc())
        )
        if protocol is not None:
            query = query.where(ReproductionRow.protocol == protocol)
        with self._session() as session:
            return [
                Reproduction(
                    row.protocol,
                    variant,
                    row.task,
                    row.metric,
                    row.published,
                    row.source,
                    row.measured,
                    row.ci_low,
                    row.ci_high,
                    row.sd,
                    row.n,
                    row.verdict,
                    list(row.mismatches),
                    list(row.eval_run_ids),
                    row.created_at,
                )
                for row, variant in session.execute(query)
            ]

    # ---------------------------------------------------------------------------- training

    def training_runs(self) -> list[TrainingRun]:
        """Every training run, oldest first."""
        with self._session() as session:
            query = _training_runs().order_by(TrainingRunRow.id)
            return [TrainingRun(*row) for row in session.execute(query)]

    def training_config(self, run_id: int) -> dict[str, Any]:
        """A training run's kind and what it recorded at its start (plan, recipe...)."""
        query = select(TrainingRunRow.kind, TrainingRunRow.config).where(
            TrainingRunRow.id == run_id
        )
        with self._session() as session:
            kind, config = session.execute(query).one()
            return {**config, "kind": kind}

    def training_steps(self, run_id: int) -> list[TrainingStep]:
        columns = [getattr(TrainingStepRow, name) for name in TrainingStep.__dataclass_fields__]
        query = (
            select(*columns)
            .where(TrainingStepRow.training_run_id == run_id)
            .order_by(TrainingStepRow.step)
        )
        with self._session() as session:
            return [TrainingStep(*row) for row in session.execute(query)]

    def data_mix(self, run_id: int) -> dict[str, Any]:
        """The realised data mix a training run recorded (empty if none)."""
        with self._session() as session:
            query = select(TrainingRunRow.data_mix).where(TrainingRunRow.id == run_id)
            return session.scalar(query) or {}

    # ------------------------------------------------------------------------- contamination

    def contamination_check(self, key: str) -> ContaminationCheck | None:
        """The stored check with `key` (medarena.analysis.contamination.check_key), if any."""
        query = (
            select(ContaminationCheckRow, ModelVariantRow.name)
            .join(ModelVariantRow, ModelVariantRow.id == ContaminationCheckRow.variant_id)
            .where(ContaminationCheckRow.check_key == key)
        )
        with self._session() as session:
            found = session.execute(query).first()
            if found is None:
                return None
            row, variant = found
            return ContaminationCheck(
                row.id,
                row.check_key,
                variant,
                list(row.lineage),
                row.task,
                row.dataset_hash,
                list(row.corpora),
                row.method,
                row.n,
                row.threshold,
                row.code_version,
                row.n_items,
                row.n_contaminated,
                row.documents_read,
                row.created_at,
            )

    def contaminated_items(self, check_id: int) -> list[ItemContamination]:
        """Every item of a check, by item id."""
        columns = [getattr(ContaminatedItemRow, f) for f in ItemContamination.__dataclass_fields__]
        query = (
            select(*columns)
            .where(ContaminatedItemRow.check_id == check_id)
            .order_by(ContaminatedItemRow.item_id)
        )
        with self._session() as session:
            return [ItemContamination(*row) for row in session.execute(query)]

    def latest_contamination(self, variant: str, task: str) -> ContaminationCheck | None:
        """The latest contamination check of `variant` on `task`, if any."""
        query = (
            select(ContaminationCheckRow.check_key)
            .join(ModelVariantRow, ModelVariantRow.id == ContaminationCheckRow.variant_id)
            .where(ModelVariantRow.name == variant, ContaminationCheckRow.task == task)
            .order_by(ContaminationCheckRow.id.desc())
            .limit(1)
        )
        with self._session() as session:
            key = session.scalar(query)
        return None if key is None else self.contamination_check(key)

    def contaminated_item_ids(self, check_id: int) -> set[str]:
        """The items a check flagged."""
        query = select(ContaminatedItemRow.item_id).where(
            ContaminatedItemRow.check_id == check_id, ContaminatedItemRow.contaminated
        )
        with self._session() as session:
            return set(session.scalars(query))

    @staticmethod
    def _contaminated_shares(session: Session) -> dict[tuple[str, str], float]:
        """(variant, task) -> share of items flagged by the latest check of the pair."""
        latest = (
            select(func.max(ContaminationCheckRow.id).label("check_id"))
            .group_by(ContaminationCheckRow.variant_id, ContaminationCheckRow.task)
            .subquery()
        )
        query = (
            select(
                ModelVariantRow.name,
                ContaminationCheckRow.task,
                ContaminationCheckRow.n_contaminated,
                ContaminationCheckRow.n_items,
            )
            .join(latest, latest.c.check_id == ContaminationCheckRow.id)
            .join(ModelVariantRow, ModelVariantRow.id == ContaminationCheckRow.variant_id)
        )
        return {
            (variant, task): flagged / items if items else 0.0
            for variant, task, flagged, items in session.execute(query)
        }
