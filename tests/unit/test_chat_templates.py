"""Every shipped chat template renders the documented format exactly, and rendering a
conversation one turn at a time only ever appends (the property prompt masking relies on)."""

import pytest

from medarena.registry import load_registry
from tests.conftest import REPO

REGISTRY = load_registry(REPO)
SYSTEM, Q1, A1, Q2 = "Be brief.", "Dose?", "500 mg.", "Route?"


def conversation(template_name: str) -> list[dict[str, str]]:
    template = REGISTRY.chat_template(template_name)
    user, assistant = [r for r in template.roles if r not in ("system",)][:2]
    if template_name == "meditron-chatml":
        user, assistant = "question", "answer"
    turns = [(user, Q1), (assistant, A1), (user, Q2)]
    if "system" in template.roles:
        turns.insert(0, ("system", SYSTEM))
    return [{"role": role, "content": content} for role, content in turns]


EXPECTED = {
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nDose?<|im_end|>\n"
    "<|im_start|>assistant\n500 mg.<|im_end|>\n<|im_start|>user\nRoute?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "meditron-chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>question\nDose?"
    "<|im_end|>\n<|im_start|>answer\n500 mg.<|im_end|>\n<|im_start|>question\nRoute?<|im_end|>\n"
    "<|im_start|>answer\n",
    "llama-2": "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nDose? [/INST] 500 mg. </s>"
    "<s>[INST] Route? [/INST]",
    "mistral-instruct": "<s>[INST] Dose? [/INST]500 mg.</s>[INST] Route? [/INST]",
    "me-llama": "Be brief.\n\nHuman: \nDose?\n\nAssistant: \n500 mg.</s>\n\nHuman: \nRoute?\n\n"
    "Assistant: \n",
    "zephyr": "<|system|>\nBe brief.</s>\n<|user|>\nDose?</s>\n<|assistant|>\n500 mg.</s>\n"
    "<|user|>\nRoute?</s>\n<|assistant|>\n",
    "med42": "<|system|>: Be brief.\n<|prompter|>:Dose?\n<|assistant|>:500 mg.</s>\n"
    "<|prompter|>:Route?\n<|assistant|>:",
    "alpaca": "Be brief.\n\n### Instruction:\nDose?\n\n### Response:\n500 mg.</s>\n\n"
    "### Instruction:\nRoute?\n\n### Response:\n",
}


def test_every_shipped_template_has_an_expectation():
    assert set(EXPECTED) == set(REGISTRY.chat_templates)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_renders_documented_format(name: str):
    rendered = REGISTRY.chat_template(name).render(
        conversation(name), add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )
    assert rendered == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_prompt_is_a_prefix_of_prompt_plus_answer(name: str):
    template = REGISTRY.chat_template(name)
    messages = conversation(name)[:-1]  # ends with the assistant's answer
    prompt = template.render(
        messages[:-1], add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )
    full = template.render(messages, bos_token="<s>", eos_token="</s>")
    assert full.startswith(prompt)
    assert A1 in full[len(prompt) :]


def test_meditron_template_adds_chatml_tokens():
    template = REGISTRY.chat_template("meditron-chatml")
    assert template.added_special_tokens == ["<|im_start|>", "<|im_end|>"]
    assert template.roles == ["system", "question", "answer"]
