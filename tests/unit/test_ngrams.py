"""The n-gram matcher: its fast word split equals the regex on normalised text, its rolling hash
agrees with the per-n-gram one, and a window across two documents is no match."""

import re

from medarena.analysis.ngrams import OverlapIndex, _gram_hash, _window_hashes, ngrams, words
from medarena.data.clean import normalise
from tests.conftest import REPO

TEXTS = [
    "The answer is (B). Metformin, 500 mg b.i.d.; HbA1c < 7%!",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 text, "
    "caf\u00e9 au lait, na\u00efve, \ufb01ne",
    "snake_case words\tand\ttabs\n\n\nand lines",
]


def test_words_are_the_regex_words_of_the_normalised_text() -> None:
    samples = [path.read_text() for path in sorted((REPO / "pretrain/samples").rglob("*.jsonl"))]
    for text in TEXTS + samples:
        assert words(text) == re.findall(r"\w+", normalise(text).lower())


def test_the_rolling_hash_agrees_with_the_per_ngram_hash() -> None:
    tokens = words(TEXTS[0] + " " + TEXTS[1])
    rolled = _window_hashes(tokens, 5).tolist()
    assert rolled == [_gram_hash(gram) for gram in ngrams(tokens, 5)]


def test_a_window_across_two_documents_is_no_match() -> None:
    index = OverlapIndex([("item", ["one two three four"])], 4)
    read = index.scan("c", [("d1", "x one two"), ("d2", "three four y")])
    assert read == 2 and not index.items["item"].matched
    index.scan("c", [("d3", "zero One, two; three four.")])
    overlap = index.items["item"]
    assert overlap.matched == {("one", "two", "three", "four")}
    assert dict(overlap.where) == {("c", "d3"): 1} and overlap.longest(4) == 4


def test_forked_workers_find_exactly_what_one_process_finds() -> None:
    """Three batches of documents through two forked workers: the same n-grams found, counted
    against the same documents, as in one process (and the index left as it was)."""
    items = [
        ("a", ["the patient presented with fever and a new murmur over the apex " * 2]),
        ("b", ["which drug reverses heparin at the bedside in a bleeding adult patient today"]),
    ]
    filler = "hand hygiene before and after every contact with a patient in the ward"
    documents = [(f"doc{i}", filler) for i in range(700)]
    documents[5] = ("hit-a", "notes: " + items[0][1][0])
    documents[400] = ("hit-b", items[1][1][0] + " protamine")
    documents[699] = ("hit-a-again", items[0][1][0])

    def found(workers: int) -> dict[str, tuple[int, dict]]:
        index = OverlapIndex(items, 13)
        assert index.scan("corpus", iter(documents), workers=workers) == 700
        return {i: (len(o.matched), dict(o.where)) for i, o in index.items.items()}

    one = found(1)
    assert one == found(2)
    assert set(one["a"][1]) == {("corpus", "hit-a"), ("corpus", "hit-a-again")}
    assert set(one["b"][1]) == {("corpus", "hit-b")} and one["b"][0] == 1
