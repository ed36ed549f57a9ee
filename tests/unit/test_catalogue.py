"""The shipped catalogue: every YAML loads, and the facts the platform relies on are there."""

import re

import pytest

from medarena.errors import Refused
from medarena.registry import load_registry
from tests.conftest import REPO

REGISTRY = load_registry(REPO)


def test_catalogue_size():
    assert len(REGISTRY.families) >= 10
    for name in (
        "llama-2",
        "meditron",
        "me-llama",
        "pmc-llama",
        "med42",
        "mistral",
        "zephyr",
        "tiny-medical",
    ):
        assert name in REGISTRY.families


@pytest.mark.parametrize(
    ("variant", "context", "parent"),
    [
        ("meditron-7b", 2048, "llama-2-7b"),
        ("meditron-70b", 4096, "llama-2-70b"),
        ("me-llama-13b", 4096, "llama-2-13b"),
        ("me-llama-70b-chat", 4096, "me-llama-70b"),
        ("med42-70b", 4096, "llama-2-70b"),
        ("zephyr-7b-beta", 8192, "mistral-7b-v0.1"),
    ],
)
def test_lineage_and_context(variant: str, context: int, parent: str):
    entry = REGISTRY.variant(variant).variant
    assert entry.context_length == context
    assert entry.parent == parent


def test_meditron_quantized_variants():
    methods = {
        REGISTRY.variant(name).variant.quantization.method
        for name in ("meditron-7b-gptq", "meditron-7b-awq", "meditron-7b-gguf-q4km")
    }
    assert methods == {"gptq", "awq", "gguf"}
    gguf = REGISTRY.variant("meditron-7b-gguf-q4km").variant
    assert gguf.source.filename == "meditron-7b.Q4_K_M.gguf"
    assert all(
        REGISTRY.lineage(n)[1] == "meditron-7b" for n in ("meditron-7b-gptq", "meditron-7b-awq")
    )


def test_me_llama_is_credentialed_and_not_on_the_hub():
    for name in ("me-llama-13b", "me-llama-70b", "me-llama-13b-chat", "me-llama-70b-chat"):
        variant = REGISTRY.variant(name).variant
        assert variant.gated and variant.source.kind == "external"
        with pytest.raises(Refused, match="physionet"):
            REGISTRY.weights_location(variant)


def test_instruction_tuned_variants_have_known_templates():
    for entry in REGISTRY.variants.values():
        # behind a chat API the server applies the model's own template
        if entry.variant.instruction_tuned and entry.variant.source.kind != "api":
            assert entry.variant.chat_template in REGISTRY.chat_templates


def test_seventy_b_models_declare_tensor_parallelism():
    for entry in REGISTRY.variants.values():
        if (entry.variant.params_b or 0) > 60:  # None: an API model of undisclosed size
            assert entry.variant.tensor_parallel >= 4, entry.variant.name


def test_readme_states_the_registry_tensor_parallel_size():
    variants = [entry.variant for entry in REGISTRY.variants.values()]
    sizes = {variant.tensor_parallel for variant in variants if (variant.params_b or 0) > 60}
    readme = " ".join((REPO / "README.md").read_text().split())
    stated = re.search(r"tensor-parallel size \((\d+) for the 70B models\)", readme)
    assert stated is not None and {int(stated.group(1))} == sizes


def test_hardware_profiles():
    h100, a100 = (
        REGISTRY.hardware_profile("h100-80gb-sxm"),
        REGISTRY.hardware_profile("a100-80gb-sxm"),
    )
    assert (h100.gpus_per_node, h100.gpu_memory_gb, h100.bf16_tflops) == (8, 80, 989.4)
    assert (a100.gpus_per_node, a100.gpu_memory_gb, a100.bf16_tflops) == (8, 80, 312)


def test_published_results_cite_their_source():
    assert len(REGISTRY.references) >= 3
    for key, reference in REGISTRY.references.items():
        assert reference.url.startswith("https://"), key
        assert reference.source
        for result in reference.results:
            assert 0 <= result.value <= 1, (key, result)  # fractions, not percentages
    meditron = REGISTRY.references["meditron-7b-card"]
    by_cell = {(r.variant, r.task): r.value for r in meditron.results}
    assert by_cell[("meditron-7b", "pubmedqa")] == 0.744
    assert by_cell[("llama-2-7b", "medqa_4options")] == 0.496


def test_meditron_70b_leaderboard_numbers_are_under_the_openmedlb_protocol():
    leaderboard = REGISTRY.references["openmedlb-results"]
    by_task = {r.task: r for r in leaderboard.results}
    assert by_task["medqa_4options"].value == 0.571 and by_task["pubmedqa"].value == 0.766
    assert {r.protocol for r in leaderboard.results} == {"openmedlb"}
    assert {r.shots for r in leaderboard.results} == {0}  # the leaderboard's NUM_FEWSHOT
    # per-subject MMLU numbers say why they map onto no benchmark spec here
    subjects = [r for r in leaderboard.results if r.task.startswith("mmlu_")]
    assert len(subjects) == 6 and all(r.unmapped for r in subjects)


def test_meditron_7b_mmlu_medical_card_and_paper_numbers_are_kept_apart():
    """The card's 54.2 is the MedMCQA fine-tune; the paper's in-context 42.3 is the base model
    (the EPFL team's reply in the card's discussion #8): both stay, each under its protocol."""
    card = {(r.variant, r.task): r for r in REGISTRY.references["meditron-7b-card"].results}[
        ("meditron-7b", "mmlu_medical")
    ]
    (incontext,) = REGISTRY.references["meditron-7b-incontext"].results
    assert (card.value, card.protocol, card.other_protocol.startswith("fine-tuned")) == (
        0.542,
        None,
        True,
    )
    assert (incontext.value, incontext.protocol, incontext.shots) == (
        0.423,
        "meditron-incontext",
        3,
    )


def test_the_api_models_the_seeds_compare_with():
    """GPT-3.5 and GPT-4 (Meditron's and Me-LLaMA's closed comparisons) behind OpenAI's API:
    the key's variable, never a key; sizes undisclosed; prices with their page and date."""
    expected = {  # OpenAI's model pages: context window, $ per million tokens in / out
        "gpt-3.5-turbo": (16385, 0.50, 1.50),
        "gpt-4": (8192, 30.0, 60.0),
    }
    for name, (context, price_in, price_out) in expected.items():
        variant = REGISTRY.variant(name).variant
        source = variant.source
        assert (source.kind, source.base_url, source.model) == (
            "api",
            "https://api.openai.com/v1",
            name,
        )
        assert source.endpoint == "chat" and not source.prompt_logprobs
        assert source.api_key_env == "OPENAI_API_KEY" and variant.params_b is None
        assert variant.context_length == context
        prices = source.prices
        assert (prices.input_per_million, prices.output_per_million) == (price_in, price_out)
        assert prices.source == f"https://developers.openai.com/api/docs/models/{name}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prices.date)
