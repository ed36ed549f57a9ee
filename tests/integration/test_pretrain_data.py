"""The pretraining data pipeline on small corpora: cleaning counts, token-ratio mixing, packing
into shards without padding, and a data position that resumes."""

import json
from pathlib import Path

import numpy as np
import pytest
from datatrove.data import Document as DatatroveDocument
from datatrove.pipeline.readers.base import BaseDiskReader

from medarena.data.clean import normalise
from medarena.data.corpus import CORPUS_READERS, Document, Source, local_path, read_source
from medarena.data.mix import select_documents
from medarena.data.pack import PackedDataset, encode_with_eos, pack, tokenize
from medarena.errors import OperationFailed, ProblemsError, Refused
from medarena.pretrain.recipe import PretrainRecipe, load_recipes
from tests.conftest import REPO

SENTENCE = (
    "aspirin reduces platelet aggregation and lowers the risk of recurrent myocardial "
    "infarction in adults with established coronary disease when started early after the event"
)
WORDS = SENTENCE.split()


def document(source: str, i: int, words: list[str]) -> Document:
    return Document(source, f"{source}-{i}", " ".join(words))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_normalise_keeps_placeholders_and_paragraphs():
    text = "Name:  ___\t\tUnit No:   ___\r\n\r\n\r\n\ufb01ndings  stable \n"
    assert normalise(text) == "Name: ___ Unit No: ___\n\nfindings stable"


def write_jsonl(path: Path, docs: list[Document]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs))


def kept_texts(tokenized, tokenizer) -> list[str]:
    """The documents a source kept, decoded from its tokens (EOS dropped)."""
    return [
        tokenizer.decode(tokenized.tokens[start : end - 1].tolist())
        for start, end in zip(tokenized.offsets[:-1], tokenized.offsets[1:], strict=True)
    ]


def folder_source(name: str) -> dict:
    """A source read from every .jsonl file of a folder (files shared out among the tasks)."""
    data = {"path": name, "file_format": "jsonl"}
    return {"name": name, "kind": "general", "reader": "records", "ratio": 1, "data": data}


@pytest.mark.parametrize("tasks", [1, 2])
def test_cleaning_counts_each_removal_and_keeps_the_first_copy(tokenizer, tmp_path, tasks):
    """Planted exact and near duplicates go, the first copy in recipe order stays, also when
    the sources are split into files shared out among several tasks."""
    from medarena.data.prepare import clean_and_tokenize

    rng = np.random.default_rng(0)
    base = [list(rng.permutation(WORDS)) + list(rng.permutation(WORDS)) for _ in range(4)]
    near = list(base[1])
    near[7] = "clopidogrel"  # one word of 40 changed
    pubmed = [
        document("pubmed", 0, base[0]),
        document("pubmed", 1, base[1]),
        document("pubmed", 2, base[0]),  # exact copy of 0
    ]
    general = [
        document("general", 3, near),  # near copy of 1, in another source
        document("general", 4, base[2]),
        document("general", 5, ["too", "short"]),
        document("general", 6, base[3] * 3),  # 120 words
    ]
    # the later source's files come first in task order: recipe order still decides
    write_jsonl(tmp_path / "pubmed" / "b.jsonl", pubmed[2:])
    write_jsonl(tmp_path / "pubmed" / "a.jsonl", pubmed[:2])
    write_jsonl(tmp_path / "general" / "a.jsonl", general[:2])
    write_jsonl(tmp_path / "general" / "b.jsonl", general[2:])
    recipe = small_recipe(
        [folder_source(name) for name in ("pubmed", "general")],
        cleaning={"min_words": 10, "max_words": 100, "near_dedup_threshold": 0.7},
    )
    report, tokenized, _ = clean_and_tokenize(
        recipe, tokenizer, tmp_path, tmp_path / "work", workers=1, tasks=tasks
    )
    kept = {name: kept_texts(tokens, tokenizer) for name, tokens in tokenized.items()}
    assert kept == {
        "pubmed": [pubmed[0].text, pubmed[1].text],
        "general": [general[1].text],
    }
    counts = report.as_dict()
    assert counts["exact_duplicates"] == {"pubmed": 1}
    assert counts["near_duplicates"] == {"general": 1}
    assert counts["too_short"] == {"general": 1} and counts["too_long"] == {"general": 1}
    assert counts["documents_in"] == {"pubmed": 3, "general": 4}
    assert counts["documents_out"] == {"pubmed": 2, "general": 1}


