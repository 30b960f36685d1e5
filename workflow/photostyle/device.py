"""Device choice (CUDA when present, else CPU) and deterministic seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else CPU. ``cuda`` without a GPU is an error."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if preference == "cuda":
        raise RuntimeError("config device: cuda, but torch sees no CUDA device")
    return torch.device("cpu")


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
