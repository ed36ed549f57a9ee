"""The registered extraction rules on hand-checked outputs: each follows its project's code
(medarena.evaluate.extractors cites the files), so the same text can parse differently."""

import pytest

from medarena.evaluate.extractors import EXTRACTORS

LETTERS = ("A", "B", "C", "D")
OPTIONS = ("Sublingual nitroglycerin", "Intravenous furosemide", "Normal saline", "Metoprolol")
YES_NO_MAYBE = ("yes", "no", "maybe")

# text -> the index each rule gives (None: a parse failure)
LETTER_CASES = [
    ("The answer is (C).", {"medarena": 2, "lm-eval": 2, "me-llama": 2, "meditron": None}),
    ("B) because of the rhythm", {"medarena": 1, "lm-eval": None, "me-llama": 1, "meditron": 1}),
    ("Answer: D", {"medarena": 3, "lm-eval": 3, "me-llama": 0, "meditron": 0}),
    ("Give normal saline now.", {"medarena": 2, "lm-eval": 2, "me-llama": None, "meditron": None}),
    ("I am not sure", {"medarena": None, "lm-eval": None, "me-llama": None, "meditron": None}),
    # lm-eval takes the first statement, medarena the last
    (
        "The answer is A. No wait, the answer is B.",
        {"medarena": 1, "lm-eval": 0, "me-llama": 0, "meditron": None},
    ),
]
WORD_CASES = [
    ("yes", {"medarena": 0, "lm-eval": 0, "me-llama": 0, "meditron": 0}),
    ("Yes, because the trial", {"medarena": 0, "lm-eval": 0, "me-llama": 0, "meditron": None}),
    # Meditron's list of answers has no "maybe"; lm-eval's option-text fallback and Me-LLaMA's
    # matching are substring searches: both find "no" inside "not known"
    ("maybe", {"medarena": 2, "lm-eval": 2, "me-llama": 2, "meditron": None}),
    ("It is not known", {"medarena": None, "lm-eval": 1, "me-llama": 1, "meditron": None}),
]


@pytest.mark.parametrize(("text", "expected"), LETTER_CASES)
def test_letter_choices(text: str, expected: dict[str, int | None]) -> None:
    parsed = {name: EXTRACTORS.get(name).parse(text, LETTERS, OPTIONS, False) for name in expected}
    assert parsed == expected


@pytest.mark.parametrize(("text", "expected"), WORD_CASES)
def test_word_choices(text: str, expected: dict[str, int | None]) -> None:
    parsed = {
        name: EXTRACTORS.get(name).parse(text, YES_NO_MAYBE, YES_NO_MAYBE, False)
        for name in expected
    }
    assert parsed == expected


def test_meditron_reads_the_word_after_the_last_answer_is_under_cot() -> None:
    parse = EXTRACTORS.get("meditron").parse
    text = "The drug lowers preload. Therefore, the answer is C."
    assert parse(text, LETTERS, OPTIONS, True) == 2
    assert parse(text, LETTERS, OPTIONS, False) is None  # first character: "t"


def test_every_rule_names_its_source_and_a_version() -> None:
    assert set(EXTRACTORS) >= {"medarena", "lm-eval", "me-llama", "meditron"}
    versions = [EXTRACTORS.get(name).version for name in EXTRACTORS]
    assert len(set(versions)) == len(versions)
    assert EXTRACTORS.get("medarena").version == "medarena-1"  # the key of runs stored before
    assert all(":" in EXTRACTORS.get(name).source for name in EXTRACTORS)