def test_mix_reaches_token_ratios_by_up_and_down_sampling():
    doc_tokens = {
        "abstracts": np.full(100, 50),  # 5,000 tokens
        "notes": np.full(10, 40),  # 400 tokens: must be up-sampled
        "general": np.full(200, 30),  # 6,000 tokens: down-sampled
    }
    ratios = {"abstracts": 0.75, "notes": 0.05, "general": 0.2}  # 15:1:4
    selected, shares = select_documents(doc_tokens, ratios, seed=3)
    total = sum(share.tokens for share in shares.values())
    assert total == pytest.approx(11_400, rel=0.01)
    for name, ratio in ratios.items():
        assert shares[name].share == pytest.approx(ratio, abs=0.01), name
    assert shares["notes"].epochs == pytest.approx(0.05 * 11_400 / 400, rel=0.1)  # ~1.4 passes
    assert np.bincount(selected["notes"], minlength=10).min() >= 1  # every note at least once
    assert shares["general"].epochs < 1
    again, _ = select_documents(doc_tokens, ratios, seed=3)
    other, _ = select_documents(doc_tokens, ratios, seed=4)
    assert all(np.array_equal(selected[k], again[k]) for k in selected)
    assert not np.array_equal(selected["general"], other["general"])
    with pytest.raises(ValueError, match="no tokens after cleaning"):
        select_documents({"a": np.full(3, 5), "b": np.zeros(0, int)}, {"a": 0.5, "b": 0.5}, 0)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_a_batch_encodes_each_text_as_alone_then_eos(tokenizer, dtype):
    encoder = tokenizer.backend_tokenizer
    texts = [SENTENCE, "", "Ünïcode wörds, ___ kept", " ".join(WORDS * 40)]
    tokens, lengths = encode_with_eos(encoder, texts, 7, np.dtype(dtype))
    alone = [[*encoder.encode(text, add_special_tokens=False).ids, 7] for text in texts]
    assert tokens.dtype == dtype
    assert lengths.tolist() == [len(ids) for ids in alone]
    assert tokens.tolist() == [token for ids in alone for token in ids]


