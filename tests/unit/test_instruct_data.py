"""Instruction data: readers, role mapping, the answer-only loss mask, recipe checks."""

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from medarena.data.records import Record
from medarena.errors import ProblemsError, Refused
from medarena.evaluate.extract import extract_choice
from medarena.evaluate.formats import Item
from medarena.instruct.data import (
    INSTRUCTION_FORMATS,
    Conversation,
    InstructSource,
    Messages,
    answer_text,
    from_records,
    read_source,
    to_template_roles,
)
from medarena.instruct.encode import IGNORE, encode, reply_spans
from medarena.instruct.prepare import check_targets, count_examples
from medarena.instruct.recipe import InstructRecipe, LoraSettings, load_recipes
from medarena.registry import load_registry
from tests.conftest import REPO

REGISTRY = load_registry(REPO)
CHATML = REGISTRY.chat_template("chatml")
MEDITRON = REGISTRY.chat_template("meditron-chatml")


def _write(root: Path, name: str, rows: list) -> dict:
    path = root / "instruct" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"path": name}


def _source(**fields) -> InstructSource:
    return InstructSource.model_validate({"name": "s", **fields})


def test_alpaca_joins_instruction_and_input(tmp_path):
    data = _write(
        tmp_path,
        "a.jsonl",
        [
            {"instruction": "Name the drug.", "input": "Type 2 diabetes", "output": "Metformin."},
            {"instruction": "Define sepsis.", "input": "", "output": "Organ dysfunction."},
        ],
    )
    first, second = read_source(_source(format="alpaca", data=data), tmp_path)
    assert first.messages == (
        {"role": "user", "content": "Name the drug.\n\nType 2 diabetes"},
        {"role": "assistant", "content": "Metformin."},
    )
    assert second.messages[0]["content"] == "Define sepsis."
    assert first.origin.endswith("a.jsonl:1")


def test_chat_reads_openai_messages_and_sharegpt(tmp_path):
    data = _write(
        tmp_path,
        "c.jsonl",
        [
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
            {
                "conversations": [
                    {"from": "system", "value": "S"},
                    {"from": "human", "value": "Q2"},
                    {"from": "gpt", "value": "A2"},
                ]
            },
        ],
    )
    openai, sharegpt = read_source(_source(format="chat", data=data), tmp_path)
    assert [m["role"] for m in openai.messages] == ["user", "assistant"]
    assert [m["role"] for m in sharegpt.messages] == ["system", "user", "assistant"]
    assert sharegpt.messages[2]["content"] == "A2"


def test_bad_records_are_all_reported_with_file_line_and_field(tmp_path):
    data = _write(
        tmp_path,
        "bad.jsonl",
        [
            {"instruction": "ok", "output": "fine"},
            {"instruction": "no output"},
            {"messages": [{"role": "user", "content": "only a question"}]},
        ],
    )
    with pytest.raises(ProblemsError) as alpaca:
        read_source(_source(format="alpaca", data=data), tmp_path)
    assert "bad.jsonl:2" in str(alpaca.value) and "output" in str(alpaca.value)
    assert len(alpaca.value.problems) == 2  # line 3 has no instruction either
    with pytest.raises(ProblemsError) as chat:
        read_source(_source(format="chat", data=data), tmp_path)
    assert "bad.jsonl:3" in str(chat.value) and "no assistant turn" in str(chat.value)


def test_an_empty_file_is_refused(tmp_path):
    data = _write(tmp_path, "empty.jsonl", [])
    with pytest.raises(ProblemsError, match="no items"):
        read_source(_source(format="alpaca", data=data), tmp_path)


def test_benchmark_train_split_becomes_the_evaluation_prompt_and_an_extractable_answer():
    conversations = read_source(_source(format="benchmark", task="medqa_4options"), REPO)
    assert len(conversations) == 8  # benchmarks/samples/medqa_4options/train.jsonl
    prompt, answer = (m["content"] for m in conversations[0].messages)
    assert prompt.startswith("Answer the following multiple-choice question")
    assert prompt.endswith("Answer:") and "\nA. " in prompt
    record = json.loads((REPO / "benchmarks/samples/medqa_4options/train.jsonl").open().readline())
    assert answer == f"The answer is ({record['answer_idx']})."
    labels = ("A", "B", "C", "D")
    assert extract_choice(answer, labels, ("", "", "", "")) == labels.index(record["answer_idx"])


def test_answers_use_the_explanation_for_chain_of_thought():
    item = Item("1", {}, ("A", "B"), ("x", "y"), gold=1, explanation="Because y.")
    assert answer_text(item, chain_of_thought=True) == "Because y.\nThe answer is (B)."
    assert answer_text(item, chain_of_thought=False) == "The answer is (B)."
    words = Item("2", {}, ("yes", "no", "maybe"), ("yes", "no", "maybe"), gold=2)
    assert answer_text(words, chain_of_thought=False) == "The answer is maybe."


