"""Recipe fidelity: every value of every shipped training recipe is sourced or marked as
medarena's choice, a provenance path must name a value, and both are reported at file:line."""

import re

import pytest
from pydantic import ValidationError

from medarena.errors import ProblemsError
from medarena.instruct.recipe import load_recipes as load_instruct
from medarena.pretrain.recipe import PretrainRecipe
from medarena.pretrain.recipe import load_recipes as load_pretrain
from medarena.value_provenance import Mark, mark_for, values
from tests.conftest import REPO

RECIPES = {
    **{f"pretrain/{name}": recipe for name, recipe in load_pretrain(REPO).items()},
    **{f"instruct/{name}": recipe for name, recipe in load_instruct(REPO).items()},
}


def test_the_shipped_recipes_are_all_here():
    assert set(RECIPES) == {
        "pretrain/gap-replay",
        "pretrain/me-llama",
        "pretrain/tiny-demo",
        "instruct/me-llama-lora",
        "instruct/meditron-medqa-sft",
        "instruct/tiny-demo",
    }


@pytest.mark.parametrize("key", sorted(RECIPES))
def test_every_value_of_a_shipped_recipe_is_sourced_or_marked(key: str):
    recipe = RECIPES[key]
    found = values(recipe)
    assert "optimizer.lr" in {value.path for value in found}  # the walk reaches the numbers
    unmarked = [value.path for value in found if mark_for(recipe.provenance, value.path) is None]
    assert unmarked == []
    assert recipe.provenance_gaps() == []


def test_demo_recipes_are_medarena_choices_throughout():
    for key in ("pretrain/tiny-demo", "instruct/tiny-demo"):
        recipe = RECIPES[key]
        marks = {mark_for(recipe.provenance, value.path) for value in values(recipe)}
        assert all(mark is not None and mark.medarena for mark in marks)


def source_of(key: str, path: str) -> str:
    mark = mark_for(RECIPES[key].provenance, path)
    assert mark is not None and mark.source, f"{key}: {path} is not sourced"
    return mark.source


def medarena_reason(key: str, path: str) -> str:
    mark = mark_for(RECIPES[key].provenance, path)
    assert mark is not None and mark.medarena, f"{key}: {path} is not marked as medarena's"
    return mark.medarena


def test_gap_replay_uses_table_1_and_the_card():
    gap = RECIPES["pretrain/gap-replay"]
    by_name = {source.name: source for source in gap.sources}
    assert (by_name["papers"].published_tokens, by_name["replay"].published_tokens) == (
        40.7e9,
        420e6,
    )
    assert {name: source.ratio for name, source in by_name.items()} == {
        "guidelines": 0.107,
        "pubmed-abstracts": 5.48,
        "papers": 40.7,
        "replay": 0.42,
    }
    assert "Table 1: 40.7B" in source_of("pretrain/gap-replay", "sources[papers].published_tokens")
    assert "Table 1: 420M" in source_of("pretrain/gap-replay", "sources[replay].ratio")
    for name in ("guidelines", "pubmed-abstracts"):
        assert "unconfirmed" in medarena_reason("pretrain/gap-replay", f"sources[{name}].ratio")
    assert "min lr 1e-6" in source_of("pretrain/gap-replay", "schedule.min_lr")
    assert "(70B)" in source_of("pretrain/gap-replay", "overrides[llama-2-70b].lr")
    assert "Megatron-LLM" in medarena_reason("pretrain/gap-replay", "deepspeed.zero_stage")
    assert "corpus id" in medarena_reason("pretrain/gap-replay", "cleaning.near_dedup_threshold")


def test_me_llama_follows_its_readme_and_marks_what_it_does_not_state():
    me = RECIPES["pretrain/me-llama"]
    assert me.published_tokens() == 129e9
    assert me.optimizer.lr == 8e-6 and me.schedule.warmup_ratio == 0.05
    assert "15 : 1 : 4" in source_of("pretrain/me-llama", "sources[general].ratio")
    assert "MIMIC-IV and MIMIC-CXR" in source_of("pretrain/me-llama", "sources[clinical-notes]")
    assert "PubMed Central and PubMed Abstracts" in source_of(
        "pretrain/me-llama", "sources[biomedical].data.path"
    )
    for path in ("optimizer.eps", "optimizer.grad_clip", "schedule.min_lr", "sequence_length"):
        assert "unconfirmed" in medarena_reason("pretrain/me-llama", path)
    assert "gradient accumulation" in medarena_reason("pretrain/me-llama", "global_batch_sequences")
    lora = "instruct/me-llama-lora"
    assert "3 epochs, learning rate 1e-5" in source_of(lora, "optimizer.lr")
    assert "unconfirmed" in medarena_reason(lora, "optimizer.betas")


