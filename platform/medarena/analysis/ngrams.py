"""Word n-gram overlap between benchmark items and a stream of corpus documents.

The method of the GPT-3 paper's Appendix C as lm-evaluation-harness applies it
(docs/decontamination.md: a test item is contaminated when any of its 13-grams occurs in a
training document; OpenAI used 8 to 13 by dataset, lm-eval 13 throughout). Text is normalised
as training normalises it (medarena.data.clean.normalise), then lower-cased and cut into words
of letters and digits (punctuation dropped: medarena's choice, so "(B)" and "B." meet).

Each item is a few segments (question with its context; options and answer), each cut into
n-grams on its own, so no n-gram spans two fields. Only the items' n-grams are held in memory;
documents pass through one at a time (`OverlapIndex.scan`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from medarena.data.clean import normalise

METHOD = "word-ngram-overlap-1"  # bump when a change can flag an item differently
_WORD = re.compile(r"\w+")

NGram = tuple[str, ...]


def words(text: str) -> list[str]:
    """The words n-grams are made of: normalised like training text, lower-cased."""
    return _WORD.findall(normalise(text).lower())


def ngrams(tokens: Sequence[str], n: int) -> list[NGram]:
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


@dataclass
class ItemOverlap:
    """What one item shares with the corpora."""

    item_id: str
    segments: list[list[NGram]]  # each segment's n-grams, in order
    matched: set[NGram] = field(default_factory=set)
    where: Counter[tuple[str, str]] = field(default_factory=Counter)  # (corpus, doc) -> n-grams

    @property
    def total(self) -> int:
        return len({gram for segment in self.segments for gram in segment})

    def longest(self, n: int) -> int:
        """The longest run of words of the item found in the corpora (0: none)."""
        best = 0
        for segment in self.segments:
            run = 0
            for gram in segment:
                run = run + 1 if gram in self.matched else 0
                best = max(best, run + n - 1 if run else 0)
        return best

    def share(self) -> float:
        return len(self.matched) / self.total if self.total else 0.0


class OverlapIndex:
    """The items' n-grams -> the items that have them; `scan` marks what documents contain."""

    def __init__(self, items: Iterable[tuple[str, Sequence[str]]], n: int):
        self.n = n
        self.items: dict[str, ItemOverlap] = {}
        self._owners: dict[NGram, list[ItemOverlap]] = defaultdict(list)
        for item_id, segments in items:
            grams = [ngrams(words(segment), n) for segment in segments]
            overlap = ItemOverlap(item_id, grams)
            self.items[item_id] = overlap
            for gram in {gram for segment in grams for gram in segment}:
                self._owners[gram].append(overlap)
        self._grams = set(self._owners)

    def scan(self, corpus: str, document: str, text: str) -> int:
        """Mark the items' n-grams found in one document; returns how many distinct ones."""
        found = set(ngrams(words(text), self.n)) & self._grams  # iterates the smaller set
        for gram in found:
            for overlap in self._owners[gram]:
                overlap.matched.add(gram)
                overlap.where[(corpus, document)] += 1
        return len(found)
