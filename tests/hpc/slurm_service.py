"""A private single-node SLURM (munge + slurmctld + slurmd) for the test-suite.

Debian's slurm-wlm 22.05 runs on one machine without systemd or cgroups
when munged gets a private key and socket and slurm.conf uses
``proctrack/linuxproc`` and ``task/none``.  Everything (config, key, state,
spool, logs, sockets) lives under one directory, so the service never touches
``/etc`` and can run next to anything else on the machine.

The apt packages are installed by ``deploy/ci/prepare_test_services.sh``;
:func:`unavailable_reason` says why this machine cannot run the service.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["SingleNodeSlurm", "unavailable_reason"]

_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")


def unavailable_reason() -> str | None:
    """Why a private SLURM cannot run here, or ``None`` when it can."""
    missing = [b for b in _BINARIES if shutil.which(b) is None]
    if missing:
        return ("SLURM not installed (missing " + ", ".join(missing)
                + "); run `bash deploy/ci/prepare_test_services.sh` as root")
    if os.geteuid() != 0:
        return "the private single-node SLURM runs slurmd as root; tests are not running as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _total_memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096  # pragma: no cover


class SingleNodeSlurm:
    """Start and stop a one-node SLURM cluster rooted at ``root``.

    Parameters
    ----------
    root : path
        Private directory for config, state, logs and sockets.
    cpus : int
        CPUs the node advertises (jobs of 1 core each can run ``cpus`` at once).
    partition : str
        Name of the single (default) partition.

    Attributes
    ----------
    env : dict
        Environment variables a SLURM client needs (``SLURM_CONF``).
    """

    def __init__(self, root: str | Path, cpus: int = 2, partition: str = "debug"):
        self.root = Path(root).absolute()
        self.cpus = cpus
        self.partition = partition
        self.node = "mitonode"
        self.conf = self.root / "slurm.conf"
        self._procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    # -- set-up -------------------------------------------------------------
    def _write_files(self) -> None:
        r = self.root
        for sub in ("munge", "state", "spool", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o755)  # the socket must be reachable; the key stays 0400
        key = r / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        mem = max(1024, _total_memory_mb() - 1024)
        self.conf.write_text(f"""\
ClusterName=mitotest
SlurmctldHost={socket.gethostname().split('.')[0]}(127.0.0.1)
MailProg=/bin/true
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / 'munge' / 'munge.socket'}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={self.cpus} RealMemory={mem} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        env = {**os.environ, **self.env}
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.root / 'log'}")

    def client(self, *argv: str, check: bool = True, timeout: float = 30) -> str:
        """Run a SLURM client command (``sinfo``, ``squeue``, ...) against this cluster."""
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, **self.env})
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr.strip()}")
        return out.stdout

    def start(self, timeout: float = 60) -> "SingleNodeSlurm":
        """Start munged, slurmctld and slurmd; wait until the node is idle."""
        self._write_files()
        m = self.root / "munge"
        self._spawn("munged", [
            "munged", "--foreground", "--force", f"--socket={m / 'munge.socket'}",
            f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
            f"--seed-file={m / 'munged.seed'}", f"--log-file={self.root / 'log' / 'munged.log'}",
        ])
        deadline = time.monotonic() + timeout
        while not (m / "munge.socket").exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("munged did not create its socket")
            time.sleep(0.1)
        # -i: ignore state from an earlier run in this directory
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)])
        while True:
            self._check_alive()
            out = self.client("sinfo", "-h", "-N", "-o", "%t", check=False)
            if out.strip() in ("idle", "mix", "alloc"):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"SLURM node not idle after {timeout}s (state {out.strip()!r}); "
                                   f"see {self.root / 'log'}")
            time.sleep(0.5)

    def submitted_jobs(self) -> int:
        """Number of jobs submitted to this controller so far (from its log)."""
        text = (self.root / "log" / "slurmctld.log").read_text(errors="replace")
        return text.count("_slurm_rpc_submit_batch_job")

    def cancel_all(self) -> None:
        """Cancel every job and wait until the queue is empty."""
        self.client("scancel", "--full", "-p", self.partition, check=False)
        deadline = time.monotonic() + 30
        while self.client("squeue", "-h", "-o", "%i", check=False).strip():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel jobs and stop the daemons (by their process ids)."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self.cancel_all()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> "SingleNodeSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