def test_pack_writes_whole_sequences_without_padding_and_resumes(tokenizer, tmp_path):
    docs = {
        "a": [document("a", i, WORDS[i % 7 :] * 2) for i in range(30)],
        "b": [document("b", i, WORDS[: 5 + i % 9]) for i in range(30)],
    }
    sources = {name: tokenize(d, tokenizer, batch_size=7) for name, d in docs.items()}
    for name, source in sources.items():
        assert len(source.offsets) == len(docs[name]) + 1
        ends = source.tokens[source.offsets[1:] - 1]
        assert (ends == tokenizer.eos_token_id).all()  # every document closed by EOS
        first = source.tokens[source.offsets[0] : source.offsets[1] - 1].tolist()
        assert first == tokenizer(docs[name][0].text, add_special_tokens=False).input_ids
    report = pack(
        sources,
        {"a": 0.5, "b": 0.5},
        tmp_path / "packed",
        sequence_length=32,
        seed=0,
        shard_sequences=5,
    )
    data = PackedDataset(tmp_path / "packed")
    index = json.loads((tmp_path / "packed" / "index.json").read_text())
    assert len(data) == report.sequences == index["sequences"] > 10
    assert len(index["shards"]) == -(-report.sequences // 5)  # ceil: shards of 5 sequences
    stream = np.concatenate([data[i] for i in range(len(data))])
    assert len(stream) == report.tokens == report.sequences * 32
    assert tokenizer.pad_token_id not in stream  # packed, not padded
    eos = int((stream == tokenizer.eos_token_id).sum())
    documents = sum(share.documents for share in report.mix.values())
    # every selected document is in the stream, except those in the dropped partial sequence
    assert report.dropped_tail_tokens < 32
    assert documents - report.dropped_tail_tokens <= eos <= documents
    first = [s.tolist() for s, _ in zip(data.sequences(seed=1), range(len(data) + 7), strict=False)]
    resumed = [
        s.tolist()
        for s, _ in zip(data.sequences(seed=1, start=9), range(len(data) - 2), strict=False)
    ]
    assert resumed == first[9:]  # a resumed run reads on exactly where it stopped
    one_epoch = sorted(map(tuple, first[: len(data)]))
    assert one_epoch == sorted(tuple(data[i].tolist()) for i in range(len(data)))  # a permutation


def test_recipe_errors_point_at_fields(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "broken.yaml").write_text(
        "name: broken\ndescription: x\ncitation: x\n"
        "sources:\n"
        "  - {name: a, kind: general, data: {path: a.jsonl}, ratio: -1}\n"
        "  - {name: b, kind: recipes, data: {path: b.jsonl}, ratio: 1}\n"
        "sequence_length: long\nglobal_batch_sequences: 8\noptimizer: {lr: 1.0e-3}\n"
    )
    (tmp_path / "pretrain" / "zeros.yaml").write_text(
        "name: zeros\ndescription: x\ncitation: x\n"
        "sources:\n  - {name: a, kind: general, data: {path: a.jsonl}, ratio: 0}\n"
        "sequence_length: 8\nglobal_batch_sequences: 8\noptimizer: {lr: 1.0e-3}\n"
    )
    with pytest.raises(ProblemsError) as caught:
        load_recipes(tmp_path)
    found = {(p.file, p.line, p.field) for p in caught.value.problems}
    assert ("pretrain/broken.yaml", 5, "sources[0].ratio") in found
    assert ("pretrain/broken.yaml", 6, "sources[1].kind") in found
    assert ("pretrain/broken.yaml", 7, "sequence_length") in found
    assert any(
        p.file == "pretrain/zeros.yaml" and "every ratio is 0" in p.message
        for p in caught.value.problems
    )


def test_missing_source_path_is_named(tmp_path):
    source = Source(name="notes", kind="clinical_notes", data={"path": "nowhere.jsonl"}, ratio=1)
    with pytest.raises(ProblemsError, match="notes") as caught:
        list(read_source(source, tmp_path))
    assert caught.value.problems[0].file == str(tmp_path / "nowhere.jsonl")


def test_shipped_recipes_load_with_published_settings():
    recipes = load_recipes(REPO)
    assert set(recipes) >= {"gap-replay", "me-llama", "tiny-demo"}
    gap = recipes["gap-replay"]
    assert (gap.optimizer.lr, gap.optimizer.betas, gap.optimizer.eps) == (3e-4, (0.9, 0.95), 1e-5)
    assert (gap.optimizer.weight_decay, gap.optimizer.grad_clip) == (0.1, 1.0)
    assert (gap.schedule.warmup_steps, gap.schedule.min_lr) == (2000, 1e-6)
    assert (gap.sequence_length, gap.global_batch_sequences) == (2048, 1600)
    big = gap.overrides["llama-2-70b"]
    assert (big.lr, big.sequence_length, big.global_batch_sequences) == (1.5e-4, 4096, 512)
    me = recipes["me-llama"]
    assert {k: round(v, 4) for k, v in me.mix_ratios().items()} == {
        "biomedical": 0.75,
        "clinical-notes": 0.05,
        "general": 0.2,
    }
    assert (me.optimizer.lr, me.optimizer.weight_decay, me.schedule.warmup_ratio) == (
        8e-6,
        1e-5,
        0.05,
    )
    assert isinstance(recipes["tiny-demo"], PretrainRecipe)


def small_recipe(sources: list[dict], cleaning: dict | None = None) -> PretrainRecipe:
    return PretrainRecipe.model_validate(
        {
            "name": "small",
            "description": "x",
            "citation": "x",
            "sources": sources,
            "cleaning": cleaning or {"min_words": 10, "near_dedup_threshold": None},
            "sequence_length": 16,
            "global_batch_sequences": 2,
            "optimizer": {"lr": 1e-3},
        }
    )


def test_a_source_emptied_by_cleaning_is_an_error_before_packing(tokenizer, tmp_path):
    from medarena.data.prepare import prepare

    (tmp_path / "long.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(WORDS) + f" case {i}"}) + "\n" for i in range(5))
    )
    (tmp_path / "short.jsonl").write_text(json.dumps({"text": "far too short"}) + "\n")
    recipe = small_recipe(
        [
            {"name": "long", "kind": "general", "data": {"path": "long.jsonl"}, "ratio": 1},
            {"name": "short", "kind": "general", "data": {"path": "short.jsonl"}, "ratio": 1},
        ]
    )
    with pytest.raises(ProblemsError, match="empty source after cleaning") as caught:
        prepare(recipe, tokenizer, tmp_path, tmp_path / "packed")
    assert [p.field for p in caught.value.problems] == ["sources.short"]
    assert not (tmp_path / "packed").exists()  # nothing written


def test_hub_corpus_reads_the_same_fields(monkeypatch):
    """The hub is outside the code under test: `datasets.load_dataset` is replaced by a local
    `datasets.Dataset` in epfl-llm/guidelines' layout."""
    import datasets

    rows = [
        {"id": "a1", "source": "who", "title": "Malaria", "clean_text": "Treat early. " * 30},
        {"id": "b2", "source": "cdc", "title": "Measles", "clean_text": "Vaccinate. " * 30},
    ]
    asked = []

    def from_hub(path, name=None, split=None, revision=None, streaming=False):
        asked.append((path, name, split, revision))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", from_hub)
    source = Source(
        name="guidelines",
        kind="guidelines",
        data={"kind": "hub", "dataset": "epfl-llm/guidelines", "split": "train"},
        text_fields=["title", "clean_text"],
        ratio=1,
    )
    documents = list(read_source(source, Path(".")))
    assert asked == [("epfl-llm/guidelines", None, "train", None)]
    assert [d.id for d in documents] == ["a1", "b2"]
    assert documents[0].text.startswith("Malaria\n\nTreat early.")


class LinesReader(BaseDiskReader):
    """A toy corpus reader: every line of a text file is a document."""

    def read_file(self, filepath: str):
        with self.data_folder.open(filepath, "rt") as handle:
            for i, line in enumerate(handle, start=1):
                yield DatatroveDocument(text=line.strip(), id=f"line-{i}", metadata=self.tags)


def one_document_per_line(source: Source, pretrain_dir: Path) -> LinesReader:
    path = local_path(source, pretrain_dir)
    assert path is not None
    reader = LinesReader(str(path.parent), glob_pattern=path.name)
    reader.tags = {"source": source.name}
    return reader


def test_a_registered_reader_is_named_by_a_recipe_and_feeds_preparation(tokenizer, tmp_path):
    from medarena.data.prepare import prepare

    lines = [" ".join(WORDS) + f" case {i}" for i in range(6)]
    (tmp_path / "notes.txt").write_text("\n".join(lines) + "\n")
    notes = {"name": "notes", "kind": "clinical_notes", "data": {"path": "notes.txt"}, "ratio": 1}
    with CORPUS_READERS.temporarily("lines", one_document_per_line):
        recipe = small_recipe([{**notes, "reader": "lines"}])
        packed, cleaning = prepare(recipe, tokenizer, tmp_path, tmp_path / "packed")
    assert cleaning["documents_in"] == cleaning["documents_out"] == {"notes": 6}
    assert packed.mix["notes"].documents == 6 and packed.mix["notes"].epochs == 1.0
    written = sum(len(tokenizer(line, add_special_tokens=False).input_ids) + 1 for line in lines)
    assert packed.tokens + packed.dropped_tail_tokens == written  # every line, each with its EOS
    assert len(PackedDataset(tmp_path / "packed")) == packed.sequences == written // 16
    with pytest.raises(ValueError, match="unknown corpus reader 'lines'"):
        small_recipe([{**notes, "reader": "lines"}])  # gone with the `with` block
    with pytest.raises(ProblemsError, match="cannot read 'txt' files"):
        prepare(small_recipe([notes]), tokenizer, tmp_path, tmp_path / "default")  # records


def test_the_reader_comes_from_the_recipe_or_the_data(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("one paper\n")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"id": "r1", "text": "one row"}) + "\n")

    def source(path: str, reader: str | None = None) -> Source:
        return Source(name="s", kind="papers", data={"path": path}, reader=reader, ratio=1)

    assert [d.id for d in read_source(source("folder"), tmp_path)] == ["a"]
    assert [d.id for d in read_source(source("folder", "text-folder"), tmp_path)] == ["a"]
    assert [d.id for d in read_source(source("rows.jsonl"), tmp_path)] == ["r1"]
    with pytest.raises(ProblemsError, match="expected a folder") as caught:
        list(read_source(source("rows.jsonl", "text-folder"), tmp_path))
    assert caught.value.problems[0].field == "sources.s.data"
    # an unset reader is left out of the recipe's dump, so its content hash is what it was
    assert "reader" not in source("folder").model_dump()
    assert source("folder", "text-folder").model_dump()["reader"] == "text-folder"


