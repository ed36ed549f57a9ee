"""Answer extraction from generated text.

Tried in order, the first that finds exactly one answer wins:
1. an explicit statement, the last one in the text: "The answer is (B)", "answer: b", "Answer: yes";
2. a choice at the very start: "B.", "(C)", "D) ...", "yes, because ...";
3. the text of exactly one option appears ("... so metformin is the drug of choice");
4. exactly one of the choice labels appears as a word anywhere.
Nothing found is a parse failure: scored wrong and counted in the failure rate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# In every run key (evaluate/identity.py): bump it whenever a change to the rules below can
# parse a stored output differently, so runs scored with the old rules are not reused.
EXTRACTION_RULE = "medarena-1"

_ANSWER_IS = r"(?i:answer\s*(?:is|would be|:))\s*:?\s*(?i:option\s*)?"
_END = r"(?=\s*$|\s*[\)\]\.,;:!?])"  # the label closes the sentence: "answer: b." / "(b)"


def _alternatives(choices: Sequence[str]) -> str:
    return "|".join(re.escape(choice) for choice in sorted(choices, key=len, reverse=True))


def _index(choices: Sequence[str], found: str) -> int:
    lowered = [choice.lower() for choice in choices]
    return lowered.index(found.lower())


def _statements(text: str, choices: Sequence[str], letters: bool) -> list[str]:
    labels = _alternatives(choices)
    if not letters:
        pattern = _ANSWER_IS + r"[\(\[]?\s*(" + labels + r")\b"
        return re.findall(pattern, text, flags=re.IGNORECASE)
    # letters as written ("is B because"), or lower-case only where nothing follows the letter,
    # so that "the answer is a combination" is not read as option A
    exact = _ANSWER_IS + r"[\(\[]?\s*(" + labels + r")(?![\w])"
    lower = _ANSWER_IS + r"[\(\[]?\s*(" + labels.lower() + r")" + _END
    found = [(m.start(), m.group(1)) for m in re.finditer(exact, text)]
    found += [(m.start(), m.group(1)) for m in re.finditer(lower, text)]
    return [label for _, label in sorted(found)]


def _leading(text: str, choices: Sequence[str], letters: bool) -> str | None:
    labels = _alternatives(choices)
    if letters:  # "B.", "(C)", "D) ...", a bare "A"; not "A reasonable choice ..."
        match = re.match(r"\s*[\(\[]?\s*(" + labels + r")\s*(?:[\)\]\.:,]|$)", text)
    else:  # "yes, because", "No."
        match = re.match(r"\s*(" + labels + r")\b", text, flags=re.IGNORECASE)
    return match.group(1) if match else None


def _named(text: str, options: Sequence[str], case_sensitive: bool) -> set[int]:
    flags = 0 if case_sensitive else re.IGNORECASE
    return {
        i
        for i, option in enumerate(options)
        if option.strip() and re.search(r"(?<!\w)" + re.escape(option) + r"(?!\w)", text, flags)
    }


def extract_choice(
    text: str, choices: Sequence[str], option_texts: Sequence[str] = ()
) -> int | None:
    """Index of the chosen answer in `choices`, or None when the text names none (or several)."""
    letters = all(len(choice) == 1 for choice in choices)
    statements = _statements(text, choices, letters)
    if statements:
        return _index(choices, statements[-1])
    leading = _leading(text, choices, letters)
    if leading is not None:
        return _index(choices, leading)
    named = _named(text, [o for o in option_texts if len(o) > 1], case_sensitive=False)
    if len(named) == 1 and len(option_texts) == len(choices):
        return named.pop()
    words = _named(text, choices, case_sensitive=letters)
    if len(words) == 1:
        return words.pop()
    return None


def majority_vote(votes: Sequence[int | None]) -> int | None:
    """Self-consistency: the most frequent parsed answer; ties go to the earliest sample that
    gave one of the tied answers; all-failed is a failure."""
    counted = [vote for vote in votes if vote is not None]
    if not counted:
        return None
    best = max(counted.count(vote) for vote in counted)
    return next(vote for vote in counted if counted.count(vote) == best)
