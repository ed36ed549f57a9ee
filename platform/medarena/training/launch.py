"""Launching the training processes: one process, several on one machine (torchrun or the
deepspeed launcher), or several machines (a hostfile-based deepspeed command and a SLURM batch
script written out for the user's cluster)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

LAUNCHERS = ("auto", "torchrun", "deepspeed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_command(
    module: str, run_dir: Path, procs: int, launcher: str
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start `procs` ranks of `module` on this machine."""
    env = dict(os.environ)
    port = str(free_port())
    if procs > 1:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // procs)))
    if procs == 1 and launcher == "auto":
        env.update(
            RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=port
        )
        return [sys.executable, "-m", module, str(run_dir)], env
    if launcher == "deepspeed":
        return [
            str(Path(sys.executable).parent / "deepspeed"),
            f"--num_gpus={procs}",
            f"--master_port={port}",
            "--module",
            module,
            str(run_dir),
        ], env
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        module,
        str(run_dir),
    ], env


def run_local(module: str, run_dir: Path, procs: int, launcher: str) -> int:
    command, env = local_command(module, run_dir, procs, launcher)
    return subprocess.run(command, env=env).returncode


def write_cluster_scripts(
    module: str,
    run_dir: Path,
    *,
    nodes: int,
    gpus_per_node: int,
    gpu: bool,
    hostfile: Path | None,
    job_name: str,
    workspace: Path,
) -> list[Path]:
    """`launch.sh` (deepspeed over a hostfile) and `slurm.sbatch`, checked with `bash -n`.

    The batch script runs the ranks through srun + torchrun (rendezvous from SLURM's
    environment), then `medarena.training.finish`, which registers the outputs as a direct
    launch does, or marks the run stopped. Resubmitting it resumes from the last checkpoint.
    The Python is this machine's (the same environment on the cluster's shared filesystem)."""
    run = shlex.quote(str(run_dir))
    python = shlex.quote(sys.executable)
    hosts = shlex.quote(str(hostfile)) if hostfile else "hostfile"
    launch = run_dir / "launch.sh"
    launch.write_text(
        "#!/usr/bin/env bash\n"
        f"# {nodes} nodes x {gpus_per_node} GPUs, DeepSpeed's launcher over ssh.\n"
        "# The hostfile lists one node per line: `<hostname> slots=<gpus>`.\n"
        "set -euo pipefail\n"
        f"deepspeed --hostfile {hosts} --num_nodes {nodes} --num_gpus {gpus_per_node} \\\n"
        f"  --module {module} {run}\n"
    )
    per_node = "GPU" if gpu else "CPU rank"
    sbatch = run_dir / "slurm.sbatch"
    sbatch.write_text(
        "#!/usr/bin/env bash\n"
        f"#SBATCH --job-name={job_name}\n"
        f"#SBATCH --nodes={nodes}\n"
        "#SBATCH --ntasks-per-node=1\n"
        + (f"#SBATCH --gpus-per-node={gpus_per_node}\n" if gpu else "")
        + "#SBATCH --exclusive\n"
        f"#SBATCH --output={run}/slurm-%j.out\n"
        f"# {nodes} node(s) x {gpus_per_node} {per_node}s; `sbatch` this file again (or the\n"
        "# same `medarena train ... --submit`) to resume from the last checkpoint.\n"
        "set -uo pipefail\n"
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
        "# a port of this job's own: two jobs sharing a node do not collide\n"
        "MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))\n"
        "export MASTER_ADDR MASTER_PORT\n"
        f"# one torchrun per node; it starts one rank per {per_node}\n"
        "status=0 stopped=\n"
        "# scancel (or the time limit) sends SIGTERM: carry on to record the run as interrupted\n"
        "trap 'stopped=1; echo \"SIGTERM: stopping the ranks\" >&2' TERM\n"
        f"srun {python} -m torch.distributed.run --nnodes {nodes} "
        f"--nproc_per_node {gpus_per_node} \\\n"
        '  --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" \\\n'
        '  --rdzv_id "$SLURM_JOB_ID" \\\n'
        f"  -m {module} {run} || status=$?\n"
        "# 128 + SIGTERM, whatever exit the stopped ranks gave\n"
        'if [ "$status" != 0 ] && [ -n "$stopped" ]; then status=143; fi\n'
        "# register the outputs (as a direct launch does), or mark the run stopped\n"
        f"exec {python} -m medarena.training.finish {shlex.quote(str(workspace))} {run} "
        '"$status"\n'
    )
    for script in (launch, sbatch):
        script.chmod(0o755)
        subprocess.run(["bash", "-n", str(script)], check=True)
    return [launch, sbatch]
