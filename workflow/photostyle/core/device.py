"""Device choice (CUDA when present, else CPU) and deterministic seeding."""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from photostyle.core.photo import PhotoLimits


_HELD_SLOTS: list = []  # open lock files, held for the life of the job process


def claim_slot(n_slots: int, lock_dir: str | os.PathLike, timeout_s: float = 3600.0, poll_s: float = 1.0) -> int:
    """Claim the first free of ``n_slots`` slots with an exclusive lock file per slot.

    The lock is held until the process exits (the OS releases it even after a crash), so
    concurrent jobs on one machine each get a different GPU.
    """
    import fcntl
    import time

    os.makedirs(lock_dir, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for i in range(n_slots):
            fh = open(os.path.join(lock_dir, f"gpu{i}.lock"), "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _HELD_SLOTS.append(fh)
            return i
        if time.monotonic() > deadline:
            raise RuntimeError(f"no free GPU among {n_slots} after {timeout_s:.0f} s (locks in {lock_dir})")
        time.sleep(poll_s)


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else CPU. ``cuda`` without a GPU is an error.

    Snakemake's ``gpu`` resource limits how many GPU jobs run at once but does not say which
    GPU a job gets. Unless a scheduler already restricted the visible devices
    (``CUDA_VISIBLE_DEVICES``, as SLURM does), a job claims the first free GPU through a lock
    file per device (``PHOTOSTYLE_GPU_LOCK_DIR``, default ``/tmp/photostyle-gpu-locks``).
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        if n > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
            lock_dir = os.environ.get("PHOTOSTYLE_GPU_LOCK_DIR", "/tmp/photostyle-gpu-locks")
            index = claim_slot(n, lock_dir)
        else:
            index = torch.cuda.current_device()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if preference == "cuda":
        raise RuntimeError("config device: cuda, but torch sees no CUDA device")
    return torch.device("cpu")


@dataclass(frozen=True)
class JobContext:
    """What every GPU-capable shard job sets up first: deterministic kernels, a device, the
    photo limits, and the provenance of its settings."""

    device: torch.device
    device_desc: str
    limits: "PhotoLimits"
    config_hash: str


def apply_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads in torch and in the Numba kernels (default: ``PHOTOSTYLE_THREADS``,
    which the CLI sets from the rule's ``threads``); returns the number in force."""
    n = n or int(os.environ.get("PHOTOSTYLE_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)
        if "numba" in sys.modules:  # already loaded: set it; else it reads the variable when a kernel loads it
            import numba

            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        else:
            os.environ["NUMBA_NUM_THREADS"] = str(n)
    return torch.get_num_threads()


def start_job(settings: dict) -> JobContext:
    from photostyle.core.schema import config_hash
    from photostyle.core.photo import PhotoLimits

    apply_threads()
    make_deterministic()
    # A job that was given no GPU (cli --gpu 0: its rule requested none) runs on the CPU.
    device = select_device("cpu" if os.environ.get("PHOTOSTYLE_CPU_ONLY") == "1" else settings["device"])
    return JobContext(device, describe_device(device), PhotoLimits.from_settings(settings), config_hash(settings))


def describe_device(device: torch.device) -> str:
    """What ran, for provenance: e.g. ``cuda:0 (NVIDIA H200)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def make_deterministic() -> None:
    """Ask torch for deterministic kernels (byte-identical reruns on the same hardware)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