def test_chain_of_thought_reads_the_explanations_and_is_refused_without_them():
    medmcqa = read_source(_source(format="benchmark", task="medmcqa", chain_of_thought=True), REPO)
    record = json.loads((REPO / "benchmarks/samples/medmcqa/train.jsonl").open().readline())
    reasoning, statement = medmcqa[0].messages[1]["content"].rsplit("\n", 1)
    assert reasoning == record["exp"].strip()
    assert statement == f"The answer is ({'ABCD'[record['cop']]})."
    # MedQA carries no explanations: asking for chain of thought is refused, not dropped
    medqa = _source(name="medqa", format="benchmark", task="medqa_5options", chain_of_thought=True)
    refused = r"'medqa': chain_of_thought is true, but 8 of 8 medqa_5options train items"
    with pytest.raises(Refused, match=refused):
        read_source(medqa, REPO)
    recipe = InstructRecipe.model_validate({**yaml_recipe_fields(), "data": [medqa]})
    unusable = "instruction data of recipe 'tiny-demo' is unusable"
    with pytest.raises(ProblemsError, match=unusable) as caught:
        count_examples(recipe, MEDITRON, REPO)
    [problem] = caught.value.problems
    assert problem.file == "instruct/tiny-demo.yaml: data[medqa]"
    assert "set chain_of_thought: false" in problem.message
    with pytest.raises(ValidationError, match="`chain_of_thought` is for benchmark sources"):
        _source(format="alpaca", data={"path": "a.jsonl"}, chain_of_thought=True)


def test_roles_map_onto_the_template_and_a_missing_role_is_refused():
    conversation = Conversation(
        ({"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}), "f.jsonl:4"
    )
    # Meditron's fine-tuning data has no system turn, so its template adds none by default
    mapped = to_template_roles(conversation, MEDITRON, None)
    assert MEDITRON.default_system is None
    assert [m["role"] for m in mapped] == ["question", "answer"]
    mapped = to_template_roles(conversation, MEDITRON, "Be brief.")
    assert [m["role"] for m in mapped] == ["system", "question", "answer"]
    assert mapped[0]["content"] == "Be brief."
    with_default = MEDITRON.model_copy(update={"default_system": "Answer."})
    assert to_template_roles(conversation, with_default, None)[0]["content"] == "Answer."
    no_system = MEDITRON.model_copy(update={"roles": ["question", "answer"]})
    with_system = Conversation(({"role": "system", "content": "S"}, *conversation.messages), "x:9")
    with pytest.raises(Refused, match=r"x:9: a 'system' message.*\['question', 'answer'\]"):
        to_template_roles(with_system, no_system, None)


def test_loss_mask_covers_exactly_the_replies_token_by_token(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "You are careful."},
        {"role": "question", "content": "First-line drug for type 2 diabetes?"},
        {"role": "answer", "content": "Metformin."},
        {"role": "question", "content": "And for anaphylaxis?"},
        {"role": "answer", "content": "Epinephrine."},
    ]
    encoded = encode(tokenizer, MEDITRON, messages, max_length=512)
    assert len(encoded.labels) == len(encoded.input_ids)
    runs, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        if label == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token  # labels are the tokens themselves (the model shifts them)
            current.append(token)
    if current:
        runs.append(current)
    replies = [tokenizer.decode(run) for run in runs]
    assert replies == ["Metformin.<|im_end|>\n", "Epinephrine.<|im_end|>\n"]
    masked = tokenizer.decode(
        [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label == IGNORE]
    )
    assert "You are careful." in masked and "<|im_start|>answer\n" in masked
    assert "Metformin" not in masked
    cut = encode(tokenizer, MEDITRON, messages, max_length=10)
    assert cut.truncated and len(cut.input_ids) == 10 and cut.answer_tokens == 0


def test_lora_target_modules_must_exist_and_rank_must_be_positive():
    layers = {
        "model.layers.0.self_attn.q_proj": (64, 64),
        "model.layers.0.mlp.down_proj": (128, 64),
        "lm_head": (64, 1024),
    }
    lora = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "gate"])
    with pytest.raises(ProblemsError) as error:
        check_targets(lora, layers, "instruct/x.yaml")
    assert "['gate'] match no linear layer" in str(error.value)
    assert "['down_proj', 'lm_head', 'q_proj']" in str(error.value)
    all_linear = check_targets(LoraSettings(r=4, alpha=8), layers, "x")
    assert all_linear == ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"]
    with pytest.raises(ValidationError, match="greater than 0"):
        LoraSettings(r=0, alpha=8)


