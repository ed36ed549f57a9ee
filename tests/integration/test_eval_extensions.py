"""Extension points of evaluation, proved by toy extensions: each below is one class or function
plus a registration (`temporarily`), run through the real `medarena eval` / runner, with no other
edit of medarena."""

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from medarena.errors import Refused
from medarena.evaluate.engines import ENGINES, Engine, LoglikRequest, LoglikResult, load_engine
from medarena.evaluate.engines.base import Generation
from medarena.evaluate.formats import SOURCE_FORMATS, Item
from medarena.evaluate.kinds import TASK_KINDS, TaskKind
from medarena.evaluate.metrics import mean_metric
from medarena.evaluate.modes import SCORING_MODES, ChunkResult, ScoringMode
from medarena.evaluate.modes.base import prediction
from medarena.evaluate.runner import EvalOptions, evaluate, load_task_data
from medarena.evaluate.spec import load_benchmarks
from medarena.evaluate.tokens import encode_pair
from medarena.registry import load_registry
from medarena.store import Store
from tests.helpers import as_json, invoke, sql_rows

# --------------------------------------------------------------------------- a toy engine


class FavouriteEngine(Engine):
    """A fake model that always likes one answer best: log-prob 0 for a continuation that reads
    `favourite`, -1 for any other; it generates `favourite`. Tokenizes with the model's own
    tokenizer, as every engine does."""

    name = "favourite"
    backend = ("medarena",)
    options = ("favourite",)

    def __init__(
        self, location, *, revision=None, dtype="float32", max_length=2048, favourite="maybe"
    ):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
        self.max_length = max_length
        self.favourite = favourite

    def loglikelihood(self, requests, progress=None):
        texts = [self.tokenizer.decode(r.continuation).strip() for r in requests]
        return [
            LoglikResult(0.0 if t == self.favourite else -1.0, t == self.favourite) for t in texts
        ]

    def generate(self, prompts, sampling, items=()):
        return [Generation((self.favourite,) * sampling.n, sampling.n) for _ in prompts]


def gold_share(workspace: Path, task: str, answer: str, limit: int) -> float:
    items = load_task_data(load_benchmarks(workspace)[task], workspace, limit=limit).items
    return sum(item.gold_text == answer for item in items) / len(items)


@pytest.mark.parametrize("mode", ["loglik", "generate"])
def test_a_registered_engine_runs_through_medarena_eval(eval_workspace, db_url, mode):
    args = ["eval", "-m", "tiny-medical-base", "-t", "pubmedqa", "--limit", "12", "--mode", mode]
    with ENGINES.temporarily("favourite", FavouriteEngine):
        result = invoke(eval_workspace, db_url, *args, "--engine", "favourite")
        assert result.exit_code == 0, result.output
        again = invoke(eval_workspace, db_url, *args, "--engine", "favourite")
    assert again.exit_code == 0 and "(stored)" in again.stdout
    ((engine, engine_version, scoring_mode),) = sql_rows(
        db_url, "SELECT engine, engine_version, scoring_mode FROM eval_runs"
    )
    assert (engine, engine_version, scoring_mode) == (
        "favourite",
        f"medarena {version('medarena')}",
        mode,
    )
    assert sql_rows(db_url, "SELECT DISTINCT parsed_answer FROM predictions") == [("maybe",)]
    ((acc,),) = sql_rows(db_url, "SELECT value FROM metrics WHERE name = 'acc'")
    assert acc == pytest.approx(gold_share(eval_workspace, "pubmedqa", "maybe", 12))
    # unregistered again, the name is unknown
    unknown = invoke(eval_workspace, db_url, *args, "--engine", "favourite")
    assert unknown.exit_code == 2 and "unknown engine 'favourite'" in unknown.stderr


def test_an_engine_gets_the_options_it_declares_and_refuses_others(eval_workspace, db_url):
    registry = load_registry(eval_workspace)
    entry = registry.variant("tiny-medical-base")
    task = load_benchmarks(eval_workspace)["pubmedqa"]
    with ENGINES.temporarily("favourite", FavouriteEngine), Store(db_url) as store:
        with pytest.raises(Refused, match="takes no option batch_size; it takes: favourite"):
            load_engine("favourite", registry, entry, batch_size=8)
        store.sync_registry(registry)
        outcome = evaluate(
            store,
            registry,
            entry.variant.name,
            task,
            EvalOptions(engine="favourite", limit=12),
            lambda: load_engine("favourite", registry, entry, favourite="yes"),
        )
        predictions = store.predictions(outcome.run.id)
    assert {p.parsed_answer for p in predictions} == {"yes"}
    acc = {m.name: m.value for m in outcome.metrics}["acc"]
    assert acc == pytest.approx(gold_share(eval_workspace, "pubmedqa", "yes", 12))


# ------------------------------------------- a toy source format, task kind and scoring mode


def fact_lines(record) -> Item:
    """{"statement": ..., "true": bool} per line."""
    data = record.data
    return Item(
        id=f"fact-{record.index}",
        fields={"statement": data["statement"]},
        choices=("true", "false"),
        option_texts=("true", "false"),
        gold=0 if data["true"] else 1,
    )


class GoldLoglik(ScoringMode):
    """How likely the model finds the right answer: the gold continuation's summed log-prob;
    an item counts as correct when every gold token is the model's greedy choice."""

    name = "gold_loglik"

    def scorer(self, task, options):
        def score(engine, prompts):
            requests = []
            for prompt in prompts:
                answer = prompt.target_delimiter + prompt.item.gold_text
                context, continuation = encode_pair(engine.tokenizer, prompt.context, answer)
                requests.append(LoglikRequest(tuple(context), tuple(continuation)))
            results = engine.loglikelihood(requests)
            predictions = [
                prediction(prompt, 0, score=result.logprob, correct=result.is_greedy)
                for prompt, result in zip(prompts, results, strict=True)
            ]
            tokens = sum(len(r.context) + len(r.continuation) for r in requests)
            return ChunkResult(predictions, tokens)

        return score

    def metrics(self, task, predictions):
        return [mean_metric("mean_gold_loglik", [p.score for p in predictions])]


