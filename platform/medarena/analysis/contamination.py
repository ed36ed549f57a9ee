"""`medarena contamination`: which items of a benchmark task a variant saw in training.

Every item (question, context, options, answer) is cut into word n-grams (medarena.analysis.
ngrams); the corpora of every training run in the variant's lineage, plus any given by path,
are read once, a document at a time, and each item records the n-grams found, the longest run
of its words found and the documents they were found in. An item is contaminated when the share
of its n-grams found exceeds the threshold; the default 0 flags any n-gram found, the GPT-3 /
lm-eval definition. Items shorter than n words have no n-gram and are never flagged.

The check is stored with everything that decides its outcome (lineage, task, dataset hash,
corpora and their hashes, method, n, threshold); the same inputs reuse the stored check.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medarena.analysis.corpora import Corpus, lineage, path_corpus, training_corpora
from medarena.analysis.ngrams import METHOD, ItemOverlap, OverlapIndex
from medarena.errors import Refused
from medarena.evaluate.formats import Item
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks, select_tasks
from medarena.provenance import code_version
from medarena.results import ContaminationCheck, ItemContamination
from medarena.store import Store

DEFAULT_N = 13  # GPT-3 Appendix C's largest n, lm-eval's only one (docs/decontamination.md)
DEFAULT_THRESHOLD = 0.0  # any n-gram found
WHERE_KEPT = 5  # documents recorded per item, the most overlapping first


@dataclass(frozen=True)
class CheckOutcome:
    check: ContaminationCheck
    items: list[ItemContamination]
    reused: bool
    seconds: float | None = None  # of the scan, when it ran


def item_segments(item: Item) -> list[str]:
    """The texts of an item cut into n-grams separately: each text field (question, context),
    then the options in order followed by the answer's text."""
    segments = [value for value in item.fields.values() if isinstance(value, str)]
    segments += [
        text for value in item.fields.values() if isinstance(value, list) for text in value
        if isinstance(text, str)
    ]  # fmt: skip
    answer = item.option_texts[item.gold] if item.gold is not None and item.option_texts else ""
    segments.append(" ".join([*item.option_texts, answer or item.reference or ""]))
    return segments


def check(
    store: Store,
    root: Path,
    variant: str,
    task_name: str,
    *,
    extra: Sequence[Path] = (),
    text_field: str = "text",
    n: int = DEFAULT_N,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int = 1,
) -> CheckOutcome:
    """Check `task_name`'s items against `variant`'s training corpora and `extra` ones, with
    `workers` processes (the outcome does not depend on them); Refused (nothing written) for
    an unknown variant or task, a missing corpus, or a variant with no data to check."""
    if n < 1 or not 0 <= threshold < 1:
        raise Refused("n must be at least 1 and the threshold in [0, 1)")
    (task,) = select_tasks(load_benchmarks(root), [task_name])
    chain = lineage(store, variant)
    corpora = [
        c
        for _, run_id in chain
        if run_id is not None
        for c in training_corpora(store, root, run_id)
    ]
    corpora += [path_corpus(path, text_field) for path in extra]
    if not corpora:
        raise Refused(
            f"variant {variant!r} has no training run recorded here: give its training data "
            "with --corpus PATH"
        )
    data = load_task_data(task, root)
    record = ContaminationCheck(
        id=None,
        key="",
        variant=variant,
        lineage=[name for name, _ in chain],
        task=task.name,
        dataset_hash=data.hash,
        corpora=[corpus.describe() for corpus in corpora],
        method=METHOD,
        n=n,
        threshold=threshold,
        code_version=code_version(),
        n_items=len(data.items),
        n_contaminated=0,
        documents_read=0,
    )
    key = check_key(record)
    stored = store.contamination_check(key)
    if stored is not None:
        return CheckOutcome(stored, store.contaminated_items(stored.id), True)
    started = time.perf_counter()
    index = OverlapIndex(((item.id, item_segments(item)) for item in data.items), n)
    documents = scan(index, corpora, workers)
    items = [_result(overlap, n, threshold) for overlap in index.items.values()]
    record = ContaminationCheck(
        **{
            **vars(record),
            "key": key,
            "n_contaminated": sum(item.contaminated for item in items),
            "documents_read": documents,
        }
    )
    seconds = time.perf_counter() - started
    return CheckOutcome(store.add_contamination_check(record, items), items, False, seconds)


def check_key(record: ContaminationCheck) -> str:
    """sha256 of what decides a check's outcome (not when or by which code commit it ran)."""
    inputs = [
        record.lineage,
        record.task,
        record.dataset_hash,
        sorted((c["name"], c["sha256"]) for c in record.corpora),
        record.method,
        record.n,
        record.threshold,
    ]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def scan(index: OverlapIndex, corpora: list[Corpus], workers: int = 1) -> int:
    """One pass over every corpus, a document at a time, `workers` processes cutting and
    hashing; returns the documents read."""
    return sum(index.scan(corpus.name, corpus.documents(), workers) for corpus in corpora)


def _result(overlap: ItemOverlap, n: int, threshold: float) -> ItemContamination:
    where = [
        {"corpus": corpus, "document": document, "matched": count}
        for (corpus, document), count in overlap.where.most_common(WHERE_KEPT)
    ]
    return ItemContamination(
        item_id=overlap.item_id,
        ngrams=overlap.total,
        matched=len(overlap.matched),
        longest=overlap.longest(n),
        contaminated=bool(overlap.matched) and overlap.share() > threshold,
        sources=where,
    )