def test_recipe_schema_requires_data_for_each_format():
    with pytest.raises(ValidationError, match="names its `task`"):
        _source(format="benchmark")
    with pytest.raises(ValidationError, match="needs `data`"):
        _source(format="alpaca")
    recipe = InstructRecipe.model_validate(
        {
            "name": "r",
            "description": "d",
            "citation": "c",
            "data": [{"name": "m", "format": "benchmark", "task": "pubmedqa"}],
            "lora": {"r": 8, "alpha": 16},
            "sequence_length": 128,
            "global_batch_sequences": 4,
            "optimizer": {"lr": 1e-4},
        }
    )
    assert recipe.lora.target_modules == "all-linear" and recipe.deepspeed.enabled


def test_repeat_upsamples_a_source_in_the_prepared_examples(tmp_path, tiny_model_dir):
    import numpy as np
    from transformers import AutoTokenizer

    from medarena.instruct.prepare import prepare_data

    rows = [{"instruction": f"Question {i}?", "input": "", "output": "yes"} for i in range(3)]
    recipe = InstructRecipe.model_validate(
        {
            **yaml_recipe_fields(),
            "data": [
                {"name": "once", "format": "alpaca", "data": _write(tmp_path, "a.jsonl", rows)},
                {
                    "name": "thrice",
                    "format": "alpaca",
                    "data": _write(tmp_path, "b.jsonl", rows[:2]),
                    "repeat": 3,
                },
            ],
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = prepare_data(recipe, CHATML, tokenizer, tmp_path, tmp_path / "out", 64)
    assert data.per_source == {"once": 3, "thrice": 6} and data.examples == 9
    stored = np.load(tmp_path / "out" / "examples.npz")
    assert len(stored["offsets"]) == 9 + 1
    with pytest.raises(ValidationError, match="repeat"):
        _source(format="alpaca", data={"path": "a.jsonl"}, repeat=0)


def question_answer(record: Record) -> Messages:
    """A toy instruction-data format: records with `q` and `a`."""
    return (
        {"role": "user", "content": record.data["q"]},
        {"role": "assistant", "content": record.data["a"]},
    )


def test_a_registered_format_is_named_by_a_recipe_and_prepared(tmp_path, tiny_model_dir):
    import numpy as np
    from transformers import AutoTokenizer

    from medarena.instruct.prepare import prepare_data

    rows = [{"q": f"Dose {i}?", "a": f"{i} mg."} for i in range(4)]
    source = {"name": "qa", "format": "qa-pairs", "data": _write(tmp_path, "qa.jsonl", rows)}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with INSTRUCTION_FORMATS.temporarily("qa-pairs", from_records(question_answer)):
        recipe = InstructRecipe.model_validate({**yaml_recipe_fields(), "data": [source]})
        data = prepare_data(recipe, CHATML, tokenizer, tmp_path, tmp_path / "out", 64)
        [first, *_] = read_source(recipe.data[0], tmp_path)
    assert data.per_source == {"qa": 4} and data.examples == 4
    assert first.messages[1] == {"role": "assistant", "content": "0 mg."}
    assert first.origin.endswith("qa.jsonl:1")
    stored = np.load(tmp_path / "out" / "examples.npz")
    replies = stored["labels"][stored["labels"] != IGNORE]
    assert "3 mg." in tokenizer.decode(replies)  # the replies are what is learned
    with pytest.raises(ValidationError, match="unknown instruction-data format 'qa-pairs'"):
        _source(**source)  # gone with the `with` block


def test_an_unknown_format_is_located_and_the_known_ones_listed(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "instruct").mkdir()
    recipe = {**yaml_recipe_fields(), "name": "odd", "data": [{"name": "x", "format": "dolly"}]}
    (tmp_path / "instruct" / "odd.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    with pytest.raises(ProblemsError) as caught:
        load_recipes(tmp_path)
    [problem] = caught.value.problems
    line = yaml.safe_dump(recipe, sort_keys=False).splitlines().index("  format: dolly") + 1
    assert (problem.file, problem.line, problem.field) == (
        "instruct/odd.yaml",
        line,
        "data[0].format",
    )
    assert "unknown instruction-data format 'dolly'; known: alpaca, chat, benchmark" in str(problem)


def test_a_template_that_does_not_render_prefixes_is_refused():
    counting = CHATML.model_copy(update={"template": CHATML.template + "{{ messages | length }}"})
    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    with pytest.raises(Refused, match="'chatml' does not render a conversation's beginning"):
        reply_spans(counting, messages, bos="", eos="")


def yaml_recipe_fields() -> dict:
    """Everything but `data` of the bundled tiny-demo recipe."""
    fields = yaml.safe_load((REPO / "instruct" / "tiny-demo.yaml").read_text())
    return {key: value for key, value in fields.items() if key != "data"}
