"""Cleaning: Unicode and whitespace normalisation, length filters, exact and near-duplicate
removal (MinHash LSH over word shingles, datasketch), with a count of what each step removed.

Duplicates are looked for across all sources together (a replayed web page can repeat an
abstract), and the first occurrence in recipe order is the one kept. `Cleaning` is the settings
block a pretraining recipe writes (`cleaning:`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from pydantic import Field

from medarena.data.corpus import Document
from medarena.schemas import Spec

_SPACES = re.compile(r"[^\S\n]+")  # whitespace except newlines
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


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
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


@dataclass
class CleaningReport:
    """Documents in, and what each step removed, per source."""

    documents_in: Counter = field(default_factory=Counter)
    too_short: Counter = field(default_factory=Counter)
    too_long: Counter = field(default_factory=Counter)
    exact_duplicates: Counter = field(default_factory=Counter)
    near_duplicates: Counter = field(default_factory=Counter)
    documents_out: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        steps = ("documents_in", "too_short", "too_long", "exact_duplicates", "near_duplicates",
                 "documents_out")  # fmt: skip
        return {step: dict(getattr(self, step)) for step in steps}


def clean(documents: list[Document], settings: Cleaning) -> tuple[list[Document], CleaningReport]:
    report = CleaningReport()
    kept: list[Document] = []
    seen_hashes: set[str] = set()
    lsh, permutations = _near_duplicate_index(settings)
    for document in documents:
        report.documents_in[document.source] += 1
        text = normalise(document.text)
        words = text.split()
        if len(words) < settings.min_words:
            report.too_short[document.source] += 1
            continue
        if settings.max_words is not None and len(words) > settings.max_words:
            report.too_long[document.source] += 1
            continue
        digest = hashlib.sha1(text.encode()).hexdigest()
        if settings.exact_dedup and digest in seen_hashes:
            report.exact_duplicates[document.source] += 1
            continue
        seen_hashes.add(digest)
        if lsh is not None:
            signature = _minhash(words, settings.shingle_words, permutations)
            if lsh.query(signature):
                report.near_duplicates[document.source] += 1
                continue
            lsh.insert(f"{len(kept)}", signature)
        kept.append(Document(document.source, document.id, text))
        report.documents_out[document.source] += 1
    return kept, report


def _near_duplicate_index(settings: Cleaning):
    if settings.near_dedup_threshold is None:
        return None, 0
    from datasketch import MinHashLSH

    lsh = MinHashLSH(
        threshold=settings.near_dedup_threshold, num_perm=settings.minhash_permutations
    )
    return lsh, settings.minhash_permutations


def _minhash(words: list[str], size: int, permutations: int):
    from datasketch import MinHash

    signature = MinHash(num_perm=permutations, seed=1)
    lowered = [word.lower() for word in words]
    shingles = {" ".join(lowered[i : i + size]) for i in range(max(1, len(lowered) - size + 1))}
    signature.update_batch([shingle.encode() for shingle in shingles])
    return signature
