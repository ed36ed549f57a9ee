"""Where a sweep stands, cell by cell (done / running / failed / pending, read from the runs
and the claims in the store), and what it would cost (`--plan`: items, tokens, GPU-hours or
API dollars, by the estimate `medarena reproduce --plan` uses)."""

from __future__ import annotations

from dataclasses import dataclass

from medarena.evaluate.reproduce import api_cost, estimate, item_tokens, mean_item_chars
from medarena.registry import Registry
from medarena.store import Store
from medarena.store.models import utcnow
from medarena.store.queries import COMPLETED
from medarena.sweep.cells import Cell, SweepCells

STATES = ("done", "running", "failed", "pending")


@dataclass(frozen=True)
class CellState:
    cell: Cell
    state: str  # one of STATES
    detail: str
    run_id: int | None


def cell_states(store: Store, cells: list[Cell]) -> list[CellState]:
    """Each cell's state: done (a completed run with its key), running (a live claim), failed
    (its last attempt failed), else pending (never started, interrupted, or its holder's
    claim lapsed)."""
    claims = store.claims([cell.key for cell in cells])
    now = utcnow()
    states = []
    for cell in cells:
        run = store.find_eval_run(cell.spec)
        claim = claims.get(cell.key)
        run_id = run.id if run else None
        if run is not None and run.status == COMPLETED:
            states.append(CellState(cell, "done", f"run {run.id}, {run.n_items} items", run_id))
            continue
        stored = f"{len(store.stored_item_ids(run.id))}/{cell.items} items" if run else ""
        if claim is not None and claim.live(now):
            holder = claim.holder
            where = f"{holder.host} pid {holder.pid}"
            where += f", SLURM job {holder.slurm_job}" if holder.slurm_job else ""
            states.append(CellState(cell, "running", f"{where}; {stored or 'starting'}", run_id))
        elif claim is not None and claim.error is not None:
            states.append(CellState(cell, "failed", claim.error, run_id))
        elif run is not None and run.status == "failed":
            states.append(CellState(cell, "failed", f"run {run.id} failed at {stored}", run_id))
        elif run is not None:
            states.append(
                CellState(cell, "pending", f"run {run.id} {run.status}, {stored}", run_id)
            )
        elif claim is not None:
            lapsed = f"the claim of {claim.holder.host} pid {claim.holder.pid} lapsed"
            states.append(CellState(cell, "pending", lapsed, None))
        else:
            states.append(CellState(cell, "pending", "", None))
    return states


def counts(states: list[CellState]) -> dict[str, int]:
    return {name: sum(state.state == name for state in states) for name in STATES}


@dataclass(frozen=True)
class CellEstimate:
    cell: Cell
    tokens: float
    gpu_hours: float | None  # None: an API model
    cost_usd: float | None  # an API model with declared prices


def estimates(registry: Registry, swept: SweepCells) -> list[CellEstimate]:
    """Tokens and GPU-hours (on the sweep's hardware profile) or API cost of every cell."""
    profile = registry.hardware_profile(swept.sweep.hardware)
    found = []
    for cell in swept.cells:
        variant = registry.variant(cell.variant).variant
        chars = mean_item_chars(swept.data(cell).items)
        if variant.source.kind == "api":  # billed per token; its size may be undisclosed
            tokens = cell.items * sum(item_tokens(cell.task, cell.options, chars))
            prices = getattr(variant.source, "prices", None)
            cost = api_cost(cell.task, cell.options, cell.items, chars, prices) if prices else None
            found.append(CellEstimate(cell, tokens, None, cost))
        else:
            params = variant.params_b * 1e9
            tokens, hours = estimate(cell.task, cell.options, cell.items, chars, params, profile)
            found.append(CellEstimate(cell, tokens, hours, None))
    return found
