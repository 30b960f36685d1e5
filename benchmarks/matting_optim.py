"""Matting Laplacian and optimisation methods (issue #5).

    python benchmarks/matting_optim.py [--side 512] [--iterations 10]

1. Matting-Laplacian matvec on a 1 MP photo (scikit-image's astronaut resized to 1155x866),
   three channels: our matrix-free operator (set-up once, then products) against an explicit
   scipy sparse matrix built with Levin et al.'s vectorised construction (build, then products),
   in the same run; also the largest relative difference between the two products.
2. Seconds per optimisation step (one L-BFGS iteration / Adam step) of ``gatys`` and ``dpst``
   at ``side`` x ``side`` on this machine (random VGG-19 weights: same cost as pretrained).

On CUDA (when present) part 1 and 2 run on the GPU as well.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from photostyle.config import validate_config  # noqa: E402
from photostyle.ops.matting import MattingLaplacian, sparse_laplacian  # noqa: E402
from photostyle.methods import get_method  # noqa: E402
from photostyle.core.tensors import to_tensor  # noqa: E402
from photostyle.core.weights import resolve  # noqa: E402


def timed(fn, n=3):
    best, out = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matvec_benchmark(devices) -> None:
    img = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1155, 866), Image.Resampling.LANCZOS))
    img = img.astype(np.float64) / 255
    h, w = img.shape[:2]
    rng = np.random.default_rng(0)
    p = rng.standard_normal((3, h, w)).astype(np.float32)
    print(f"matting Laplacian, {w}x{h} = {h * w / 1e6:.2f} MP, 3 channels")
    before = rss_mb()
    t_build_sp, L = timed(lambda: sparse_laplacian(img), n=1)
    t_mv_sp, ref = timed(lambda: np.stack([L @ p[c].ravel().astype(np.float64) for c in range(3)]))
    print(f"  scipy sparse : build {t_build_sp:7.2f} s, matvec {t_mv_sp:7.3f} s, nnz {L.nnz / 1e6:.0f} M,"
          f" peak RSS +{rss_mb() - before:.0f} MB")
    del L
    for dev in devices:
        guide = torch.from_numpy(img).permute(2, 0, 1).to(dev)
        t_build, op = timed(lambda: MattingLaplacian(guide), n=1)
        x = torch.from_numpy(p).to(dev)
        t_mv, got = timed(lambda: op.matvec(x))
        err = float(np.abs(got.cpu().numpy().reshape(3, -1) - ref).max() / np.abs(ref).max())
        print(f"  matrix-free {dev.type:4s}: set-up {t_build:6.2f} s, matvec {t_mv:7.3f} s"
              f" ({3 * h * w / t_mv / 1e6:.1f} MP/s), stored {op.z.numel() * op.z.element_size() / 2**20:.0f} MB,"
              f" max rel diff {err:.1e}")
        print(f"  ratio (scipy build + 1 matvec) / (ours set-up + 1 matvec): "
              f"{(t_build_sp + t_mv_sp) / (t_build + t_mv):.1f}x; matvec only: {t_mv_sp / t_mv:.1f}x")


def step_benchmark(devices, side: int, iterations: int) -> None:
    cfg = validate_config({})
    content = F.interpolate(to_tensor(skimage.data.astronaut()), size=(side, side), mode="bilinear", antialias=True)
    style = F.interpolate(to_tensor(skimage.data.coffee()), size=(side, side * 3 // 2), mode="bilinear", antialias=True)
    print(f"optimisation at {side}x{side} (scales 1, {iterations} steps, default layers and weights)")
    for dev in devices:
        for method in ("gatys", "dpst"):
            for opt, lr in (("lbfgs", 1.0), ("adam", 0.01)):
                p = dict(cfg["methods"][method], iterations=iterations, scales=1, work_side=side,
                         optimizer=opt, learning_rate=lr, log_every=10**6)
                cls = get_method(method)
                w = {"vgg19-imagenet": resolve("vgg19-imagenet", "random", "-", 0)}
                warm = cls(cls.parse(dict(p, iterations=1, work_side=64)), dev, seed=0, weights=w)
                warm(content.to(dev)[..., :64, :64], warm.prepare_style(style.to(dev), "s"))  # warm-up
                m = cls(cls.parse(p), dev, seed=0, weights=w)
                state = m.prepare_style(style.to(dev), "s")
                t, _ = timed(lambda: m(content.to(dev), state), n=1)
                evals = len(state.trace) - 1
                print(f"  {dev.type:4s} {method:5s} {opt:5s}: {t / iterations:6.3f} s per step"
                      f" ({evals / iterations:.2f} loss evaluations per step), {t:6.1f} s in all")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--skip-matvec", action="store_true")
    a = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: {[d.type for d in devices]}")
    if not a.skip_matvec:
        matvec_benchmark(devices)
    step_benchmark(devices, a.side, a.iterations)


if __name__ == "__main__":
    main()
