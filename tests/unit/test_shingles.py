"""MinHash shingles, signatures and LSH buckets computed in numpy, against plain-Python
references, and the fast `normalise` against its regex definition."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from datatrove.pipeline.dedup.minhash import MinhashConfig

from medarena.data import shingles
from medarena.data.clean import normalise, normalised_words
from medarena.data.dedup import NearBuckets
from medarena.data.shingles import shingle_hashes, signatures

MASK = (1 << 64) - 1
RAW = [
    "The quick brown fox jumps over the lazy dog again",
    "",
    "Ünïcode  wörds\there ok",
    "a b c d\n\n\ne f",
    "One\nTwo",
    "x " * 3,
]
TEXTS = [normalise(text) for text in RAW]  # what the signature step receives


def mix(value: int) -> int:
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) & MASK
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) & MASK
    return value ^ (value >> 31)


def word_hash(word: str) -> int:
    data = word.encode()
    value = sum(byte * pow(0x100000001B3, j, 1 << 64) for j, byte in enumerate(data)) & MASK
    return mix(value ^ (len(data) << 56))


def reference_shingles(text: str, n: int) -> list[int]:
    words = [word_hash(word) for word in text.lower().split()]
    if not words:
        return []
    result = []
    for start in range(max(1, len(words) - n + 1)):
        value = 0
        for word in words[start : start + n]:
            value = (value * 0x9E3779B97F4A7C15 + word) & MASK
        result.append(mix(value))
    return result


def test_shingle_hashes_equal_the_definition_document_by_document():
    hashes, per_document = shingle_hashes(TEXTS, 5)
    expected = [reference_shingles(text, 5) for text in TEXTS]
    assert per_document.tolist() == [len(e) for e in expected] == [6, 0, 1, 2, 1, 1]
    assert hashes.tolist() == [value for e in expected for value in e]


def test_shingle_hashes_are_the_same_in_another_process():
    """No Python `hash`: tasks on other machines (other hash seeds) agree."""
    code = (
        "from medarena.data.shingles import shingle_hashes;"
        f"print(shingle_hashes({TEXTS!r}, 3)[0].tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == str(shingle_hashes(TEXTS, 3)[0].tolist())


@pytest.mark.parametrize("rows", [1, 2, 3, 512])
def test_signatures_in_blocks_equal_each_document_alone(monkeypatch, rows):
    """Blocks cut documents anywhere; each document's minimum is the same."""
    monkeypatch.setattr(shingles, "ROWS", rows)
    hashes, per_document = shingle_hashes(TEXTS, 2)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, 117, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, 117, dtype=np.uint64)
    expected, position = [], 0
    for count in per_document.tolist():
        if count:
            rows_of = hashes[position : position + count]
            expected.append(((rows_of[:, None] * a + b) >> np.uint64(32)).min(axis=0))
            position += count
    assert np.array_equal(signatures(hashes, per_document, a, b), np.array(expected))


def write_band(folder, task: int, sigs: list[tuple[int, ...]]) -> None:
    """A task's sorted signature file of band 0, in datatrove's record layout."""
    record = np.dtype([("sig", "<u8", (len(sigs[0]),)), ("doc", "<u4")])
    records = np.array([(sig, doc) for doc, sig in enumerate(sigs)], dtype=record)
    records.sort(order=["sig", "doc"])
    (folder / "bucket_000").mkdir(parents=True, exist_ok=True)
    records.tofile(folder / "bucket_000" / f"{task:05d}.minhash.sig")


@pytest.mark.parametrize("window", [1, 2, 1 << 20])
def test_buckets_pair_equal_band_signatures_across_tasks(tmp_path, monkeypatch, window):
    """Equal whole bands pair up, in (signature, task, doc) order, whatever the window; a band
    equal in its first hash only does not."""
    monkeypatch.setattr(NearBuckets, "WINDOW", window)
    write_band(tmp_path / "sig", 0, [(5, 1), (9, 9), (7, 3)])
    write_band(tmp_path / "sig", 1, [(7, 3), (5, 2), (5, 1)])
    write_band(tmp_path / "sig", 2, [(7, 3)])
    step = NearBuckets(tmp_path / "sig", tmp_path / "out", MinhashConfig(hashes_per_bucket=2))
    step.run(None, rank=0, world_size=1)
    pairs = np.fromfile(tmp_path / "out" / "00000_00.dups", dtype="<u4").reshape(-1, 4)
    assert sorted(pairs.tolist()) == [[0, 0, 1, 2], [0, 2, 1, 0], [1, 0, 2, 0]]


SPACES = re.compile(r"[^\S\n]+")
BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


def regex_normalise(text: str) -> str:
    """`normalise` as it was defined with regular expressions."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return BLANK_LINES.sub("\n\n", text).strip()


def test_words_of_normalised_texts_are_counted_without_splitting():
    for text in [*TEXTS, "a\nb c\n\nd", "word"]:
        assert normalised_words(text) == len(text.split()), repr(text)


def test_normalise_equals_its_regex_definition():
    pieces = ["a", "b", " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f"]
    pieces += ["\x85", "\u00a0", "\u2003", "\u2028", "\u3000", "é", "ﬁ", "___", "\n\n\n", " \n "]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert normalise(text) == regex_normalise(text), repr(text)
