"""Lift quality for the methods that are not colour maps: PSNR of the lifted result against the
method run directly at full size, beside bilinear upsampling of the same working-size result.

    python benchmarks/lift_universal.py --methods wct adain photowct wct2 fast --full-mp 2 --work-mp 0.5
    python benchmarks/lift_universal.py --methods quilting gatys dpst munit --steps 50 --iterations 20

The methods with trained networks (the universal methods' decoders, ``fast``'s per-style net,
munit's translation networks, whose style domain is the tiny style folder) get them from the
pipeline's own ``train`` rule first, on a tiny generated collection, for a few steps
(``--steps``). The VGG encoders and loss networks have random weights here: no pretrained
weights can be downloaded on this machine. So the outputs are not styles but a CNN's spatially
varying result, the hard case for a lift (as ``fast`` in ``benchmarks/full_resolution.py``); the
figures bound the lift, not the methods' looks. gatys and dpst run ``--iterations`` optimiser
steps per level (100 by default in the pipeline); they, and quilting, compute at a bounded size
of their own (``work_side``, ``max_side``: 512 px) and bring the result up to the size they are
given, so their "direct run" is their own way of going up in size.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def method_params(root: Path, iterations: int) -> dict[str, dict]:
    """Parameters the benchmark sets: munit's style domain (the tiny style folder), and the
    optimisation methods' iterations per level (their default, 100, takes minutes per run here)."""
    return {"munit": {"domain": str(root / "styles")},
            "gatys": {"iterations": iterations}, "dpst": {"iterations": iterations}}


def train_artifacts(root: Path, methods: list[str], steps: int, iterations: int) -> Path:
    """The methods' trained networks (decoders, fast's per-style net, munit's translation
    networks), trained by the pipeline's train rule on a tiny collection."""
    from conftest import run_snakemake, save, smooth_photo

    for i in range(3):
        save(smooth_photo(64, 80, seed=i), root / "photos" / f"p{i}.jpg", quality=95)
    save(smooth_photo(64, 64, seed=9), root / "styles" / "s.png")
    cfg = {"content_dir": str(root / "photos"), "style_dir": str(root / "styles"), "device": "cpu",
           "stylize": {"methods": methods}, "decoders": {"steps": steps, "image_size": 32, "batch_size": 2},
           "train": {"steps": steps, "image_size": 64, "batch_size": 2, "style_size": 64},
           "translation": {"steps": steps, "image_size": 64},
           "methods": {m: p for m, p in method_params(root, iterations).items() if m in methods}}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_snakemake(root, path, "--cores", "2", "--until", "train_model")
    return root / "results" / "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["wct", "adain", "photowct", "wct2"])
    ap.add_argument("--full-mp", type=float, default=2.0, help="the full-resolution size, megapixels")
    ap.add_argument("--work-mp", type=float, default=0.5, help="the working size, megapixels")
    ap.add_argument("--steps", type=int, default=20, help="training steps of every trained network")
    ap.add_argument("--iterations", type=int, default=20, help="gatys/dpst optimiser steps per level")
    args = ap.parse_args()
    import torch
    from PIL import Image

    from conftest import method_for_job, smooth_photo, stylise
    from photostyle.core.collection import photo_id
    from photostyle.core.tensors import to_tensor, to_uint8
    from photostyle.ops import lift as L

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        needs_training = [m for m in args.methods if m not in ("gatys", "dpst", "quilting")]
        train_root = train_artifacts(Path(tmp), needs_training, args.steps, args.iterations) \
            if needs_training else Path(tmp) / "unused"
        print(f"networks trained for {args.steps} steps in {time.perf_counter() - t0:.0f} s (random VGG weights)")
        w = int(round(math.sqrt(args.full_mp * 1e6 * 3 / 2)))
        full = np.tile(smooth_photo(200, 300, seed=1), (math.ceil(w * 2 / 3 / 200), math.ceil(w / 300), 1))[: w * 2 // 3, :w]
        scale = math.sqrt(args.work_mp / args.full_mp)
        work = np.asarray(Image.fromarray(full).resize((round(full.shape[1] * scale), round(full.shape[0] * scale)),
                                                       Image.Resampling.LANCZOS))
        style = to_tensor(np.clip(smooth_photo(240, 320, seed=7) * np.array([1.1, 0.9, 0.6]), 0, 255).astype(np.uint8))
        print(f"{'method':9} {'full MP':>7} {'work MP':>7} {'lift s':>6} {'direct s':>8} {'PSNR lift':>9} {'PSNR bilin':>10}  model")
        for name in args.methods:
            sid = photo_id("s.png")  # the style's id, as ingest gave it to the train rule
            method = method_for_job(name, method_params(Path(tmp), args.iterations).get(name),
                                    train_root=train_root, styles=[sid])
            state = method.prepare_style(style, sid)
            stylised = to_uint8(stylise(method, to_tensor(work), style, state=state))
            t0 = time.perf_counter()
            model = L.fit(work, stylised)
            lifted = to_uint8(L.apply(model, full))
            t_lift = time.perf_counter() - t0
            t0 = time.perf_counter()
            direct = to_uint8(stylise(method, to_tensor(full), style, state=state))
            t_direct = time.perf_counter() - t0
            bilinear = np.asarray(Image.fromarray(stylised).resize(full.shape[1::-1], Image.Resampling.BILINEAR))
            kind = "upsample" if model.upsampled else \
                "+".join(k for k, v in (("lut", model.table), ("local", model.coef)) if v is not None)
            print(f"{name:9} {full.size / 3e6:7.2f} {work.size / 3e6:7.2f} {t_lift:6.2f} {t_direct:8.2f} "
                  f"{psnr(lifted, direct):9.2f} {psnr(bilinear, direct):10.2f}  {kind}", flush=True)


if __name__ == "__main__":
    main()
