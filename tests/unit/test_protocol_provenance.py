"""Every shipped protocol marks where each of its values comes from (a source, or medarena's
choice), like the training recipes; a value left unmarked is reported at its line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medarena.errors import ProblemsError
from medarena.evaluate.protocol import PROTOCOLS_DIR, load_protocols
from tests.conftest import REPO


def test_every_shipped_protocol_marks_every_value() -> None:
    protocols = load_protocols(REPO)  # the loader reports any gap at file:line
    assert len(protocols) == 5
    for protocol in protocols.values():
        assert protocol.provenance, protocol.name
        assert protocol.provenance_gaps() == []


def test_meditron_size_override_and_medarena_choices_are_marked() -> None:
    protocol = load_protocols(REPO)["meditron-incontext"]
    assert "Table 4" in protocol.provenance["size_overrides"].source
    assert protocol.provenance["tasks[pubmedqa].seeds"].medarena is not None


def test_an_unmarked_value_is_located(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    folder = tmp_path / PROTOCOLS_DIR
    folder.mkdir(parents=True)
    text = (REPO / PROTOCOLS_DIR / "meditron-sc-cot.yaml").read_text()
    # only the expected item counts keep their sources: every other value is now unmarked
    text = text.replace('  "*": {source:', "  aggregate: {source:")
    (folder / "meditron-sc-cot.yaml").write_text(text)
    with pytest.raises(ProblemsError) as raised:
        load_protocols(tmp_path)
    message = str(raised.value)
    assert "meditron-sc-cot.yaml:" in message
    assert "tasks[pubmedqa].samples: has neither a source nor a medarena mark" in message
    shutil.rmtree(folder)
