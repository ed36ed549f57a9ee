"""Cleaning settings and the pipeline steps that normalise and length-filter documents.

`Cleaning` is the settings block a pretraining recipe writes (`cleaning:`). Normalisation and the
length filters are datatrove pipeline steps; exact and near-duplicate removal are the staged
steps of `medarena.data.dedup`. Every step counts what it removed per source in the task's
datatrove stats (`<count>/<source>`), which `CleaningReport.from_stats` sums into the run's index.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import Field

from medarena.schemas import Spec

_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
STEPS = ("documents_in", "too_short", "too_long", "exact_duplicates", "near_duplicates",
         "documents_out")  # fmt: skip


class Cleaning(Spec):
    min_words: int = Field(20, ge=0)
    max_words: int | None = Field(None, gt=0)
    exact_dedup: bool = True
    near_dedup_threshold: float | None = Field(
        0.8, gt=0, le=1, description="MinHash Jaccard above which a document is a near duplicate"
    )
    minhash_permutations: int = Field(128, ge=16)
    shingle_words: int = Field(5, ge=1)


def normalise(text: str) -> str:
    """NFKC, one space for runs of spaces/tabs, at most one blank line, no edge whitespace.
    De-identification placeholders (MIMIC's `___`) are left as they are."""
    text = unicodedata.normalize("NFKC", text)
    if _is_normal_ascii(text):  # most documents: checked in a few C scans, nothing rebuilt
        return text
    # `split()` splits on the same whitespace as the regex's `\s` (str.isspace), in C
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" not in text:
        return " ".join(text.split())
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


# the ASCII whitespace `str.split()` splits on, besides space and newline
_OTHER_ASCII_SPACES = "\t\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _is_normal_ascii(text: str) -> bool:
    """Whether `text` is ASCII and `normalise` would leave it as it is: words apart by one
    space, one newline or one blank line, no whitespace at either end."""
    return (
        text.isascii()
        and text[:1] not in (" ", "\n")
        and text[-1:] not in (" ", "\n")
        and "  " not in text
        and not ("\n" in text and (" \n" in text or "\n " in text or "\n\n\n" in text))
        and not any(space in text for space in _OTHER_ASCII_SPACES)
    )


@dataclass
class CleaningReport:
    """Documents in, and what each step removed, per source."""

    counts: dict[str, Counter] = field(default_factory=lambda: {step: Counter() for step in STEPS})

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {step: dict(self.counts[step]) for step in STEPS}

    @classmethod
    def from_stats(cls, stats: Iterable[dict]) -> CleaningReport:
        """Sum the `<step>/<source>` counters of datatrove task stats (`stats/<rank>.json`)."""
        report = cls()
        for step_stats in stats:
            for label, metric in step_stats.get("stats", {}).items():
                step, _, source = label.partition("/")
                if step in report.counts and source:
                    # datatrove saves a plain count as a number, a distribution as a dict
                    total = metric["total"] if isinstance(metric, dict) else metric
                    report.counts[step][source] += int(total)
        return report


class Normalise(PipelineStep):
    """`normalise` every document's text; counts `documents_in` per source."""

    name = "normalise"
    type = "medarena"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: Counter = Counter()  # counted here, added to the stats once
        for document in data:
            counts[document.metadata["source"]] += 1
            document.text = normalise(document.text)
            yield document
        for source, count in counts.items():
            self.stat_update(f"documents_in/{source}", value=count)


def normalised_words(text: str) -> int:
    """The whitespace-separated words of a `normalise`d text (words apart by one space, one
    newline or one blank line), counted without splitting it."""
    if not text:
        return 0
    words = text.count(" ") + 1
    if "\n" in text:
        words += text.count("\n") - text.count("\n\n")
    return words


class LengthFilter(PipelineStep):
    """Drop documents under `min_words` or over `max_words` (whitespace-separated words) of
    the `normalise`d documents."""

    name = "length filter"
    type = "medarena"

    def __init__(self, min_words: int, max_words: int | None):
        super().__init__()
        self.min_words, self.max_words = min_words, max_words

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for document in data:
            words = normalised_words(document.text)
            if words < self.min_words:
                self.stat_update(f"too_short/{document.metadata['source']}")
            elif self.max_words is not None and words > self.max_words:
                self.stat_update(f"too_long/{document.metadata['source']}")
            else:
                yield document
