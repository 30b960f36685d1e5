"""A throwaway single-node SLURM cluster on loopback, for testing the ``slurm`` profile.

Uses Debian's packages (``apt-get install slurm-wlm munge``): a private munge daemon (own key
and socket), ``slurmctld`` and ``slurmd`` with a configuration written to a temporary folder,
partitions ``cpu`` and ``gpu`` (the profile's names) on one node ``localhost`` that declares
16 CPUs, 64 GB and one ``gpu`` gres (``SlurmdParameters=config_overrides``: a node of the
profile's size on a small machine; the gres has no device file, so jobs ask for a GPU, are
scheduled, and run on the CPU). No accounting database: job states come from ``squeue``,
kept for ``MinJobAge`` seconds. Everything it starts is stopped by :meth:`Cluster.stop`.

    python tests/slurm_cluster.py start /tmp/slurm   # prints the SLURM_CONF to export
    python tests/slurm_cluster.py stop /tmp/slurm
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def available() -> str | None:
    """``None`` when the daemons and clients are installed, else what is missing."""
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
               if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    return f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)" if missing else None


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, squeue, snakemake's executor)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}"}

    def _write_shims(self) -> None:
        """Client commands that find this cluster's configuration. Inside a job, Snakemake's
        jobstep plugin drops every ``SLURM_*`` variable (``SLURM_CONF`` too) before its nested
        ``srun``, which then looks for ``/etc/slurm/slurm.conf``; a real cluster has its
        configuration there, this throwaway one must not touch it. ``PATH`` survives."""
        bin_dir = self.root / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for cmd in ("srun", "sbatch", "squeue", "scancel", "sinfo", "scontrol", "sacct"):
            real = shutil.which(cmd)
            if real is None:
                continue
            shim = bin_dir / cmd
            shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {real} "$@"\n')
            shim.chmod(0o755)

    def _write_config(self) -> None:
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        self.conf.write_text(f"""\
ClusterName=photostyle-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")
        (r / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")  # a stand-in device
        self._write_shims()
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (r / "munge").chmod(0o700)

    def start(self, timeout: float = 60) -> "Cluster":
        self._write_config()
        r = self.root
        subprocess.run([_exe("munged"), "--force", f"--key-file={r}/munge/munge.key", f"--socket={self.socket}",
                        f"--pid-file={r}/munge/munged.pid", f"--log-file={r}/log/munged.log",
                        f"--seed-file={r}/munge/munged.seed"], check=True)
        env = self.env
        subprocess.run([_exe("slurmctld"), "-c", "-f", str(self.conf)], check=True, env=env)
        subprocess.run([_exe("slurmd"), "-f", str(self.conf), "-N", "localhost"], check=True, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env)
            states = set(out.stdout.split())  # one line per partition
            if out.returncode == 0 and states and states <= {"idle", "mixed", "allocated"}:
                return self
            time.sleep(1)
        logs = "\n".join(p.read_text()[-2000:] for p in (r / "log").glob("*.log"))
        self.stop()
        raise RuntimeError(f"the test SLURM did not come up within {timeout} s:\n{logs}")

    def stop(self) -> None:
        """Cancel remaining jobs, stop the daemons this cluster started (by their pid files)."""
        if self.conf.exists():
            subprocess.run(["scancel", "--full", "-u", os.environ.get("USER", "root")], capture_output=True,
                           env=self.env)
        for pidfile in (self.root / "slurmd.pid", self.root / "slurmctld.pid", self.root / "munge" / "munged.pid"):
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


if __name__ == "__main__":
    cmd, root = sys.argv[1], sys.argv[2]
    c = Cluster(root)
    if cmd == "start":
        c.start()
        print(f"export SLURM_CONF={c.conf}")
    else:
        c.stop()
