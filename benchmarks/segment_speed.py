"""Segmentation throughput: photos/s per model at a 512 px short side (768x512 photos).

    python benchmarks/segment_speed.py [--photos 8] [--batch 4] [--models kmeans features]

Network weights are random (nothing is downloaded): speed does not depend on their values
(``features`` always runs on its shipped pretrained encoder).
Runs on CUDA when present, else CPU, and says which.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))
from conftest import smooth_photo  # noqa: E402
from photostyle.config import validate_config  # noqa: E402
from photostyle.core.device import describe_device, select_device  # noqa: E402
from photostyle.nets.segmenters import build_segmenter  # noqa: E402

MODELS = [("kmeans", {}), ("features", {}), ("segformer-ade20k", {"segformer_variant": "b0"}),
          ("segformer-ade20k", {"segformer_variant": "b2"}), ("deeplabv3", {})]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--models", nargs="*", default=None, help="only these (kmeans, features, segformer-ade20k-b0, ...)")
    args = ap.parse_args()
    device = select_device("auto")
    photos = [smooth_photo(512, 768, seed=i) for i in range(args.photos)]
    rows = [{"id": str(i)} for i in range(args.photos)]
    print(f"{args.photos} photos of 768x512, short side 512, batch {args.batch}, {describe_device(device)}")
    for model, extra in MODELS:
        name = model + (f"-{extra['segformer_variant']}" if extra else "")
        if args.models and name not in args.models:
            continue
        cfg = validate_config({"segmentation": {"model": model, "batch_size": args.batch, **extra},
                               "weights": {"mode": "random", "download": False}})
        seg = build_segmenter(cfg["segmentation"], cfg["weights"], 0, device)
        seg.segment_many(photos[:1], rows[:1])  # warm up
        t0 = time.perf_counter()
        for i in range(0, len(photos), args.batch):
            seg.segment_many(photos[i:i + args.batch], rows[i:i + args.batch])
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"  {name:22s} {args.photos / dt:7.2f} photos/s  ({dt / args.photos * 1000:7.1f} ms/photo)")


if __name__ == "__main__":
    main()
