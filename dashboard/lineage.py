"""The lineage tree of a variant (base -> continual pretraining -> instruction tuning), each node
with the training run that produced it and its latest scores. Pure pandas, no I/O."""

from __future__ import annotations

import pandas as pd


def root_of(variants: pd.DataFrame, name: str) -> str:
    """Walk parent links up from `name` to the variant nothing was trained from."""
    by_id = variants.set_index("id")
    row = variants.loc[variants["variant"] == name].iloc[0]
    seen = {row["id"]}
    while pd.notna(row["parent_id"]) and int(row["parent_id"]) not in seen:
        row = by_id.loc[int(row["parent_id"])]
        seen.add(int(row.name))
    return str(row["variant"])


def lineage_rows(
    variants: pd.DataFrame, runs: pd.DataFrame, scores: pd.DataFrame, name: str
) -> pd.DataFrame:
    """One row per variant in the tree that contains `name`, depth first from its root.

    `variants`: id, variant, parent_id, produced_by_run_id; `runs`: run_id, kind, recipe_name;
    `scores`: variant, column, value (one score per variant and column). Columns of the result:
    depth, node (indented for display), variant, produced_by, then one column per score column.
    """
    children: dict[int, list[pd.Series]] = {}
    for _, row in variants.sort_values("variant").iterrows():
        if pd.notna(row["parent_id"]):
            children.setdefault(int(row["parent_id"]), []).append(row)
    runs_by_id = runs.set_index("run_id") if len(runs) else runs
    table = scores.pivot_table(index="variant", columns="column", values="value", aggfunc="first")
    root = variants.loc[variants["variant"] == root_of(variants, name)].iloc[0]
    rows: list[dict[str, object]] = []
    stack: list[tuple[pd.Series, int]] = [(root, 0)]
    while stack:
        row, depth = stack.pop()
        produced = row["produced_by_run_id"]
        if pd.notna(produced) and int(produced) in runs_by_id.index:
            run = runs_by_id.loc[int(produced)]
            produced_by = f"{run['kind']} {run['recipe_name']} (training run {int(produced)})"
        else:
            produced_by = "-"
        variant = str(row["variant"])
        node = ("    " * (depth - 1) + "└── " if depth else "") + variant
        scored = table.loc[variant].to_dict() if variant in table.index else {}
        rows.append(
            {"depth": depth, "node": node, "variant": variant, "produced_by": produced_by, **scored}
        )
        # reversed, so the stack pops children in name order
        stack.extend((child, depth + 1) for child in reversed(children.get(int(row["id"]), [])))
    return pd.DataFrame(rows)
