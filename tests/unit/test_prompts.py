import hashlib
import json
import re
from functools import cache

import pytest

from medarena.errors import Refused
from medarena.evaluate.prompts import PromptSettings, build_prompt, draw_demos, render_item
from medarena.evaluate.runner import TaskData, load_task_data
from medarena.evaluate.spec import BenchmarkTask, load_benchmarks
from medarena.registry import load_registry
from tests.conftest import REPO


@cache
def task_and_data(name: str) -> tuple[BenchmarkTask, TaskData]:
    task = load_benchmarks(REPO)[name]
    return task, load_task_data(task, REPO, need_pool=True)


def chatml():
    return load_registry(REPO).chat_template("chatml")


def expected_medqa_text(item) -> str:
    """lm-evaluation-harness's medqa_4options doc_to_text."""
    letters = dict(item.fields["options"])
    options = "".join(f"{letter}. {letters[letter]}\n" for letter in "ABCD")
    return f"Question: {item.fields['question']}\n{options}Answer:"


def test_zero_shot_matches_lm_eval_medqa_text():
    task, data = task_and_data("medqa_4options")
    item = data.items[0]
    built = build_prompt(task, item, data.pool, PromptSettings("loglik"))
    a, b, c, d = item.option_texts
    assert built.context == (
        f"Question: {item.fields['question']}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
    )
    assert built.context == expected_medqa_text(item)
    assert built.context.startswith("Question: A 58-year-old man comes to the emergency")
    assert built.target_delimiter == " "
    assert built.demo_ids == ()


def test_k_shot_layout():
    task, data = task_and_data("medqa_4options")
    item = data.items[3]
    built = build_prompt(task, item, data.pool, PromptSettings("loglik", shots=3, seed=7))
    blocks = built.context.split("\n\n")
    assert len(blocks) == 4
    demos = {demo.id: demo for demo in data.pool}
    for block, demo_id in zip(blocks[:3], built.demo_ids, strict=True):
        demo = demos[demo_id]
        assert block == expected_medqa_text(demo) + " " + "ABCD"[demo.gold]
        assert re.search(r"\nAnswer: [ABCD]$", block)
    assert blocks[3] == expected_medqa_text(item)
    assert len(set(built.demo_ids)) == 3


def test_demos_do_not_depend_on_the_build_order():
    task, data = task_and_data("medqa_4options")
    settings = PromptSettings("loglik", shots=2, seed=3)
    forward = {
        p.item.id: p.demo_ids
        for p in (build_prompt(task, i, data.pool, settings) for i in data.items)
    }
    backward = {
        p.item.id: p.demo_ids
        for p in (build_prompt(task, i, data.pool, settings) for i in reversed(data.items))
    }
    assert forward == backward
    # not all items get the same demos
    assert len(set(forward.values())) > 1


def test_demos_change_with_the_seed():
    task, data = task_and_data("medqa_4options")
    item = data.items[0]
    first = build_prompt(task, item, data.pool, PromptSettings("loglik", shots=2, seed=0))
    again = build_prompt(task, item, data.pool, PromptSettings("loglik", shots=2, seed=0))
    assert first.demo_ids == again.demo_ids and first.context == again.context
    other = next(
        built
        for seed in range(1, 20)
        if (
            built := build_prompt(task, item, data.pool, PromptSettings("loglik", 2, seed))
        ).demo_ids
        != first.demo_ids
    )
    assert other.context != first.context
    assert other.hash != first.hash


def test_item_is_never_its_own_demo_when_the_pool_is_the_eval_split():
    _, data = task_and_data("medqa_4options")
    pool = data.items
    for seed in range(3):
        for item in pool:
            demos = draw_demos(item, pool, shots=len(pool) - 1, seed=seed)
            assert item not in demos
            assert len(demos) == len(pool) - 1
    # the whole eval split minus the item is the most there is
    with pytest.raises(Refused, match="needs 40 demonstrations"):
        draw_demos(pool[0], pool, shots=len(pool), seed=0)


def test_mmlu_demos_share_the_subject_and_the_preamble_names_it():
    task, data = task_and_data("mmlu_medical")
    item = next(i for i in data.items if i.subject == "clinical_knowledge")
    built = build_prompt(task, item, data.pool, PromptSettings("loglik", shots=3))
    preamble = (
        "The following are multiple choice questions (with answers) about clinical knowledge.\n\n"
    )
    assert built.context.startswith(preamble)
    assert built.context.count("The following are multiple choice") == 1
    demos = {demo.id: demo for demo in data.pool}
    assert [demos[d].subject for d in built.demo_ids] == ["clinical_knowledge"] * 3
    assert built.context.endswith(render_item(task, item))
    for item in data.items:
        built = build_prompt(task, item, data.pool, PromptSettings("loglik", shots=2, seed=5))
        assert {demos[d].subject for d in built.demo_ids} == {item.subject}


