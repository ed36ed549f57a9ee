"""The last step of a SLURM batch script (`python -m medarena.training.finish WORKSPACE RUN_DIR
STATUS`): after the ranks exited with STATUS, register the outputs as a direct launch does, or
mark the run stopped (the script submitted again resumes it)."""

from __future__ import annotations

import sys
from pathlib import Path

from medarena.errors import MedarenaError
from medarena.registry import load_registry
from medarena.training.contract import RunContract
from medarena.training.service import PreparedRun, mark_stopped, register_outputs


def finish(workspace: Path, run_dir: Path, status: int) -> str:
    """What happened, in one line; raises TrainingFailed when the ranks failed."""
    contract = RunContract.read(run_dir)
    if status != 0:
        mark_stopped(contract, status)
    registry = load_registry(workspace)
    prepared = PreparedRun(run_dir.name, run_dir, contract, resumed=False)
    done = register_outputs(registry, prepared)
    return (
        f"done: {done.tokens_seen:,} tokens; registered {', '.join(done.registered)} "
        f"(parent {done.base_variant}) from {run_dir}"
    )


def main(argv: list[str]) -> int:
    workspace, run_dir, status = argv
    try:
        print(finish(Path(workspace), Path(run_dir), int(status)), flush=True)
    except MedarenaError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