def test_an_unknown_reader_is_located_and_the_known_ones_listed(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "odd.yaml").write_text(
        "name: odd\ndescription: x\ncitation: x\n"
        "sources:\n"
        "  - name: a\n    kind: papers\n    data: {path: a.pdf}\n    reader: pdf\n    ratio: 1\n"
        "sequence_length: 8\nglobal_batch_sequences: 8\noptimizer: {lr: 1.0e-3}\n"
    )
    with pytest.raises(ProblemsError) as caught:
        load_recipes(tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "pretrain/odd.yaml",
        8,
        "sources[0].reader",
    )
    assert "unknown corpus reader 'pdf'; known: records, text-folder" in problem.message


def test_a_tokenizer_without_eos_is_refused_and_a_foreign_index_is_located(tmp_path):
    from types import SimpleNamespace

    no_eos = SimpleNamespace(eos_token_id=None, name_or_path="plain-bpe")
    with pytest.raises(Refused, match="tokenizer plain-bpe has no EOS token"):
        tokenize([Document("a", "1", "text")], no_eos)
    (tmp_path / "index.json").write_text(json.dumps({"format": 2}))
    with pytest.raises(ProblemsError, match="unknown packed-data format") as caught:
        PackedDataset(tmp_path)
    problem = caught.value.problems[0]
    assert (problem.file, problem.field) == (str(tmp_path / "index.json"), "format")


def test_hub_failures_are_a_located_problem_or_an_operation_failure(monkeypatch):
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    from medarena.data.records import read_records
    from medarena.schemas import HubData

    def missing(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'epfl-llm/guideline' doesn't exist on the Hub")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'epfl-llm/guidelines' on the Hub")

    hub = HubData(kind="hub", dataset="epfl-llm/guideline", split="train")
    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(ProblemsError, match="doesn't exist on the Hub") as caught:
        read_records(hub, Path("."))
    assert caught.value.problems[0].file == "hub:epfl-llm/guideline:train"
    assert caught.value.problems[0].field == "dataset"
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(OperationFailed, match="cannot read hub:epfl-llm/guideline:train"):
        read_records(hub, Path("."))