def test_more_shots_than_demos_is_an_error():
    task, data = task_and_data("medqa_4options")
    with pytest.raises(Refused, match="task medqa_4options: 9-shot needs 9 demonstrations"):
        build_prompt(task, data.items[0], data.pool, PromptSettings("loglik", shots=9))
    mmlu, mmlu_data = task_and_data("mmlu_medical")
    with pytest.raises(Refused, match=r"4-shot needs 4 demonstrations .* has 3 "):
        build_prompt(mmlu, mmlu_data.items[0], mmlu_data.pool, PromptSettings("loglik", shots=4))


def test_generate_mode_adds_the_instruction_and_the_cot_trigger():
    task, data = task_and_data("medqa_4options")
    item = data.items[0]
    built = build_prompt(task, item, data.pool, PromptSettings("generate", cot=True))
    assert built.context == (
        "Answer the following multiple-choice question with the letter of the correct option."
        "\n\n" + expected_medqa_text(item) + " Let's think step by step."
    )
    assert built.context.endswith("Answer: Let's think step by step.")
    plain = build_prompt(task, item, data.pool, PromptSettings("generate"))
    assert plain.context.endswith("\nAnswer:")


def test_loglik_mode_has_no_instruction():
    task, data = task_and_data("medqa_4options")
    built = build_prompt(task, data.items[0], data.pool, PromptSettings("loglik"))
    assert task.instruction not in built.context


def test_chat_template_wraps_the_prompt_and_drops_the_delimiter():
    task, data = task_and_data("medqa_4options")
    item = data.items[0]
    built = build_prompt(
        task, item, data.pool, PromptSettings("loglik", shots=1, chat_template=chatml())
    )
    assert built.context.startswith("<|im_start|>")
    assert built.context.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert expected_medqa_text(item) in built.context
    assert built.target_delimiter == ""
    assert len(built.demo_ids) == 1


def test_chat_template_with_cot():
    task, data = task_and_data("medqa_4options")
    item = data.items[0]
    built = build_prompt(
        task, item, data.pool, PromptSettings("generate", cot=True, chat_template=chatml())
    )
    assert built.context.startswith("<|im_start|>user\nAnswer the following multiple-choice")
    assert "Answer: Let's think step by step.<|im_end|>" in built.context


def test_fingerprint_tracks_what_shapes_the_prompt():
    task, _ = task_and_data("medqa_4options")
    base = PromptSettings("generate").fingerprint(task)
    assert len(base) == 64
    assert PromptSettings("generate").fingerprint(task) == base
    assert PromptSettings("generate", cot=True).fingerprint(task) != base
    assert PromptSettings("generate", chat_template=chatml()).fingerprint(task) != base
    assert PromptSettings("generate", system="Be brief.").fingerprint(task) != base
    # the instruction is only used in generate mode
    assert PromptSettings("loglik").fingerprint(task) != base
    # shots and seed are part of the run key, not of the template hash
    assert PromptSettings("generate", shots=3, seed=9).fingerprint(task) == base
    other_task = task.model_copy(update={"target_delimiter": ""})
    assert PromptSettings("generate").fingerprint(other_task) != base


def test_the_template_hash_of_each_mode_is_the_stored_one():
    """Stored runs are found by this hash: per mode, the same payload as when modes were
    strings (the cloze prompt for cloze, the instruction in generate mode only)."""
    task, _ = task_and_data("medqa_4options")
    for mode, prompt, instruction in [
        ("loglik", task.prompt, None),
        ("cloze", task.cloze_prompt, None),
        ("generate", task.prompt, task.instruction),
    ]:
        payload = {
            "preamble": task.preamble,
            "prompt": prompt,
            "target_delimiter": task.target_delimiter,
            "fewshot_delimiter": task.fewshot_delimiter,
            "instruction": instruction,
            "cot": None,
            "chat_template": None,
            "system": None,
            "truncation": "left",
        }
        expected = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        assert PromptSettings(mode).fingerprint(task) == expected, mode


def test_cloze_mode_asks_the_question_alone_and_demos_answer_with_option_text():
    task, data = task_and_data("medqa_4options")
    item = data.items[3]
    zero = build_prompt(task, item, data.pool, PromptSettings("cloze"))
    assert zero.context == f"Question: {item.fields['question']}\nAnswer:"
    assert all(text not in zero.context for text in item.option_texts)
    shots = build_prompt(task, item, data.pool, PromptSettings("cloze", shots=2, seed=1))
    blocks = shots.context.split("\n\n")
    demos = {demo.id: demo for demo in data.pool}
    for block, demo_id in zip(blocks[:2], shots.demo_ids, strict=True):
        demo = demos[demo_id]
        assert block == (
            f"Question: {demo.fields['question']}\nAnswer: {demo.option_texts[demo.gold]}"
        )
    # the cloze prompt is part of the run's template hash: a cloze run never resumes a loglik one
    assert PromptSettings("cloze").fingerprint(task) != PromptSettings("loglik").fingerprint(task)


def test_cloze_mode_needs_a_cloze_prompt():
    task, _ = task_and_data("medqa_4options")
    spec = task.model_dump() | {"cloze_prompt": None}
    with pytest.raises(ValueError, match="cloze_prompt"):
        BenchmarkTask.model_validate(spec)
