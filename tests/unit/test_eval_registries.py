"""The evaluation registries: what is registered, that listing imports no backend, and what
`load_engine` takes from an engine's declarations instead of matching its name."""

import subprocess
import sys
from pathlib import Path

import pytest

from medarena.errors import EngineError, Refused, UnknownName
from medarena.evaluate.engines import ENGINES, Engine, engine_version, load_engine
from medarena.evaluate.formats import SOURCE_FORMATS
from medarena.evaluate.kinds import TASK_KINDS
from medarena.evaluate.modes import SCORING_MODES, ScoringOptions
from medarena.evaluate.runner import EvalOptions
from medarena.evaluate.spec import BenchmarkTask, load_benchmarks
from medarena.registry import load_registry
from tests.conftest import REPO, copy_models


def test_the_built_in_extensions_are_registered():
    assert ENGINES.names() == ("hf", "vllm", "openai")
    assert SCORING_MODES.names() == ("loglik", "cloze", "generate")
    assert TASK_KINDS.names() == (
        "multiple_choice",
        "summarization",
        "classification",
        "nli",
        "relation",
        "multilabel",
        "extractive_qa",
        "ner",
    )
    assert set(SOURCE_FORMATS) == {
        "medqa_4options",
        "medqa_bigbio",
        "medmcqa",
        "pubmedqa",
        "mmlu",
        "me_llama_summarization",
        "me_llama_labels",
        "mednli",
        "me_llama_multilabel",
        "me_llama_extractive_qa",
        "me_llama_ner",
        "ddi2013_xml",
        "hoc_blue",
    }
    for name in SCORING_MODES:
        assert SCORING_MODES.get(name).name == name  # the run key uses the mode's own name
    for kind in TASK_KINDS:
        assert all(mode in SCORING_MODES for mode in TASK_KINDS.get(kind).modes), kind


def test_listing_engines_and_modes_imports_no_backend():
    code = (
        "import sys\n"
        "from medarena.evaluate.engines import ENGINES\n"
        "from medarena.evaluate.modes import SCORING_MODES\n"
        "from medarena.evaluate.spec import load_benchmarks\n"
        f"load_benchmarks({str(REPO)!r})\n"
        "assert 'vllm' in ENGINES and ENGINES.names() == ('hf', 'vllm', 'openai')\n"
        "print(SCORING_MODES.names())\n"
        "print([m for m in ('torch', 'transformers', 'vllm', 'openai') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["('loglik', 'cloze', 'generate')", "[]"]


def test_the_run_key_suffixes_of_the_built_in_modes():
    # stored runs are found by these: they must not change
    loglik, cloze, generate = (SCORING_MODES.get(m) for m in ("loglik", "cloze", "generate"))
    assert loglik.key(ScoringOptions()) == "loglik"
    assert cloze.key(ScoringOptions()) == "cloze"
    assert generate.key(ScoringOptions()) == "generate"
    assert generate.key(ScoringOptions(cot=True)) == "generate+cot"
    assert generate.key(ScoringOptions(samples=3, temperature=0.8)) == "generate+sc3@0.8"
    both = ScoringOptions(cot=True, samples=5, temperature=0.7)
    assert generate.key(both) == "generate+cot+sc5@0.7"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (EvalOptions(mode="loglik", cot=True), "chain-of-thought and self-consistency need"),
        (EvalOptions(mode="cloze", samples=3, temperature=1.0), "need --mode generate"),
        (EvalOptions(mode="generate", samples=3), "samples need --temperature above 0"),
        (EvalOptions(data="web"), "--data must be one of"),
    ],
)
def test_settings_a_mode_cannot_score_are_refused(options, message):
    task = load_benchmarks(REPO)["medqa_4options"]
    with pytest.raises(Refused, match=message):
        options.check(task)
    EvalOptions(mode="generate", cot=True, samples=3, temperature=0.5).check(task)


def test_an_unknown_engine_lists_the_known_ones():
    task = load_benchmarks(REPO)["pubmedqa"]
    with pytest.raises(UnknownName, match="unknown engine 'tgi'; known: hf, openai, vllm"):
        EvalOptions(engine="tgi").check(task)


