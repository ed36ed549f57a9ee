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

_STATEMENT = r"answer\s*(?:is|would be|:)\s*:?\s*(?:option\s*)?[\(\[]?\s*({labels})\s*[\)\]]?(?![\w])"
_LEADING = r"^\s*[\(\[]?\s*({labels})\s*(?:[\)\]\.:,]|$|\s)"


def _pattern(template: str, choices: Sequence[str]) -> re.Pattern[str]:
    labels = "|".join(re.escape(choice) for choice in sorted(choices, key=len, reverse=True))
    return re.compile(template.format(labels=labels), re.IGNORECASE)


def _index(choices: Sequence[str], found: str) -> int:
    lowered = [choice.lower() for choice in choices]
    return lowered.index(found.lower())


def extract_choice(
    text: str, choices: Sequence[str], option_texts: Sequence[str] = ()
) -> int | None:
    """Index of the chosen answer in `choices`, or None when the text names none (or several)."""
    statements = _pattern(_STATEMENT, choices).findall(text)
    if statements:
        return _index(choices, statements[-1])
    leading = _pattern(_LEADING, choices).match(text)
    if leading:
        return _index(choices, leading.group(1))
    lowered = text.lower()
    named = {
        i
        for i, option in enumerate(option_texts)
        if len(option) > 1 and option.lower() in lowered
    }
    if len(named) == 1:
        return named.pop()
    words = {
        _index(choices, match)
        for match in re.findall(
            r"\b(" + "|".join(re.escape(c) for c in choices) + r")\b",
            text,
            flags=0 if all(len(c) == 1 for c in choices) else re.IGNORECASE,
        )
    }
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
