"""The Store: the one way code writes results (reads: medarena.store.reads); it takes and
returns entities (medarena.results), not ORM rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import uuid4

from sqlalchemy import Insert, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medarena.errors import Refused
from medarena.registry import Registry
from medarena.results import (
    ContaminationCheck,
    EvalRun,
    EvalRunSpec,
    Expectations,
    ItemContamination,
    MetricValue,
    Prediction,
    Reproduction,
    SyncReport,
    TrainingRun,
    TrainingStep,
)
from medarena.schemas import ModelFamily, ModelVariant
from medarena.store.claims import SweepClaims
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
    RescoredRunRow,
    TaskRow,
    TrainingRunRow,
    TrainingStepRow,
    utcnow,
)
from medarena.store.queries import COMPLETED, run_key_hash
from medarena.store.reads import StoreReader, eval_run, training_run

RUN_STATUSES = ("running", COMPLETED, "failed", "interrupted")
CHECK_FIELDS = ("lineage", "task", "dataset_hash", "corpora", "method", "n", "threshold",
                "code_version", "n_items", "n_contaminated", "documents_read")  # fmt: skip


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:  # a bug in the caller, not a user's input
        raise ValueError(f"status must be one of {RUN_STATUSES}")


def _insert_new(
    session: Session,
    table: type,
    key_column: Any,
    run_column: Any,
    run_id: int,
    rows: dict[Any, dict[str, Any]],
) -> int:
    """Insert the rows whose key the run has not stored yet, in one multi-row INSERT (the ORM
    unit of work is several times slower). Re-sent rows are skipped, so a resumed run never
    duplicates; rows another process inserts between the check and the INSERT (two processes
    on one run) are skipped by the database (ON CONFLICT DO NOTHING). Returns how many were
    inserted."""
    stored = set(session.scalars(select(key_column).where(run_column == run_id)))
    fresh = [{run_column.key: run_id, **row} for key, row in rows.items() if key not in stored]
    if not fresh:
        return 0
    result = session.connection().execute(_insert_skipping_duplicates(session, table), fresh)
    return result.rowcount if result.rowcount >= 0 else len(fresh)


def _insert_skipping_duplicates(session: Session, table: type) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing()
    return insert(table)


class Store(StoreReader, SweepClaims):
    """Results store on any SQLAlchemy URL: the reads of StoreReader, and the writes (the
    claims of sweep workers: store/claims.py). Every write method is one transaction."""

    # ------------------------------------------------------------------------- registry sync

    def sync_registry(
        self, registry: Registry, expectations: Expectations | None = None
    ) -> SyncReport:
        """Mirror families, variants and published results into SQL so queries can join them.
        `expectations`: (variant, task, protocol) -> (scoring-mode key, shots) a measured run
        needs to stand beside a published result (medarena.evaluate.protocol computes them).

        Variants that left the YAML are kept (their results stay meaningful) but flagged
        `in_registry = 0`. Two processes syncing a new database at once both find a name
        missing and insert it; the loser's transaction rolls back whole and is retried, when it
        finds the rows and updates them.
        """
        for attempt in range(3):
            try:
                return self._sync_registry(registry, expectations or {})
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _sync_registry(self, registry: Registry, expectations: Expectations) -> SyncReport:
        with self._session() as session:
            family_ids = {
                family.name: self._upsert_family(session, family)
                for family in registry.families.values()
            }
            variant_ids: dict[str, int] = {}
            for entry in registry.variants.values():
                variant_ids[entry.variant.name] = self._upsert_variant(
                    session, entry.variant, family_ids[entry.family.name], registry
                )
            for entry in registry.variants.values():  # parents may be declared after children
                parent = entry.variant.parent
                row = session.get(ModelVariantRow, variant_ids[entry.variant.name])
                row.parent_id = variant_ids[parent] if parent else None
            retired = session.scalars(
                select(ModelVariantRow).where(ModelVariantRow.name.not_in(variant_ids))
            ).all()
            for row in retired:
                row.in_registry = False
            references = self._sync_references(session, registry, variant_ids, expectations)
        return SyncReport(len(family_ids), len(variant_ids), references, [r.name for r in retired])

    @staticmethod
    def _upsert_family(session: Session, family: ModelFamily) -> int:
        row = session.scalar(select(ModelFamilyRow).where(ModelFamilyRow.name == family.name))
        if row is None:
            row = ModelFamilyRow(name=family.name)
            session.add(row)
        row.display_name = family.display_name
        row.developer = family.developer
        row.license = family.license
        row.paper = family.paper
        row.continued_from = family.continued_from
        row.card = family.model_dump(mode="json", exclude={"variants"})
        row.synced_at = utcnow()
        session.flush()
        return row.id

    @staticmethod
    def _upsert_variant(
        session: Session, variant: ModelVariant, family_id: int, registry: Registry
    ) -> int:
        row = session.scalar(select(ModelVariantRow).where(ModelVariantRow.name == variant.name))
        if row is None:
            row = ModelVariantRow(name=variant.name)
            session.add(row)
        source = variant.source
        quant = variant.quantization
        row.family_id = family_id
        row.params_b = variant.params_b
        row.source_kind = source.kind
        row.location = registry.recorded_location(variant)
        row.revision = registry.weights_source(variant).revision(source)
        row.context_length = variant.context_length
        row.architecture = variant.architecture
        row.dtype = variant.dtype
        row.quant_method = quant.method if quant else None
        row.quant_bits = quant.bits if quant else None
        row.quant_group_size = quant.group_size if quant else None
        row.quant_scheme = quant.scheme if quant else None
        row.chat_template = variant.chat_template
        row.instruction_tuned = variant.instruction_tuned
        row.gated = variant.gated
        row.tensor_parallel = variant.tensor_parallel
        row.in_registry = True
        row.spec = variant.model_dump(mode="json")
        row.synced_at = utcnow()
        session.flush()
        return row.id

    @staticmethod
    def _sync_references(
        session: Session,
        registry: Registry,
        variant_ids: dict[str, int],
        expectations: Expectations,
    ) -> int:
        # published results are replaced wholesale per source file: the YAML is the truth
        count = 0
        for key, reference in registry.references.items():
            for row in session.scalars(
                select(ReferenceResultRow).where(ReferenceResultRow.source_key == key)
            ):
                session.delete(row)
            session.flush()
            for result in reference.results:
                expected = expectations.get((result.variant, result.task, result.protocol))
                expected_mode, expected_shots = expected or (None, None)
                session.add(
                    ReferenceResultRow(
                        variant_id=variant_ids[result.variant],
                        task=result.task,
                        metric=result.metric,
                        value=result.value,
                        shots=None if result.shots == "unknown" else result.shots,
                        setting=result.setting,
                        protocol=result.protocol,
                        other_protocol=result.other_protocol,
                        items=result.items,
                        split=result.split,
                        unmapped=result.unmapped,
                        expected_mode=expected_mode,
                        expected_shots=expected_shots,
                        source_key=key,
                        source=reference.source,
                        url=reference.url,
                        table_ref=result.table,
                    )
                )
                count += 1
        return count

    # ---------------------------------------------------------------------------- evaluation

    def _variant_id(self, session: Session, name: str) -> int:
        variant_id = session.scalar(select(ModelVariantRow.id).where(ModelVariantRow.name == name))
        if variant_id is None:
            raise Refused(f"variant {name!r} is not in the store: run `medarena models sync`")
        return variant_id

    def _task_id(self, session: Session, name: str, kind: str, spec: dict[str, Any]) -> int:
        row = session.scalar(select(TaskRow).where(TaskRow.name == name))
        if row is None:
            row = TaskRow(name=name, kind=kind, spec=spec)
            session.add(row)
            session.flush()
        elif spec:
            row.spec, row.kind = spec, kind
        return row.id

    def _run_row(
        self, session: Session, spec: EvalRunSpec, task_spec: dict[str, Any], **state: Any
    ) -> EvalRunRow:
        """A new run row carrying `spec`'s whole run key; `state`: status and its fields."""
        return EvalRunRow(
            run_uuid=str(uuid4()),
            variant_id=self._variant_id(session, spec.variant),
            task_id=self._task_id(session, spec.task, spec.task_kind, task_spec),
            variant_revision=spec.variant_revision,
            weights_hash=spec.weights_hash,
            settings_hash=spec.settings_hash,
            dataset_hash=spec.dataset_hash,
            prompt_template_hash=spec.prompt_template_hash,
            scoring_mode=spec.scoring_mode,
            shots=spec.shots,
            seed=spec.seed,
            engine=spec.engine,
            engine_version=spec.engine_version,
            code_version=spec.code_version,
            config=spec.config,
            **state,
        )

    def create_eval_run(self, spec: EvalRunSpec) -> EvalRun:
        """A new run for `spec`, or the unfinished run with the same key that another process
        created meanwhile (at most one run per key is open: two processes share it)."""
        try:
            with self._session() as session:
                row = self._run_row(
                    session,
                    spec,
                    spec.task_spec,
                    status="running",
                    open_key=run_key_hash(spec),
                )
                session.add(row)
                session.flush()
                return eval_run(session, row.id)
        except IntegrityError:
            with self._session() as session:
                run_id = session.scalar(
                    select(EvalRunRow.id).where(EvalRunRow.open_key == run_key_hash(spec))
                )
                if run_id is None:  # it was completed in between: a new run after all
                    return self.create_eval_run(spec)
                return eval_run(session, run_id)

    def add_predictions(self, run_id: int, predictions: Iterable[Prediction]) -> int:
        """Store per-item results; items already stored for this run are skipped (idempotent,
        so a resumed run never duplicates). Returns how many were inserted."""
        with self._session() as session:
            return _insert_new(
                session,
                PredictionRow,
                PredictionRow.item_id,
                PredictionRow.eval_run_id,
                run_id,
                {prediction.item_id: vars(prediction) for prediction in predictions},
            )

    def finish_eval_run(
        self,
        run_id: int,
        metrics: Sequence[MetricValue],
        *,
        status: str = COMPLETED,
        items_per_s: float | None = None,
        tokens_per_s: float | None = None,
    ) -> EvalRun:
        """Write the run's metrics and close it, in one transaction (no half-finished run)."""
        _check_status(status)
        with self._session() as session:
            row = session.get_one(EvalRunRow, run_id)
            for old in session.scalars(select(MetricRow).where(MetricRow.eval_run_id == run_id)):
                session.delete(old)
            session.flush()
            session.add_all(MetricRow(eval_run_id=run_id, **vars(metric)) for metric in metrics)
            row.status = status
            row.n_items = session.scalar(
                select(func.count())
                .select_from(PredictionRow)
                .where(PredictionRow.eval_run_id == run_id)
            )
            row.items_per_s, row.tokens_per_s = items_per_s, tokens_per_s
            row.input_tokens, row.output_tokens, row.cost_usd = session.execute(
                select(
                    func.sum(PredictionRow.input_tokens),
                    func.sum(PredictionRow.output_tokens),
                    # a cost only when every billed item has one
                    case(
                        (
                            func.count(PredictionRow.input_tokens)
                            == func.count(PredictionRow.cost_usd),
                            func.sum(PredictionRow.cost_usd),
                        ),
                    ),
                ).where(PredictionRow.eval_run_id == run_id)
            ).one()
            if status == COMPLETED:
                row.open_key = None  # the key may be run again (--rerun)
            row.finished_at = utcnow()
            session.flush()
            return eval_run(session, row.id)

    def add_rescored_run(
        self,
        spec: EvalRunSpec,
        source_run_id: int,
        extraction: tuple[str, str],
        predictions: Sequence[Prediction],
        metrics: Sequence[MetricValue],
    ) -> EvalRun:
        """A completed run made from `source_run_id`'s stored outputs parsed again with the
        rule `extraction` (name, version): run, predictions, metrics and the link in one
        transaction, so a failure leaves nothing."""
        with self._session() as session:
            row = self._run_row(
                session,
                spec,
                {},
                status=COMPLETED,
                n_items=len(predictions),
                finished_at=utcnow(),
            )
            session.add(row)
            session.flush()
            session.add(
                RescoredRunRow(
                    eval_run_id=row.id,
                    source_run_id=source_run_id,
                    extraction=extraction[0],
                    extraction_version=extraction[1],
                )
            )
            session.add_all(PredictionRow(eval_run_id=row.id, **vars(p)) for p in predictions)
            session.add_all(MetricRow(eval_run_id=row.id, **vars(m)) for m in metrics)
            session.flush()
            return eval_run(session, row.id)

    def set_eval_run_status(self, run_id: int, status: str) -> None:
        """Mark a run that stopped before finishing (interrupted, failed); resumable later."""
        _check_status(status)
        with self._session() as session:
            # a run another process completed meanwhile (two processes on one key) stays so
            session.execute(
                update(EvalRunRow)
                .where(EvalRunRow.id == run_id, EvalRunRow.status != COMPLETED)
                .values(status=status)
            )

    # ------------------------------------------------------------------------------ training

    def create_training_run(
        self,
        *,
        kind: str,
        recipe_name: str,
        recipe_hash: str,
        base_variant: str,
        config: dict[str, Any],
        world_size: int,
        hardware: str | None = None,
        data_mix: dict[str, Any] | None = None,
    ) -> TrainingRun:
        with self._session() as session:
            row = TrainingRunRow(
                run_uuid=str(uuid4()),
                kind=kind,
                recipe_name=recipe_name,
                recipe_hash=recipe_hash,
                base_variant_id=self._variant_id(session, base_variant),
                status="running",
                config=config,
                hardware=hardware,
                world_size=world_size,
                tokens_seen=0,
                data_mix=data_mix,
            )
            session.add(row)
            session.flush()
            return training_run(session, row.id)

    def set_training_run_status(self, run_id: int, status: str) -> None:
        """Mark a run that stopped (interrupted, failed) or resumed (running)."""
        _check_status(status)
        with self._session() as session:
            session.get_one(TrainingRunRow, run_id).status = status

    def add_training_steps(self, run_id: int, steps: Iterable[TrainingStep]) -> int:
        """Record step metrics; a step already recorded (replayed after a resume) is skipped."""
        steps = list(steps)
        with self._session() as session:
            inserted = _insert_new(
                session,
                TrainingStepRow,
                TrainingStepRow.step,
                TrainingStepRow.training_run_id,
                run_id,
                {step.step: vars(step) for step in steps},
            )
            seen = [step.tokens_seen for step in steps if step.tokens_seen is not None]
            if seen:
                row = session.get_one(TrainingRunRow, run_id)
                row.tokens_seen = max(row.tokens_seen, *seen)
        return inserted

    def finish_training_run(
        self,
        run_id: int,
        *,
        status: str,
        output_variant: str | None = None,
        also_produced: Sequence[str] = (),
        error: str | None = None,
    ) -> TrainingRun:
        """Close the run; `output_variant` (and `also_produced`, e.g. a LoRA run's adapter next
        to its merged model) are marked as produced by it."""
        _check_status(status)
        with self._session() as session:
            row = session.get_one(TrainingRunRow, run_id)
            row.status = status
            row.error = error
            row.ended_at = utcnow()
            row.wall_seconds = (row.ended_at - row.started_at).total_seconds()
            if output_variant is not None:
                row.output_variant_id = self._variant_id(session, output_variant)
            for name in [output_variant, *also_produced] if output_variant else also_produced:
                variant_id = self._variant_id(session, name)
                session.get_one(ModelVariantRow, variant_id).produced_by_run_id = run_id
            session.flush()
            return training_run(session, row.id)

    # -------------------------------------------------------------------------- reproductions

    def add_reproductions(self, reports: Iterable[Reproduction]) -> int:
        """Store `medarena reproduce` reports (each a new row: a report is a dated check)."""
        with self._session() as session:
            count = 0
            for report in reports:
                session.add(
                    ReproductionRow(
                        protocol=report.protocol,
                        variant_id=self._variant_id(session, report.variant),
                        task=report.task,
                        metric=report.metric,
                        published=report.published,
                        source=report.source,
                        measured=report.measured,
                        ci_low=report.ci_low,
                        ci_high=report.ci_high,
                        sd=report.sd,
                        n=report.n,
                        verdict=report.verdict,
                        mismatches=list(report.mismatches),
                        eval_run_ids=list(report.eval_run_ids),
                    )
                )
                count += 1
            return count

    # ------------------------------------------------------------------------- contamination

    def add_contamination_check(
        self, check: ContaminationCheck, items: Sequence[ItemContamination]
    ) -> ContaminationCheck:
        """Store a check and one row per item, in one transaction; a check with the same key
        stored meanwhile is returned instead."""
        try:
            with self._session() as session:
                row = ContaminationCheckRow(
                    check_key=check.key,
                    variant_id=self._variant_id(session, check.variant),
                    **{name: getattr(check, name) for name in CHECK_FIELDS},
                )
                session.add(row)
                session.flush()
                session.add_all(ContaminatedItemRow(check_id=row.id, **vars(i)) for i in items)
        except IntegrityError:
            pass
        stored = self.contamination_check(check.key)
        assert stored is not None
        return stored