def test_spec_names_are_checked_against_the_registries():
    task = load_benchmarks(REPO)["medqa_4options"].model_dump()
    for field, value, message in [
        (
            "kind",
            "essay",
            "unknown task kind 'essay'; known: classification, extractive_qa, multilabel, "
            "multiple_choice, ner, nli, relation, summarization",
        ),
        ("source_format", "medqa_9options", "unknown source format 'medqa_9options'"),
        ("scoring_modes", ["loglik", "essay"], "multiple_choice is scored in loglik or cloze"),
    ]:
        with pytest.raises(ValueError, match=message):
            BenchmarkTask.model_validate(task | {field: value})


def test_the_schema_lists_what_is_registered_when_it_is_made():
    def enum(field: str) -> list[str]:
        schema = BenchmarkTask.model_json_schema()["properties"][field]
        return schema.get("enum") or schema["items"]["enum"]

    assert enum("kind") == list(TASK_KINDS.names())
    assert enum("kind")[:2] == ["multiple_choice", "summarization"]
    assert enum("scoring_modes") == ["loglik", "cloze", "generate"]
    with SOURCE_FORMATS.temporarily("my_format", lambda record: None):
        assert enum("source_format")[-1] == "my_format"
    assert "my_format" not in enum("source_format")


# ---------------------------------------------------------------- load_engine's declarations


class Recorder(Engine):
    """Records what load_engine hands it; loads nothing."""

    name = "recorder"
    backend = ("pytest",)
    options = ("batch_size",)
    variant_fields = ("tensor_parallel",)
    applies_adapters = True

    def __init__(self, location, **settings):
        self.location, self.settings = location, settings

    def loglikelihood(self, requests, progress=None):
        raise NotImplementedError

    def generate(self, prompts, sampling, items=()):
        raise NotImplementedError


ADAPTER = """\
  - name: tiny-lora
    params_b: 0.000213
    source: {kind: adapter, path: adapters/tiny-lora, base: tiny-medical-base}
    context_length: 2048
    dtype: float32
    parent: tiny-medical-base
    tensor_parallel: 2
"""


@pytest.fixture
def adapter_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    copy_models(root)
    card = root / "models/tiny-medical.yaml"
    card.write_text(card.read_text() + ADAPTER)
    (root / ".medarena/models/tiny-medical-base").mkdir(parents=True)  # "built"
    return root


def test_load_engine_passes_the_settings_an_engine_declares(adapter_workspace):
    registry = load_registry(adapter_workspace)
    with ENGINES.temporarily("recorder", Recorder):
        engine = load_engine("recorder", registry, registry.variant("tiny-lora"), batch_size=4)
    assert engine.location == str(adapter_workspace / ".medarena/models/tiny-medical-base")
    assert engine.settings == {
        "revision": None,
        "dtype": "float32",
        "max_length": 2048,
        "tensor_parallel": 2,
        "adapter": str(adapter_workspace / "adapters/tiny-lora"),
        "batch_size": 4,
    }


def test_load_engine_refuses_what_an_engine_does_not_declare(adapter_workspace):
    registry = load_registry(adapter_workspace)
    adapter = registry.variant("tiny-lora")
    with pytest.raises(Refused, match="tiny-lora is a LoRA adapter, which the vllm engine"):
        load_engine("vllm", registry, adapter)  # refused before vLLM is imported or started

    class NoAdapters(Recorder):
        applies_adapters = False

    with ENGINES.temporarily("plain", NoAdapters):
        with pytest.raises(Refused, match="which the plain engine does not apply"):
            load_engine("plain", registry, adapter)
        with pytest.raises(Refused, match="takes no option device; it takes: batch_size"):
            load_engine("plain", registry, registry.variant("tiny-medical-base"), device="cpu")
    (adapter_workspace / ".medarena/models/tiny-medical-base").rmdir()
    unbuilt = "run `medarena tiny build --variant tiny-medical-base`"
    with ENGINES.temporarily("recorder", Recorder), pytest.raises(Refused, match=unbuilt):
        load_engine("recorder", registry, registry.variant("tiny-medical-base"))


def test_engine_version_comes_from_the_declared_backend():
    from importlib.metadata import version

    assert engine_version("hf") == f"transformers {version('transformers')}"

    class Missing(Recorder):
        backend = ("no-such-backend", "nor-this-one")

    missing = "needs no-such-backend, which is not installed"
    with ENGINES.temporarily("missing", Missing), pytest.raises(EngineError, match=missing):
        engine_version("missing")
