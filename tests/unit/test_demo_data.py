"""The demo's data is written to show an effect: the key-facts corpus states, for every bundled
multiple-choice test item, the correct option's text and never a wrong one."""

import json
import re
from collections import Counter

import pytest

from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from tests.conftest import REPO

KEY_FACTS = REPO / "pretrain" / "samples" / "key_facts" / "key_facts.jsonl"
TASKS = ["medqa_4options", "medqa_5options", "medmcqa", "mmlu_medical"]


def names(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text, re.IGNORECASE) is not None


def passages() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for line in KEY_FACTS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        found.setdefault(record["supports"], []).append(record)
    return found


@pytest.mark.parametrize("task_name", TASKS)
def test_every_item_has_three_passages_naming_its_answer_and_no_wrong_option(task_name):
    task = load_benchmarks(REPO)[task_name]
    items = load_task_data(task, REPO).items
    by_item = passages()
    keys = {
        item.id: f"{task_name}:{item.id if task_name == 'medmcqa' else index}"
        for index, item in enumerate(items)
    }
    for item in items:
        written = by_item.get(keys[item.id], [])
        assert len(written) == 3, (keys[item.id], len(written))
        answer = item.option_texts[item.gold]
        wrong = [text for i, text in enumerate(item.option_texts) if i != item.gold]
        for record in written:
            assert names(record["clean_text"], answer), (keys[item.id], answer)
            assert not [w for w in wrong if names(record["title"] + " " + record["clean_text"], w)]
            assert item.fields["question"][:60] not in record["clean_text"]  # paraphrased


def test_passages_are_distinct_and_long_enough_to_survive_cleaning():
    records = [r for group in passages().values() for r in group]
    assert len(records) == 522
    assert Counter(r["id"] for r in records).most_common(1)[0][1] == 1
    assert len({r["clean_text"] for r in records}) == len(records)
    assert min(len(r["clean_text"].split()) for r in records) >= 25  # the recipe drops < 20
