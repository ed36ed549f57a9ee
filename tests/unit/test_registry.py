from pathlib import Path

import pytest

from medarena.errors import ProblemsError, UnknownName, WorkspaceNotFound
from medarena.registry import add_family, find_workspace, load_registry
from medarena.schemas import ModelFamily

NEW_CARD = {
    "name": "new-med",
    "display_name": "New Med",
    "developer": "a lab",
    "license": "apache-2.0",
    "variants": [
        {
            "name": "new-med-7b",
            "params_b": 7.0,
            "source": {"kind": "hub", "repo_id": "lab/new-med-7b"},
            "context_length": 4096,
            "chat_template": "chatml",
            "instruction_tuned": True,
            "parent": "tiny-medical-base",
        }
    ],
}


def problems_of(workspace: Path) -> list[str]:
    with pytest.raises(ProblemsError) as info:
        load_registry(workspace)
    return [str(problem) for problem in info.value.problems]


def test_shipped_catalogue_loads(workspace: Path):
    registry = load_registry(workspace)
    assert "tiny-medical" in registry.families
    assert registry.variant("tiny-medical-base").family.name == "tiny-medical"
    assert {"a100-80gb-sxm", "h100-80gb-sxm"} <= set(registry.hardware)


def test_all_problems_reported_at_once(workspace: Path):
    (workspace / "models" / "broken-a.yaml").write_text("name: broken-a\nvariants: [\n")
    (workspace / "models" / "broken-b.yaml").write_text(
        "name: broken-b\ndisplay_name: B\ndeveloper: x\nlicense: mit\nvariants:\n"
        "  - name: b-1\n    params_b: -1\n    context_length: 10\n"
        "    source: {kind: hub, repo_id: x/y}\n    chat_template: no-such-template\n"
    )
    found = problems_of(workspace)
    assert any(p.startswith("models/broken-a.yaml:") and "malformed YAML" in p for p in found)
    assert "models/broken-b.yaml:7: variants[0].params_b: Input should be greater than 0" in found


def test_cross_file_problems_are_located(workspace: Path):
    card = (workspace / "models" / "tiny-medical.yaml").read_text()
    clone = card.replace("name: tiny-medical\n", "name: tiny-clone\n").replace(
        "display_name: Tiny Medical (embedded)", "display_name: Clone"
    )
    clone += "    chat_template: nope\n    parent: ghost-variant\n"
    (workspace / "models" / "tiny-clone.yaml").write_text(clone)
    found = "\n".join(problems_of(workspace))
    # files load in name order, so the second definition (tiny-medical.yaml) is the one flagged
    assert (
        "models/tiny-medical.yaml:12: variants[0].name: variant 'tiny-medical-base' is "
        "already defined by family 'tiny-clone'" in found
    )
    assert "variants[0].chat_template: unknown chat template 'nope'; known: alpaca" in found
    assert "variants[0].parent: unknown parent variant 'ghost-variant'" in found


def test_family_name_must_match_file_name(workspace: Path):
    source = workspace / "models" / "tiny-medical.yaml"
    source.rename(workspace / "models" / "other-name.yaml")
    found = problems_of(workspace)
    assert found == [
        "models/other-name.yaml:3: name: 'tiny-medical' must match the file name 'other-name'"
    ]


def test_unknown_names_list_the_known_ones(workspace: Path):
    registry = load_registry(workspace)
    with pytest.raises(UnknownName, match=r"unknown model variant 'gpt-9'; known: .*tiny-medical"):
        registry.variant("gpt-9")
    with pytest.raises(UnknownName, match="chat template"):
        registry.chat_template("nope")


def test_workspace_discovery(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nested = workspace / "models" / "chat_templates"
    assert find_workspace(start=nested) == workspace
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WorkspaceNotFound, match="no medarena workspace"):
        find_workspace(start=empty)
    with pytest.raises(WorkspaceNotFound, match="has no models/ folder"):
        find_workspace(empty)
    monkeypatch.setenv("MEDARENA_WORKSPACE", str(workspace))
    assert find_workspace(start=empty) == workspace


