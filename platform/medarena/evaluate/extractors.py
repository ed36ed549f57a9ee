"""Answer extraction rules, registered by name: how a generated text becomes a chosen option.

Each rule is a function (text, choices, option_texts) -> index in `choices` or None, plus a
version that enters the run key (a change that can parse a stored output differently bumps it).
`medarena` is today's rule (medarena.evaluate.extract); the others follow the published
evaluation code of the projects medarena compares with, so a stored output can be parsed again
the way they would have parsed it (`medarena rescore`):

- `lm-eval`: lm-evaluation-harness's `multi_choice_regex` filter
  (EleutherAI/lm-evaluation-harness, lm_eval/filters/extraction.py, MultiChoiceRegexFilter):
  the first match of a task regex; else the first option text found (case and punctuation
  ignored); else the first ":<letter>". The task regex differs per task in lm-eval; medarena uses
  "answer is (X)" with optional parentheses (medarena's choice, the pattern of its CoT tasks).
- `me-llama`: Me-LLaMA's string matching (BIDS-Xu-Lab/Me-LLaMA, src/tasks/vital_measure.py,
  Classification.process_results): the first choice, in the dataset's order, that occurs as a
  substring of the stripped output; lower-cased for word choices (their PubMedQA), as written for
  letters (their MedQA / MedMCQA set LOWER_CASE = False).
- `meditron`: Meditron's `eval` (epfLLM/meditron, evaluation/evaluate.py): keep the text after
  "\\n##" if any; few-shot: the first paragraph; non-alphanumerics become spaces; CoT: the first
  word after the last "answer is"; multiple choice: the first character; it counts only when it
  is one of the choices (their list: a-e, yes, no).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medarena.evaluate.extract import EXTRACTION_RULE, extract_choice
from medarena.extensions import ExtensionRegistry

# (text, choices, option_texts, cot) -> index in choices, or None
Parse = Callable[[str, Sequence[str], Sequence[str], bool], "int | None"]
DEFAULT_EXTRACTOR = "medarena"


@dataclass(frozen=True)
class Extractor:
    """A named rule; `version` is what run keys record (bump it when parses can change)."""

    name: str
    version: str
    parse: Parse
    source: str  # the file it follows


EXTRACTORS: ExtensionRegistry[Extractor] = ExtensionRegistry("extraction rule")


def _index(choices: Sequence[str], found: str) -> int | None:
    lowered = [choice.lower() for choice in choices]
    return lowered.index(found.lower()) if found.lower() in lowered else None


_MEDITRON_ANSWERS = frozenset({"a", "b", "c", "d", "e", "yes", "no"})
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_LM_EVAL_ANSWER = re.compile(r"answer is \(?([A-Z])\)?")


def lm_eval_regex(
    text: str, choices: Sequence[str], option_texts: Sequence[str], cot: bool = False
) -> int | None:
    """lm-eval's multi_choice_regex: task regex, then option text, then ':<letter>'."""
    match = _LM_EVAL_ANSWER.search(text)
    if match:
        return _index(choices, match.group(1))
    if option_texts:  # lm-eval's `choices` are the option texts, each mapped to its letter
        cleaned = [option.strip().lower().translate(_PUNCTUATION) for option in option_texts]
        alternatives = "|".join(re.escape(option) for option in cleaned if option)
        found = re.search(alternatives, text.lower().translate(_PUNCTUATION))
        if alternatives and found:
            return cleaned.index(found.group(0))
    letters = "|".join(re.escape(choice) for choice in choices if len(choice) == 1)
    found = re.search(rf":\s*({letters})", text) if letters else None
    return _index(choices, found.group(1)) if found else None


def me_llama_substring(
    text: str, choices: Sequence[str], option_texts: Sequence[str], cot: bool = False
) -> int | None:
    """Me-LLaMA's Classification: the first choice that is a substring of the output."""
    lower = not all(len(choice) == 1 for choice in choices)
    output = text.strip().lower() if lower else text.strip()
    for index, choice in enumerate(choices):
        if (choice.lower() if lower else choice) in output:
            return index
    return None


def meditron_first_token(
    text: str, choices: Sequence[str], option_texts: Sequence[str], cot: bool = False
) -> int | None:
    """Meditron's eval (their few-shot cut, the first paragraph, applied always: a zero-shot
    answer that runs on after a blank line is cut the same way)."""
    output = text.lower()
    if "\n##" in output:
        output = output.split("\n##")[1].split("\n")[0].strip()
    output = output.split("\n\n")[0].strip()
    output = re.sub(r"[^a-zA-Z0-9]", " ", output).strip()
    output = re.sub(" +", " ", output)
    if cot:
        words = output.split("answer is")[-1].split()
        output = words[0] if words else ""
    letters = all(len(choice) == 1 for choice in choices)
    output = output[:1] if letters else output.encode("ascii", "ignore").decode()
    return _index(choices, output) if output in _MEDITRON_ANSWERS else None


EXTRACTORS.register(
    DEFAULT_EXTRACTOR,
    Extractor(
        DEFAULT_EXTRACTOR,
        EXTRACTION_RULE,
        lambda text, choices, options, cot: extract_choice(text, choices, options),
        "medarena: platform/medarena/evaluate/extract.py",
    ),
)
EXTRACTORS.register(
    "lm-eval",
    Extractor(
        "lm-eval",
        "lm-eval-mcregex-1",
        lm_eval_regex,
        "EleutherAI/lm-evaluation-harness: lm_eval/filters/extraction.py",
    ),
)
EXTRACTORS.register(
    "me-llama",
    Extractor(
        "me-llama",
        "me-llama-substring-1",
        me_llama_substring,
        "BIDS-Xu-Lab/Me-LLaMA: src/tasks/vital_measure.py",
    ),
)
EXTRACTORS.register(
    "meditron",
    Extractor(
        "meditron",
        "meditron-first-token-1",
        meditron_first_token,
        "epfLLM/meditron: evaluation/evaluate.py",
    ),
)