FACTS = [
    ("Insulin lowers blood glucose.", True),
    ("The femur is in the arm.", False),
    ("Aspirin inhibits cyclooxygenase.", True),
    ("Hemoglobin carries oxygen.", True),
    ("The liver produces insulin.", False),
]

TRUE_OR_FALSE = TaskKind(modes=("gold_loglik",), metrics=("mean_gold_loglik",), choices=True)

SPEC = """\
name: true_or_false
display_name: True or false
kind: true_or_false
citation: "written for this test"
source_format: fact_lines
data:
  eval: {path: samples/facts.jsonl}
prompt: "Statement: {{ statement }}\\nTrue or false?"
scoring_modes: [gold_loglik]
metrics: [mean_gold_loglik]
"""


def test_a_registered_format_kind_and_mode_run_through_medarena_eval(eval_workspace, db_url):
    benchmarks = eval_workspace / "benchmarks"
    benchmarks.unlink()
    (benchmarks / "samples").mkdir(parents=True)
    (benchmarks / "true_or_false.yaml").write_text(SPEC)
    lines = [json.dumps({"statement": s, "true": t}) for s, t in FACTS]
    (benchmarks / "samples/facts.jsonl").write_text("\n".join(lines) + "\n")
    args = ["eval", "-m", "tiny-medical-base", "-t", "true_or_false"]

    with (
        SOURCE_FORMATS.temporarily("fact_lines", fact_lines),
        TASK_KINDS.temporarily("true_or_false", TRUE_OR_FALSE),
        SCORING_MODES.temporarily("gold_loglik", GoldLoglik()),
    ):
        listed = invoke(eval_workspace, db_url, "benchmarks", "ls")
        assert listed.exit_code == 0 and "true_or_false" in listed.stdout
        result = invoke(eval_workspace, db_url, *args)
        assert result.exit_code == 0, result.output
        assert "mean_gold_loglik" in result.stdout
        again = invoke(eval_workspace, db_url, *args)
        assert again.exit_code == 0 and "(stored)" in again.stdout

        # the scores are the hf engine's log-likelihoods of the gold answers
        registry = load_registry(eval_workspace)
        engine = load_engine("hf", registry, registry.variant("tiny-medical-base"))
        contexts = {
            row[0]: row[1] for row in sql_rows(db_url, "SELECT item_id, prompt FROM predictions")
        }
        expected = {}
        for index, (_, true) in enumerate(FACTS):
            answer = " true" if true else " false"
            context, continuation = encode_pair(engine.tokenizer, contexts[f"fact-{index}"], answer)
            [result] = engine.loglikelihood([LoglikRequest(tuple(context), tuple(continuation))])
            expected[f"fact-{index}"] = result.logprob
        engine.close()

    ((mode, kind_name, task_spec),) = sql_rows(
        db_url,
        "SELECT r.scoring_mode, t.kind, t.spec FROM eval_runs r JOIN tasks t ON t.id = r.task_id",
    )
    assert (mode, kind_name) == ("gold_loglik", "true_or_false")
    assert as_json(task_spec)["source_format"] == "fact_lines"
    scores = dict(sql_rows(db_url, "SELECT item_id, score FROM predictions"))
    assert scores == pytest.approx(expected)
    assert contexts["fact-1"] == "Statement: The femur is in the arm.\nTrue or false?"
    ((mean,),) = sql_rows(db_url, "SELECT value FROM metrics WHERE name = 'mean_gold_loglik'")
    assert mean == pytest.approx(sum(expected.values()) / len(FACTS))

    # once unregistered, the spec names a kind and a format nobody knows: located problems
    refused = invoke(eval_workspace, db_url, *args)
    assert refused.exit_code == 2
    assert "benchmarks/true_or_false.yaml:3: kind: " in refused.stderr
    assert (
        "unknown task kind 'true_or_false'; known: classification, extractive_qa, multilabel, "
        "multiple_choice, ner, nli, relation, summarization"
    ) in refused.stderr
    assert "benchmarks/true_or_false.yaml:5: source_format: " in refused.stderr
    assert (
        "unknown source format 'fact_lines'; known: ddi2013_xml, hoc_blue, me_llama_extractive_qa"
    ) in refused.stderr


def test_the_toy_spec_refuses_a_mode_its_kind_does_not_allow(eval_workspace, db_url):
    """Only the kind's modes apply: the toy kind takes no loglik."""
    benchmarks = eval_workspace / "benchmarks"
    benchmarks.unlink()
    benchmarks.mkdir()
    (benchmarks / "true_or_false.yaml").write_text(
        SPEC.replace("scoring_modes: [gold_loglik]", "scoring_modes: [gold_loglik, loglik]")
    )
    with (
        SOURCE_FORMATS.temporarily("fact_lines", fact_lines),
        TASK_KINDS.temporarily("true_or_false", TRUE_OR_FALSE),
    ):
        result = invoke(eval_workspace, db_url, "benchmarks", "ls")
    assert result.exit_code == 2
    assert "benchmarks/true_or_false.yaml:9: scoring_modes: " in result.stderr
    assert "true_or_false is scored in gold_loglik mode only: [gold_loglik]" in result.stderr
