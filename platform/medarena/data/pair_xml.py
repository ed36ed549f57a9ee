"""Sentence-pair XML: the layout of the DDI corpus (Herrero-Zazo et al. 2013) and of the unified
protein-protein interaction corpora it follows: `<document id>` holding `<sentence id text>`,
each with its `<entity id charOffset type text/>` and `<pair id e1 e2 .../>` elements.

One record per `<pair>`, at the pair element's line, holding the pair's attributes with its
sentence and that sentence's entities, so that a source format can build one item from it.
Read with expat (standard library) because it reports each element's line.
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat

from medarena.errors import Problem, ProblemsError


def pair_rows(text: str, label: str) -> list[tuple[dict[str, Any], int]]:
    """Every `<pair>` of the XML `text` (of file `label`) as (data, line); data is {document,
    sentence, entities, pair}."""
    rows: list[tuple[dict[str, Any], int]] = []
    parser = expat.ParserCreate()
    state: dict[str, Any] = {"document": None, "sentence": None, "entities": {}, "pairs": []}

    def start(tag: str, attributes: dict[str, str]) -> None:
        if tag == "document":
            state["document"] = attributes.get("id")
        elif tag == "sentence":
            state.update(sentence=dict(attributes), entities={}, pairs=[])
        elif tag == "entity" and state["sentence"] is not None:
            state["entities"][attributes.get("id", "")] = dict(attributes)
        elif tag == "pair" and state["sentence"] is not None:
            state["pairs"].append((dict(attributes), parser.CurrentLineNumber))

    def end(tag: str) -> None:
        # at the sentence's end, so that a pair may name an entity listed after it
        if tag == "sentence" and state["sentence"] is not None:
            for pair, line in state["pairs"]:
                data = {
                    "document": state["document"],
                    "sentence": state["sentence"],
                    "entities": state["entities"],
                    "pair": pair,
                }
                rows.append((data, line))
            state.update(sentence=None, pairs=[])

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        message = f"malformed XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1})"
        raise ProblemsError([Problem(label, exc.lineno, "", message)], "malformed XML") from None
    return rows
