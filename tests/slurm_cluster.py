"""A throwaway single-node SLURM cluster for tests and for trying medarena's SLURM paths.

Debian's `slurm-wlm` and `munge` packages provide the daemons; this writes a slurm.conf for this
machine (one node with its cores and memory, no cgroups, no accounting database), creates a
munge key, starts munged, slurmctld and slurmd as plain processes in a temporary folder (their
own sockets, ports, state and logs: no systemd, nothing under /etc), waits until `sinfo` shows
the node idle, and stops them all again. Clients find the cluster through $SLURM_CONF.

Without the packages the tests skip with the install command, unless $MEDARENA_REQUIRE_SLURM=1
(CI), where that is a failure instead. By hand:

    python -m tests.slurm_cluster      # starts one, prints `export SLURM_CONF=...`, Ctrl-C stops
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install -y --no-install-recommends slurm-wlm munge"
DAEMONS = ("munged", "slurmctld", "slurmd")
# the node is this machine under its own name: the name a job's SLURM_JOB_NODELIST carries must
# resolve (torchrun's rendezvous connects to it)
NODE = socket.gethostname().split(".")[0]
PARTITION = "debug"


@dataclass(frozen=True)
class Cluster:
    folder: Path
    conf: Path  # slurm.conf; clients read it through $SLURM_CONF

    def env(self) -> dict[str, str]:
        """This process's environment with the cluster's clients pointed at it."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def log(self, daemon: str) -> str:
        path = self.folder / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def missing() -> list[str]:
    """The daemons and clients this needs that are not installed."""
    needed = (*DAEMONS, "sbatch", "sinfo", "scancel", "squeue")
    return [name for name in needed if _which(name) is None]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mib() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return max(1024, total * 9 // 10)  # leave the system some room


def write_conf(folder: Path) -> Path:
    """slurm.conf for one node, this machine, the current user; state and logs under folder."""
    for sub in ("state", "spool", "log", "run"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    cpus, memory = os.cpu_count() or 1, _memory_mib()
    conf = folder / "slurm.conf"
    conf.write_text(
        f"""# written by tests/slurm_cluster.py: a private single-node cluster
ClusterName=medarena-test
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder / "run" / "munge.socket"}
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "run" / "slurmctld.pid"}
SlurmdPidFile={folder / "run" / "slurmd.pid"}
SlurmctldLogFile={folder / "log" / "slurmctld.log"}
SlurmdLogFile={folder / "log" / "slurmd.log"}
# no cgroups, no systemd: processes are tracked through /proc, tasks are not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=30
SchedulerType=sched/backfill
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory}
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf


def _start_munge(folder: Path) -> None:
    key = folder / "run" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    run = folder / "run"
    run.chmod(0o755)  # munged refuses a socket folder others can write
    subprocess.run(
        [
            _which("munged") or "munged",
            f"--socket={run / 'munge.socket'}",
            f"--key-file={key}",
            f"--pid-file={run / 'munged.pid'}",
            f"--log-file={folder / 'log' / 'munged.log'}",
            f"--seed-file={run / 'munged.seed'}",
            "--force",  # as root, and with /tmp's permissions
        ],
        check=True,
        capture_output=True,
    )


def _wait_idle(cluster: Cluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["sinfo", "-h", "-N", "-n", NODE, "-o", "%T"],
            env=cluster.env(),
            capture_output=True,
            text=True,
        )
        state = shown.stdout.strip()
        if shown.returncode == 0 and state == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"the SLURM node is not idle after {timeout:.0f} s (sinfo: {state!r});\n"
        f"slurmctld log:\n{cluster.log('slurmctld')[-2000:]}\n"
        f"slurmd log:\n{cluster.log('slurmd')[-2000:]}"
    )


def _stop(folder: Path, name: str) -> None:
    """Stop a daemon by the pid in its pid file and wait until it is gone."""
    pid_file = folder / "run" / f"{name}.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (ValueError, IndexError, ProcessLookupError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def unavailable() -> None:
    """Skip the calling test (no SLURM here), or fail it where $MEDARENA_REQUIRE_SLURM=1."""
    import pytest

    absent = ", ".join(missing())
    if os.environ.get("MEDARENA_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM is required here (MEDARENA_REQUIRE_SLURM=1); {absent}: {INSTALL}")
    pytest.skip(f"no SLURM here ({absent}): {INSTALL}; CI sets MEDARENA_REQUIRE_SLURM=1")


@contextmanager
def slurm_cluster(timeout: float = 60.0) -> Iterator[Cluster | None]:
    """Yield a running cluster, or None when the packages are not installed; every daemon is
    stopped (and its folder removed) on the way out, running jobs included."""
    if missing():
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="medarena-slurm-"))
    folder.chmod(0o755)
    cluster = Cluster(folder, write_conf(folder))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        stack.callback(_stop, folder, "munged")
        _start_munge(folder)
        env = cluster.env()
        stack.callback(_stop, folder, "slurmctld")
        # -i: ignore (no) saved state; -c: a clean start
        subprocess.run([_which("slurmctld") or "", "-c", "-i"], env=env, check=True)
        stack.callback(_stop, folder, "slurmd")
        subprocess.run([_which("slurmd") or "", "-N", NODE], env=env, check=True)
        _wait_idle(cluster, timeout)
        try:
            yield cluster
        finally:
            # cancel what is left so no job step outlives the daemons
            subprocess.run(["scancel", "--full", "-u", getpass.getuser()], env=env, check=False)


if __name__ == "__main__":
    if missing():
        raise SystemExit(f"missing {', '.join(missing())}: {INSTALL}")
    with slurm_cluster() as running:
        assert running is not None
        print(f"export SLURM_CONF={running.conf}   # Ctrl-C stops the cluster")
        with suppress(KeyboardInterrupt):
            signal.pause()
