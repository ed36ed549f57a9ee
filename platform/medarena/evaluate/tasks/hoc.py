"""HoC's public release as the BLUE benchmark distributes it, read into the same items as
Me-LLaMA's instruction-format HoC (`me_llama_multilabel`).

Layout, confirmed in ncbi-nlp/BLUE_Benchmark (blue/hoc/create_hoc.py builds it from the
authors' HoCCorpus files; blue/hoc/eval_hoc.py reads it): tab-separated, a header row, columns
`index` (`<PMID>_s<n>`, the n-th sentence of the abstract), `sentence` and `labels` (the
sentence's hallmarks separated by commas, empty for none) from the ten labels of eval_hoc.py's
LABELS. BLUE scores documents: the labels of an abstract are the union of its sentences'
labels, so here one item per PMID, its sentences joined in order, after the instruction of
medarena's sample.
"""

from __future__ import annotations

import re

from medarena.data.records import FieldProblem, Record
from medarena.errors import Problem, ProblemsError
from medarena.evaluate.formats import Item

# BLUE's ten labels (eval_hoc.py), in the order of medarena's Me-LLaMA-layout sample
HOC_LABELS = (
    "sustaining proliferative signaling",
    "evading growth suppressors",
    "resisting cell death",
    "enabling replicative immortality",
    "inducing angiogenesis",
    "activating invasion and metastasis",
    "genomic instability and mutation",
    "tumor promoting inflammation",
    "cellular energetics",
    "avoiding immune destruction",
)
# medarena's wording (its bundled sample uses the same), not Me-LLaMA's
INSTRUCTION = (
    "Which hallmarks of cancer does the following abstract discuss? List every hallmark that "
    f"applies, separated by commas, chosen from: {'; '.join(HOC_LABELS)}. "
    "Answer none if no hallmark applies."
)
_INDEX = re.compile(r"^(?P<document>.+)_s(?P<sentence>\d+)$")


def _sentence(record: Record) -> tuple[str, int, str, list[str]]:
    """(document, sentence number, text, labels) of one row."""
    data = record.data
    match = _INDEX.match(str(data.get("index") or ""))
    if match is None:
        raise FieldProblem("index", f"expected '<PMID>_s<n>', got {data.get('index')!r}")
    text = data.get("sentence")
    if not isinstance(text, str) or not text.strip():
        raise FieldProblem("sentence", "expected non-empty text")
    labels = [label.strip() for label in str(data.get("labels") or "").split(",") if label.strip()]
    unknown = [label for label in labels if label not in HOC_LABELS]
    if unknown:
        raise FieldProblem("labels", f"labels {unknown} are not among HoC's {list(HOC_LABELS)}")
    return match["document"], int(match["sentence"]), text.strip(), labels


def by_document(records: list[Record]) -> list[Record]:
    """One record per abstract (at its first row): {document, sentences, labels}."""
    documents: dict[str, tuple[Record, list[tuple[int, str]], set[str]]] = {}
    problems: list[Problem] = []
    for record in records:
        try:
            document, number, text, labels = _sentence(record)
        except FieldProblem as exc:
            problems.append(record.problem(exc.field_name, exc.message))
            continue
        _, sentences, union = documents.setdefault(document, (record, [], set()))
        if number in dict(sentences):
            problems.append(record.problem("index", f"sentence {number} of {document} repeated"))
        sentences.append((number, text))
        union.update(labels)
    if problems:
        raise ProblemsError(problems, "records do not fit the 'hoc_blue' format")
    return [
        Record(
            {"document": document, "sentences": [t for _, t in sorted(sentences)], "labels": union},
            first.source,
            first.line,
            index,
        )
        for index, (document, (first, sentences, union)) in enumerate(documents.items())
    ]


def hoc_blue(record: Record) -> Item:
    """One abstract of BLUE's HoC TSV, as grouped by `by_document`."""
    data = record.data
    gold = [label for label in HOC_LABELS if label in data["labels"]]
    query = f"{INSTRUCTION}\nAbstract: {' '.join(data['sentences'])}"
    return Item(
        id=str(data["document"]),
        fields={"query": query},
        choices=HOC_LABELS,
        option_texts=HOC_LABELS,
        reference=", ".join(gold) if gold else "none",
        answers=tuple(gold),
    )