def test_meditron_sft_trains_the_medqa_it_used_without_invented_reasoning():
    sft = RECIPES["instruct/meditron-medqa-sft"]
    [medqa] = sft.data
    assert (medqa.task, medqa.chain_of_thought) == ("medqa_5options", False)
    reason = medarena_reason("instruct/meditron-medqa-sft", "data[medqa-train].chain_of_thought")
    assert "issue #28" in reason
    assert "DEFAULT_EPOCHS = 3" in source_of("instruct/meditron-medqa-sft", "epochs")
    assert sft.overrides["meditron-70b"].sequence_length == 4096
    assert sft.system is None  # nor does its template add one (test_instruct_data)


def test_the_most_specific_mark_wins_and_star_covers_everything():
    recipe = PretrainRecipe.model_validate(
        {
            "name": "r",
            "description": "d",
            "citation": "c",
            "sources": [{"name": "web", "kind": "general", "data": {"path": "w"}, "ratio": 1}],
            "sequence_length": 8,
            "global_batch_sequences": 2,
            "optimizer": {"lr": 1e-3},
            "overrides": {"llama-3.1-8b": {"lr": 1e-4}},
            "provenance": {
                "*": {"medarena": "all"},
                "optimizer": {"source": "paper"},
                "optimizer.lr": {"medarena": "tuned"},
                "overrides[llama-3.1-8b].lr": {"source": "card"},
            },
        }
    )
    paths = {value.path for value in values(recipe)}
    assert {"sources[web].ratio", "overrides[llama-3.1-8b].lr", "optimizer.betas"} <= paths
    assert not {"name", "description", "citation", "sources[web].name"} & paths
    marks = recipe.provenance
    assert mark_for(marks, "optimizer.lr") == Mark(medarena="tuned")
    assert mark_for(marks, "optimizer.eps") == Mark(source="paper")
    assert mark_for(marks, "overrides[llama-3.1-8b].lr") == Mark(source="card")
    assert mark_for(marks, "sources[web].ratio") == Mark(medarena="all")
    assert mark_for({"optimizer": Mark(source="x")}, "optimizer_extra") is None


def test_marks_and_paths_are_validated():
    with pytest.raises(ValidationError, match="exactly one"):
        Mark(source="paper", medarena="mine")
    with pytest.raises(ValidationError, match="exactly one"):
        Mark()
    base = {
        "name": "r",
        "description": "d",
        "citation": "c",
        "sources": [{"name": "web", "kind": "general", "data": {"path": "w"}, "ratio": 1}],
        "sequence_length": 8,
        "global_batch_sequences": 2,
        "optimizer": {"lr": 1e-3},
    }
    with pytest.raises(ValidationError, match="provenance"):
        PretrainRecipe.model_validate({**base, "provenance": {"optimizer lr": {"source": "x"}}})


def test_provenance_leaves_the_content_hash_alone():
    for recipe in RECIPES.values():
        bare = recipe.model_copy(update={"provenance": {}})
        assert bare.content_hash() == recipe.content_hash()
    gap = RECIPES["pretrain/gap-replay"]
    changed = gap.model_copy(update={"epochs": 2.0})
    assert changed.content_hash() != gap.content_hash()


def planted_workspace(tmp_path, edit) -> str:
    """A workspace holding the shipped gap-replay recipe with `edit` applied to its text."""
    (tmp_path / "models").mkdir()
    (tmp_path / "pretrain").mkdir()
    text = (REPO / "pretrain" / "gap-replay.yaml").read_text()
    edited = edit(text)
    assert edited != text, "the plant must change the file"
    (tmp_path / "pretrain" / "gap-replay.yaml").write_text(edited)
    return edited


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_missing_mark_is_reported_at_the_value(tmp_path):
    text = planted_workspace(
        tmp_path,
        lambda text: re.sub(r"\n  checkpoint_every: \{medarena: [^\n]*", "", text),
    )
    with pytest.raises(ProblemsError) as caught:
        load_pretrain(tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "pretrain/gap-replay.yaml",
        line_of(text, "checkpoint_every: 500"),
        "checkpoint_every",
    )
    assert "neither a source nor a medarena mark" in problem.message


def test_a_path_that_names_no_value_is_reported_at_its_entry(tmp_path):
    text = planted_workspace(
        tmp_path,
        lambda text: text.replace(
            "  seed: {medarena:", "  optimizer.lrr: {source: x}\n  seed: {medarena:"
        ),
    )
    with pytest.raises(ProblemsError) as caught:
        load_pretrain(tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "pretrain/gap-replay.yaml",
        line_of(text, "optimizer.lrr"),
        "provenance.optimizer.lrr",
    )
    assert "names no value" in problem.message
