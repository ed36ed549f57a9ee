"""Run identity: every input that can change a stored output is in the run key, and every
field of the evaluation options and the task spec says where (or why it cannot matter)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from medarena.evaluate import identity
from medarena.evaluate.extractors import EXTRACTORS
from medarena.evaluate.runner import EvalOptions, plan_run
from medarena.evaluate.spec import Generation, load_benchmarks
from medarena.registry import load_registry
from medarena.store.queries import RUN_KEY, run_key_hash
from tests.conftest import REPO
from tests.helpers import invoke, sql_rows


def test_every_option_and_spec_field_is_placed_once() -> None:
    assert identity.unplaced_fields(EvalOptions) == []


def test_a_new_field_placed_nowhere_is_caught() -> None:
    @dataclasses.dataclass(frozen=True)
    class Wider(EvalOptions):
        top_p: float = 1.0

    assert identity.unplaced_fields(Wider) == ["EvalOptions.top_p"]


def test_every_coverage_names_a_part_of_the_run_key() -> None:
    parts = {*RUN_KEY, "scoring_mode"}
    assert set(identity.OPTION_COVERAGE.values()) <= parts
    assert set(identity.TASK_COVERAGE.values()) <= parts


# each option the key covers, with a second value that must give another key
OPTION_CHANGES = {
    "engine": "vllm",
    "mode": "loglik",
    "shots": 1,
    "seed": 1,
    "cot": True,
    "samples": 3,
    "temperature": 0.9,
    "limit": 2,
    "truncation": "error",
    "bertscore_encoder": "roberta-large",
    "bartscore_model": "tiny-bart",
    "use_chat_template": False,
    "extraction": "me-llama",
}
BASE = EvalOptions(mode="generate", temperature=0.5, samples=1, limit=3)


@pytest.fixture(scope="module")
def planning():
    registry = load_registry(REPO)
    tasks = load_benchmarks(REPO)
    return registry, tasks


def key_of(planning, options: EvalOptions, task_name: str = "pubmedqa", variant=None) -> str:
    registry, tasks = planning
    task = tasks[task_name]
    return run_key_hash(plan_run(registry, variant or "tiny-medical-base", task, options).spec)


def test_every_keyed_option_has_a_changed_value_below() -> None:
    # `data: hub` reads other items (covered by the dataset hash), which needs the network
    assert set(OPTION_CHANGES) | {"data"} == set(identity.OPTION_COVERAGE)


@pytest.mark.parametrize("field", sorted(OPTION_CHANGES))
def test_changing_a_keyed_option_changes_the_run_key(planning, field: str) -> None:
    changed = dataclasses.replace(BASE, **{field: OPTION_CHANGES[field]})
    if field == "samples":
        changed = dataclasses.replace(changed, temperature=0.7)
    if field == "bartscore_model":
        # only a task scored with BARTScore: other tasks keep the keys stored before it existed
        task = planning[1]["pubmed_summarization"]
        scored = task.model_copy(update={"metrics": [*task.metrics, "bartscore"]})
        assert identity.settings_hash(scored, changed) != identity.settings_hash(scored, BASE)
        assert key_of(planning, changed) == key_of(planning, BASE)
        return
    if field == "use_chat_template":
        # only an instruction-tuned variant wraps prompts in its template
        before = key_of(planning, BASE, variant="llama-2-7b-chat")
        assert key_of(planning, changed, variant="llama-2-7b-chat") != before
        return
    assert key_of(planning, changed) != key_of(planning, BASE)


def test_options_without_effect_leave_the_key_alone(planning) -> None:
    assert key_of(planning, dataclasses.replace(BASE, chunk_size=1)) == key_of(planning, BASE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metrics", ["acc"]),
        ("kind", "summarization"),
        ("generation", Generation(max_new_tokens=7)),
        ("generation", Generation(stop=["###"])),
        ("generation", Generation(cot_max_new_tokens=512)),
    ],
)
def test_changing_a_settings_field_of_the_spec_changes_the_settings_hash(planning, field, value):
    _, tasks = planning
    task = tasks["pubmedqa"]
    changed = task.model_copy(update={field: value})
    assert identity.settings_hash(changed, BASE) != identity.settings_hash(task, BASE)


def test_the_extraction_rule_is_in_the_settings(planning, monkeypatch) -> None:
    _, tasks = planning
    before = identity.settings_hash(tasks["pubmedqa"], BASE)
    bumped = dataclasses.replace(EXTRACTORS.get("medarena"), version="medarena-2")
    monkeypatch.setitem(EXTRACTORS._entries, "medarena", bumped)
    assert identity.settings_hash(tasks["pubmedqa"], BASE) != before


def test_the_default_rule_keeps_the_keys_stored_before_rules_had_names(planning) -> None:
    # runs stored before the extractor registry hashed the bare rule "medarena-1"
    assert identity.settings(planning[1]["pubmedqa"], BASE)["extraction_rule"] == "medarena-1"


def test_a_second_temperature_makes_a_second_run(eval_workspace: Path, db_url: str) -> None:
    """The issue's case: the same generate evaluation at another temperature was reported as
    the first run's result "(stored)"."""
    args = ("eval", "-m", "tiny-medical-base", "-t", "pubmedqa", "--mode", "generate")
    first = invoke(eval_workspace, db_url, *args, "--limit", "2")
    assert first.exit_code == 0, first.output
    again = invoke(eval_workspace, db_url, *args, "--limit", "2")
    assert "(stored)" in again.stdout
    hotter = invoke(eval_workspace, db_url, *args, "--limit", "2", "--temperature", "0.9")
    assert hotter.exit_code == 0, hotter.output
    assert "(stored)" not in hotter.stdout
    runs = sql_rows(db_url, "SELECT settings_hash FROM eval_runs ORDER BY id")
    assert len(runs) == 2 and runs[0] != runs[1] and None not in {row[0] for row in runs}
