"""Quality of the stylisation methods on real photo pairs with hand-made masks.

    python benchmarks/quality.py                      # every variant, the five shared pairs
    python benchmarks/quality.py --variants wct_photo reinhard --megapixels 0.25 --out /tmp/quality

For each pair of ``../shared/eval/dpst-pairs`` (Deep Photo Style Transfer's examples with their
colour-coded masks; never copied into the project) and each variant (a method with its
settings, then the pipeline's refine step at the working size: optional smoothing, then the
domain-transform detail transfer with refine's defaults), it prints:

* ``ssim``: SSIM of the luminance against the content (structure kept);
* ``grad_ssim``: SSIM of the Sobel gradient magnitudes against the content's (edges kept; halos
  and streaks lower it where the content is flat);
* ``gram``: VGG-16 Gram distance to the style at relu1_1..relu5_1 (mean relative Frobenius
  distance; lower is closer to the style; the content's own distance is printed as ``content``);
* ``region_col``: per-region colour distance to the matched style region (sliced Wasserstein in
  CIELAB over the hand masks, area-weighted; the content's own is the ``content`` row);
* ``s/MP``: seconds per megapixel of the method alone (this machine, this run).

It writes a contact sheet per pair (content | style | each variant) to ``--out``, and a CSV of
every figure. Region-aware methods get the hand masks (matched by equal colour); every pair is
reported, nothing is tuned to one.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

SHARED = REPO.parent / "shared"
REFINE_DT = {"sigma_spatial": 60.0, "sigma_range": 1.0, "iterations": 3, "variant": "rf"}
GUIDED = {"mode": "guided", "guided_radius": 15, "guided_eps": 1e-2}
EXACT = {"mode": "exact", "lambda": 1e-4, "matting_eps": 1e-7, "tolerance": 1e-4, "max_iterations": 1000}

# name -> (method, params, smoothing settings or None)
VARIANTS = {
    "reinhard": ("reinhard", {}, None),
    "mkl": ("mkl", {}, None),
    "wct": ("wct", {}, None),
    "wct_photo": ("wct_photo", {}, None),
    "wct_photo+guided": ("wct_photo", {}, GUIDED),
    "wct_photo+exact": ("wct_photo", {}, EXACT),
    "adain": ("adain", {}, None),
    "gatys": ("gatys", {}, None),
    "dpst": ("dpst", {}, None),
    "quilting": ("quilting", {}, None),
}


def shared_weights() -> Path | None:
    p = SHARED / "weights"
    return p if p.is_dir() else None


def load_pair(root: Path, name: str, megapixels: float):
    from PIL import Image

    from photostyle.ops.regions import colour_mask_labels

    def img(kind, size=None, nearest=False):
        im = Image.open(root / kind / f"{name}.png").convert("RGB")
        if size is None:
            s = min(1.0, (megapixels * 1e6 / (im.width * im.height)) ** 0.5)
            size = (max(16, round(im.width * s)), max(16, round(im.height * s)))
        return np.asarray(im.resize(size, Image.NEAREST if nearest else Image.LANCZOS))

    c = img("content")
    s = img("style")
    c_seg = img("content_seg", (c.shape[1], c.shape[0]), nearest=True)
    s_seg = img("style_seg", (s.shape[1], s.shape[0]), nearest=True)
    try:
        return c, s, colour_mask_labels(c_seg), colour_mask_labels(s_seg)
    except ValueError:  # a palette of its own (in00): regions are the colours both masks share
        return c, s, *palette_labels(c_seg, s_seg)


def palette_labels(*segs: np.ndarray, min_share: float = 0.005) -> list[np.ndarray]:
    """Label maps of colour-coded masks whose palette is not the usual one: the colours that
    cover at least ``min_share`` of a mask form the palette, every pixel takes the nearest."""
    palette = set()
    for seg in segs:
        cols, counts = np.unique(seg.reshape(-1, 3), axis=0, return_counts=True)
        palette |= {tuple(c) for c, n in zip(cols, counts) if n >= min_share * counts.sum()}
    ref = np.array(sorted(palette), np.int32)
    return [np.abs(seg.astype(np.int32)[..., None, :] - ref).sum(-1).argmin(-1).astype(np.uint8) for seg in segs]


def grad_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.filters import sobel
    from skimage.metrics import structural_similarity

    from photostyle.ops.measures import _luma

    ga, gb = sobel(_luma(a)), sobel(_luma(b))
    rng = max(ga.max(), gb.max(), 1e-6)
    return float(structural_similarity(ga, gb, data_range=rng, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def region_colour(out, c_lab, style, s_lab, matches, dirs, n=4096, seed=0) -> float:
    from photostyle.ops.measures import lab_sample, projected_quantiles, swd_from_quantiles
    from photostyle.ops.regions import WHOLE

    total = acc = 0.0
    for m in matches:
        sel = c_lab == m.content
        ssel = np.ones_like(s_lab, bool) if m.style == WHOLE else s_lab == m.style
        if not sel.any() or not ssel.any():
            continue
        qo = projected_quantiles(lab_sample(out[sel][:, None], n, np.random.default_rng(seed)), dirs)
        qs = projected_quantiles(lab_sample(style[ssel][:, None], n, np.random.default_rng(seed)), dirs)
        acc += sel.sum() * swd_from_quantiles(qo, qs)
        total += sel.sum()
    return acc / total


def make_method(name: str, params: dict, device, weights_cfg: dict):
    from photostyle.methods import get_method

    cls = get_method(name)
    return cls.for_job({"params": params, "seed": 0, "weights": weights_cfg}, device, ["style"], "/nonexistent")


def run_variant(method, content, style, c_lab, s_lab, smoothing, device):
    import torch

    from photostyle.core.tensors import to_tensor, to_uint8
    from photostyle.ops.domain_transform import detail_transfer
    from photostyle.ops.regions import COLOUR_TABLE, build_masks, match_groups
    from photostyle.ops.smoothing import smooth

    ct, st = to_tensor(content, device), to_tensor(style, device)
    masks = None
    if method.uses_regions:
        masks = build_masks(c_lab, s_lab, match_groups(c_lab, s_lab, COLOUR_TABLE), device, table=COLOUR_TABLE)
    state = method.prepare_style(st, "style")
    t0 = time.perf_counter()
    with torch.no_grad() if not method.traces else torch.enable_grad():
        out = method(ct, state, masks)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        out = out.detach()
        if smoothing is not None:
            out = smooth(out, ct, smoothing)
        out = detail_transfer(out, ct, **REFINE_DT)
    return to_uint8(out), seconds


def contact_sheet(tiles: list[tuple[str, np.ndarray]], path: Path, height: int = 220) -> None:
    from PIL import Image, ImageDraw

    ims = []
    for label, a in tiles:
        im = Image.fromarray(a)
        im = im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS)
        canvas = Image.new("RGB", (im.width, height + 18), "white")
        canvas.paste(im, (0, 18))
        ImageDraw.Draw(canvas).text((3, 3), label, fill="black")
        ims.append(canvas)
    per_row = 4
    rows = [ims[i:i + per_row] for i in range(0, len(ims), per_row)]
    w = max(sum(i.width for i in r) + 4 * len(r) for r in rows)
    sheet = Image.new("RGB", (w, len(rows) * (height + 22)), "white")
    for r, row in enumerate(rows):
        x = 0
        for im in row:
            sheet.paste(im, (x, r * (height + 22)))
            x += im.width + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs-dir", type=Path, default=SHARED / "eval" / "dpst-pairs")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--pairs", nargs="+", default=None, help="pair names (default: all)")
    ap.add_argument("--megapixels", type=float, default=0.25, help="working size of each photo")
    ap.add_argument("--iterations", type=int, default=None, help="gatys/dpst optimiser steps per level")
    ap.add_argument("--out", type=Path, default=Path("/tmp/photostyle-quality"))
    a = ap.parse_args(argv)

    import torch

    from photostyle.nets.style_distance import GramDistance
    from photostyle.ops.measures import projections, ssim_luminance
    from photostyle.ops.regions import COLOUR_TABLE, match_groups

    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = torch.device("cpu")
    if not a.pairs_dir.is_dir():
        sys.exit(f"no evaluation pairs at {a.pairs_dir} (the shared folder beside the project)")
    sw = shared_weights()
    weights_cfg = {"mode": "auto", "dir": "weights", "download": False, "search": [str(sw)] if sw else []}
    gram = GramDistance(weights_cfg, 0, 256, device, network="vgg16")
    print(f"# style metric on {gram.provenance}")
    dirs = projections(32, 0)
    names = a.pairs or sorted(p.stem for p in (a.pairs_dir / "content").glob("*.png"))
    methods = {}
    rows = []
    for name in names:
        content, style, c_lab, s_lab = load_pair(a.pairs_dir, name, a.megapixels)
        matches = match_groups(c_lab, s_lab, COLOUR_TABLE)
        style_grams = gram.grams(style)
        tiles = [("content", content), ("style", style)]
        base = {"pair": name, "variant": "content", "ssim": 1.0, "grad_ssim": 1.0,
                "gram": gram.distance(content, style_grams),
                "region_col": region_colour(content, c_lab, style, s_lab, matches, dirs), "s_per_mp": 0.0}
        rows.append(base)
        for v in a.variants:
            mname, params, smoothing = VARIANTS[v]
            params = dict(params)
            if a.iterations and mname in ("gatys", "dpst"):
                params["iterations"] = a.iterations
            key = (mname, tuple(sorted(params.items())))
            if key not in methods:
                methods[key] = make_method(mname, params, device, weights_cfg)
            out, seconds = run_variant(methods[key], content, style, c_lab, s_lab, smoothing, device)
            row = {"pair": name, "variant": v, "ssim": ssim_luminance(out, content), "grad_ssim": grad_ssim(out, content),
                   "gram": gram.distance(out, style_grams),
                   "region_col": region_colour(out, c_lab, style, s_lab, matches, dirs),
                   "s_per_mp": seconds / (content.shape[0] * content.shape[1] / 1e6)}
            rows.append(row)
            tiles.append((v, out))
            print(f"{name:6s} {v:18s} ssim {row['ssim']:.3f} grad_ssim {row['grad_ssim']:.3f} "
                  f"gram {row['gram']:.3f} region_col {row['region_col']:.2f} {row['s_per_mp']:.1f} s/MP", flush=True)
        contact_sheet(tiles, a.out / f"{name}.png")
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "quality.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("\n# mean over pairs")
    print(f"{'variant':18s} {'ssim':>6s} {'grad':>6s} {'gram':>6s} {'reg_col':>7s} {'s/MP':>6s}")
    for v in ["content", *a.variants]:
        sel = [r for r in rows if r["variant"] == v]
        print(f"{v:18s} " + " ".join(f"{np.mean([r[k] for r in sel]):{wd}.{p}f}" for k, wd, p in
                                      (("ssim", 6, 3), ("grad_ssim", 6, 3), ("gram", 6, 3), ("region_col", 7, 2),
                                       ("s_per_mp", 6, 1))))
    print(f"\ncontact sheets and quality.csv in {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
