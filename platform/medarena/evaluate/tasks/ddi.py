"""DDI 2013's original release layout (the DDI corpus XML files, Herrero-Zazo et al. 2013), read
into the same items as Me-LLaMA's instruction-format DDI2013 (`me_llama_labels`).

Layout, as confirmed with medarena's search tool in ncbi-nlp/BLUE_Benchmark
blue/ddi/create_ddi.py (which reads `/document/sentence`, its `entity` id/charOffset/type/text
and `pair` id/e1/e2/ddi/type, and labels a pair `DDI-false` or `DDI-<type>`, the labels
Me-LLaMA's release uses) and in a corpus sentence quoted by a public import script
(`DDI-DrugBank.d297.s4`, whose offsets `24-30` for "ORENCIA" show that the end is inclusive):
`<sentence id text>` with `<entity id charOffset type text/>` (several spans joined by ";" for a
discontinuous mention) and `<pair id e1 e2 ddi="true|false" type="mechanism|effect|advise|
int"/>`; the type of a `ddi="false"` pair is not read. One item per pair (records from
medarena.data.pair_xml): the sentence with both drugs of the pair replaced by `@DRUG$`, after
the instruction of medarena's sample, and the label.
"""

from __future__ import annotations

from medarena.data.records import FieldProblem, Record
from medarena.evaluate.formats import Item
from medarena.evaluate.tasks.labels import label_item

DDI_TYPES = ("mechanism", "effect", "advise", "int")
DDI_LABELS = (*(f"DDI-{t}" for t in DDI_TYPES), "DDI-false")
# medarena's wording (its bundled Me-LLaMA-layout sample uses the same), not Me-LLaMA's
INSTRUCTION = (
    "Classify the interaction between the two drugs marked @DRUG$ in the sentence as one of "
    "DDI-mechanism, DDI-effect, DDI-advise, DDI-int or DDI-false (no interaction)."
)
MASK = "@DRUG$"


def _spans(entity: dict[str, str], name: str, text: str) -> list[tuple[int, int]]:
    """The entity's character spans as [start, end) pairs, checked against the sentence."""
    field_name = f"entity[{name}].charOffset"
    spans = []
    for piece in entity.get("charOffset", "").split(";"):
        start, _, end = piece.partition("-")
        if not (start.strip().isdigit() and end.strip().isdigit()):
            raise FieldProblem(field_name, f"expected 'start-end', got {piece!r}")
        spans.append((int(start), int(end) + 1))
    if any(not 0 <= start < end <= len(text) for start, end in spans):
        raise FieldProblem(field_name, f"offsets lie outside the sentence ({len(text)} chars)")
    if len(spans) == 1 and "text" in entity and text[slice(*spans[0])] != entity["text"]:
        found = text[slice(*spans[0])]
        raise FieldProblem(field_name, f"covers {found!r}, not the entity {entity['text']!r}")
    return spans


def _label(pair: dict[str, str]) -> str:
    ddi = pair.get("ddi", "").lower()
    if ddi == "false":
        return "DDI-false"
    if ddi != "true":
        raise FieldProblem("pair.ddi", f"expected 'true' or 'false', got {pair.get('ddi')!r}")
    kind = pair.get("type", "").lower()
    if kind not in DDI_TYPES:
        raise FieldProblem("pair.type", f"expected one of {DDI_TYPES}, got {pair.get('type')!r}")
    return f"DDI-{kind}"


def ddi2013_xml(record: Record) -> Item:
    """One `<pair>` of a DDI corpus XML file (see the module docstring)."""
    data = record.data
    pair, entities, sentence = data["pair"], data["entities"], data["sentence"]
    text = sentence.get("text")
    if not text:
        raise FieldProblem("sentence.text", "missing sentence text")
    spans: list[tuple[int, int]] = []
    for end in ("e1", "e2"):
        name = pair.get(end)
        if name not in entities:
            raise FieldProblem(f"pair.{end}", f"names no entity of its sentence: {name!r}")
        spans += _spans(entities[name], name, text)
    masked = text
    for start, stop in sorted(spans, reverse=True):  # from the end, so offsets stay valid
        masked = masked[:start] + MASK + masked[stop:]
    if "id" not in pair:
        raise FieldProblem("pair.id", "missing pair id")
    query = f"{INSTRUCTION}\nSentence: {masked}"
    return label_item(pair["id"], {"query": query}, list(DDI_LABELS), _label(pair), "pair.type")
