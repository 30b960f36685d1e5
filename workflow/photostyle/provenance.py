"""Provenance: what produced an output (config hash, code version, weights, device)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from . import __version__

PACKAGE_DIR = Path(__file__).resolve().parent

# Modules whose source decides each stage's output. Their hash goes into the rule's
# params, so a code change reruns exactly the stages it affects.
STAGE_MODULES = {
    "ingest": ["photo.py", "collection.py", "ingest.py"],
    "segment": ["photo.py", "segmentation.py", "regions.py", "weights.py", "tensors.py", "device.py"],
    "stylize": ["photo.py", "stylize.py", "tensors.py", "regions.py", "methods/__init__.py", "weights.py", "device.py"],
    "train": ["photo.py", "training.py", "fastnet.py", "trainloop.py", "vgg.py", "weights.py", "tensors.py",
              "device.py", "config.py"],
    "train_decoder": ["photo.py", "training.py", "universal.py", "trainloop.py", "vgg.py", "weights.py", "tensors.py",
                      "device.py", "config.py"],
    "refine": ["photo.py", "refine.py", "domain_transform.py", "_dt_kernels.py", "smoothing.py", "matting.py",
               "_matting_kernels.py", "tensors.py", "device.py"],
    "metrics": ["photo.py", "metrics.py", "regions.py", "style_distance.py", "vgg.py", "weights.py", "tensors.py"],
    "report": ["report.py"],
}


@lru_cache(maxsize=None)
def code_hash(*relpaths: str) -> str:
    h = hashlib.sha256()
    for rel in sorted(relpaths):
        path = PACKAGE_DIR / rel
        h.update(rel.encode())
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    return h.hexdigest()[:12]


def stage_code_version(stage: str, extra_modules: tuple[str, ...] = ()) -> str:
    """``<package version>+<hash of the stage's modules>``, e.g. ``0.1.0+3fa2c1d9e0b7``."""
    return f"{__version__}+{code_hash(*STAGE_MODULES[stage], *extra_modules)}"
