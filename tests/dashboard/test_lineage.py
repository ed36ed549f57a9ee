"""The lineage tree: base -> continual pretraining -> instruction tuning, with scores."""

import sys

import pandas as pd

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "dashboard"))
from lineage import lineage_rows, root_of

VARIANTS = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5],
        "variant": ["base", "pretrained", "chat", "other-chat", "unrelated"],
        "parent_id": [None, 1, 2, 2, None],
        "produced_by_run_id": [None, 10, 11, None, None],
    }
)
RUNS = pd.DataFrame(
    {"run_id": [10, 11], "kind": ["pretrain", "instruct"], "recipe_name": ["mix", "lora"]}
)
SCORES = pd.DataFrame(
    {
        "variant": ["base", "chat", "chat"],
        "column": ["qa (loglik, 0-shot)", "qa (loglik, 0-shot)", "sum (generate, 0-shot)"],
        "value": [0.25, 0.5, 0.3],
    }
)


def test_root_is_found_from_any_node():
    assert root_of(VARIANTS, "chat") == "base"
    assert root_of(VARIANTS, "base") == "base"
    assert root_of(VARIANTS, "unrelated") == "unrelated"


def test_tree_depth_first_with_producers_and_scores():
    tree = lineage_rows(VARIANTS, RUNS, SCORES, "chat")
    assert list(tree["variant"]) == ["base", "pretrained", "chat", "other-chat"]
    assert list(tree["depth"]) == [0, 1, 2, 2]
    assert list(tree["node"]) == ["base", "└── pretrained", "    └── chat", "    └── other-chat"]
    assert list(tree["produced_by"]) == [
        "-",
        "pretrain mix (training run 10)",
        "instruct lora (training run 11)",
        "-",
    ]
    assert tree.set_index("variant").loc["chat", "sum (generate, 0-shot)"] == 0.3
    assert pd.isna(tree.set_index("variant").loc["pretrained", "qa (loglik, 0-shot)"])


def test_a_parent_cycle_does_not_loop_forever():
    cyclic = VARIANTS.assign(parent_id=[3, 1, 2, 2, None])
    assert root_of(cyclic, "chat") in {"base", "pretrained", "chat"}