def test_embedded_weights_live_in_the_state_folder(workspace: Path):
    registry = load_registry(workspace)
    variant = registry.variant("tiny-medical-base").variant
    assert registry.weights_location(variant) == str(
        workspace / ".medarena" / "models" / "tiny-medical-base"
    )


def test_add_family_writes_a_card_that_loads_back(workspace: Path):
    registry = load_registry(workspace)
    path = add_family(registry, ModelFamily.model_validate(NEW_CARD))
    assert path == workspace / "models" / "new-med.yaml"
    reloaded = load_registry(workspace)
    assert reloaded.families["new-med"] == ModelFamily.model_validate(NEW_CARD)
    assert reloaded.lineage("new-med-7b") == ["new-med-7b", "tiny-medical-base"]


def test_add_refuses_duplicates_and_leaves_files_alone(workspace: Path):
    registry = load_registry(workspace)
    before = (workspace / "models" / "tiny-medical.yaml").read_bytes()
    duplicate = {**NEW_CARD, "name": "tiny-medical"}
    with pytest.raises(ProblemsError, match="already exists"):
        add_family(registry, ModelFamily.model_validate(duplicate))
    assert (workspace / "models" / "tiny-medical.yaml").read_bytes() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chat_template": "no-such"}, "unknown chat template 'no-such'"),
        ({"parent": "ghost"}, "unknown parent variant 'ghost'"),
        ({"name": "tiny-medical-base"}, "already defined by family 'tiny-medical'"),
    ],
)
def test_add_checks_against_the_registry_and_writes_nothing(workspace, change, message):
    registry = load_registry(workspace)
    card = {**NEW_CARD, "variants": [{**NEW_CARD["variants"][0], **change}]}
    listing = sorted(p.name for p in (workspace / "models").iterdir())
    with pytest.raises(ProblemsError, match=message):
        add_family(registry, ModelFamily.model_validate(card))
    assert sorted(p.name for p in (workspace / "models").iterdir()) == listing


def test_an_invalid_card_does_not_cascade_and_its_references_are_still_checked(workspace: Path):
    card = workspace / "models" / "meditron.yaml"
    text = card.read_text().replace("params_b: 68.98", "params_b: -68.98", 1)
    text = text.replace(
        "  - name: meditron-7b-gptq\n", "  - name: meditron-7b-gptq\n    chat_template: chatlm\n"
    )
    card.write_text(text)
    found = problems_of(workspace)
    assert found == [
        "models/meditron.yaml:25: variants[1].params_b: Input should be greater than 0",
        "models/meditron.yaml:33: variants[2].chat_template: unknown chat template 'chatlm'; "
        "known: alpaca, chatml, llama-2, me-llama, med42, meditron-chatml, mistral-instruct, "
        "zephyr",
    ]  # and no "unknown variant 'meditron-7b'" from the published-results file


def test_generated_cards_are_a_second_layer_outside_models(workspace: Path):
    registry = load_registry(workspace)
    path = add_family(registry, ModelFamily.model_validate(NEW_CARD), generated=True)
    assert path == workspace / ".medarena" / "models" / "new-med.yaml"
    assert not (workspace / "models" / "new-med.yaml").exists()
    reloaded = load_registry(workspace)
    assert reloaded.files["families:new-med"] == ".medarena/models/new-med.yaml"
    assert reloaded.lineage("new-med-7b") == ["new-med-7b", "tiny-medical-base"]


def test_a_generated_card_cannot_shadow_a_curated_one(workspace: Path):
    curated = (workspace / "models" / "tiny-medical.yaml").read_text()
    generated = workspace / ".medarena" / "models"
    generated.mkdir(parents=True)
    (generated / "tiny-medical.yaml").write_text(curated)
    assert problems_of(workspace) == [
        ".medarena/models/tiny-medical.yaml: name: 'tiny-medical' is already defined by "
        "models/tiny-medical.yaml"
    ]
