"""How well automatic segmentation matches regions, scored against hand masks.

    python benchmarks/segment_quality.py                       # the five shared pairs
    python benchmarks/segment_quality.py --sweep               # also other cluster counts / position weights (means)

For each pair of ``../shared/eval/dpst-pairs`` (Deep Photo Style Transfer's examples with their
colour-coded hand masks; never copied into the project), each segmenter labels the content and
the style photo and its matching pairs each content region with a style region (or the whole
style photo), as the pipeline does (regions under ``segmentation.min_area`` merged first).

Score: a content pixel p with hand label h(p) draws its style from the matched style region
m(p); its score is the fraction of m(p)'s pixels whose hand label is h(p) -- the probability
that a style pixel drawn from p's matched region lies in the same hand region (hand regions of
content and style correspond by equal colour). The pair's score is the mean over its content
pixels; 1 = every content pixel styled from its own hand region only.

Rows:

* ``whole``: one region, the whole style photo (a global transfer);
* ``kmeans``: today's last-resort fallback, ``kmeans`` (Lab colour, 3 clusters) matched by
  luminance rank;
* ``features``: the ``features`` segmenter (distilled VGG-19 relu4_1, L2-normalised, plus
  position; each photo clustered on its own, clusters matched by mean-feature cosine);
* ``features-joint``: the same features, content and style clustered together (a cluster is
  matched to itself; a content cluster absent from the style takes the whole style photo):
  the alternative design, which would couple a content photo's labels to each style.

Default settings of the config schema throughout; nothing is tuned to a pair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))
from quality import SHARED, load_pair  # noqa: E402

PAIRS = SHARED / "eval" / "dpst-pairs"


def hand_score(c_hand: np.ndarray, s_hand: np.ndarray, c_regions: np.ndarray, s_regions: np.ndarray,
               matches) -> float:
    """Mean over content pixels of the share of the matched style region's pixels that have the
    content pixel's hand label (``matches``: :class:`photostyle.ops.regions.Match` list)."""
    from photostyle.ops.regions import WHOLE

    n = int(max(c_hand.max(), s_hand.max())) + 1
    total = 0.0
    for m in matches:
        sel = c_regions == m.content
        if not sel.any():
            continue
        s_sel = np.ones_like(s_regions, bool) if m.style == WHOLE else s_regions == m.style
        share = np.bincount(s_hand[s_sel].ravel(), minlength=n) / max(1, s_sel.sum())
        total += share[c_hand[sel]].sum()
    return total / c_hand.size


def run_whole(c, s):
    from photostyle.ops.regions import WHOLE, Match

    z = np.zeros(c.shape[:2], np.uint8)
    return z, np.zeros(s.shape[:2], np.uint8), [Match(0, WHOLE, "whole")]


def run_kmeans(seg_cfg, seed):
    from photostyle.nets.segmenters import KMeansSegmenter
    from photostyle.ops.regions import match_clusters, merge_small_regions

    km = seg_cfg["kmeans"]
    segmenter = KMeansSegmenter(km["clusters"], km["spatial_weight"], km["iterations"], seg_cfg["short_side"], seed)

    def run(c, s, name):
        cl = merge_small_regions(segmenter.segment(c, {"id": f"{name}-content"}), None, seg_cfg["min_area"])
        sl = merge_small_regions(segmenter.segment(s, {"id": f"{name}-style"}), None, seg_cfg["min_area"])
        return cl, sl, match_clusters(c, cl, s, sl)
    return run


def run_features(segmenter, seg_cfg):
    from photostyle.ops.regions import match_features, merge_small_regions, region_features

    def run(c, s, name):
        out = []
        for img, pid in ((c, f"{name}-content"), (s, f"{name}-style")):
            labels = merge_small_regions(segmenter.segment(img, {"id": pid}), None, seg_cfg["min_area"])
            feats = region_features({"photostyle-region-features": segmenter.region_features.pop(pid)})
            out.append((labels, feats))
        (cl, cf), (sl, sf) = out
        return cl, sl, match_features(cl, cf, sl, sf, seg_cfg["min_pixels"], seg_cfg["max_area_ratio"])
    return run


def run_joint(segmenter, seg_cfg):
    """Content and style features clustered together; a cluster matched to itself."""
    import torch

    from photostyle.core.photo import derive_seed
    from photostyle.nets.segmenters import _sq_dist, _upsampled_argmax, kmeans_torch
    from photostyle.ops.regions import WHOLE, Match, merge_small_regions

    def run(c, s, name):
        grids = [segmenter.features(img) for img in (c, s)]
        pts = [segmenter.points(g) for g in grids]
        _, cent = kmeans_torch(torch.cat(pts).double(), segmenter.k, segmenter.iterations,
                               derive_seed(segmenter.seed, "features"))
        cent = cent.float()
        labels = []
        for img, g, p in zip((c, s), grids, pts):
            d = _sq_dist(p, cent, (p * p).sum(1))
            lab = _upsampled_argmax(-d.T.reshape(len(cent), *g.shape[:2]), img.shape[:2])
            labels.append(merge_small_regions(lab, None, seg_cfg["min_area"]))
        cl, sl = labels
        present = set(np.unique(sl).tolist())
        matches = [Match(i, i if i in present else WHOLE, "same") for i in np.unique(cl).tolist()]
        return cl, sl, matches
    return run


def main(argv=None) -> int:
    import torch

    from photostyle.config import validate_config
    from photostyle.nets.segmenters import build_features

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default=str(PAIRS))
    ap.add_argument("--megapixels", type=float, default=1.0, help="pairs read at most this size (theirs: ~0.35)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="also features with other clusters / position weights")
    ap.add_argument("--json", default="", help="write every score here")
    args = ap.parse_args(argv)
    root = Path(args.pairs)
    names = sorted(p.stem for p in (root / "content").glob("*.png"))
    if not names:
        print(f"no pairs under {root}", file=sys.stderr)
        return 1
    cfg = validate_config({"segmentation": {"model": "features"}})
    seg_cfg = cfg["segmentation"]
    device = torch.device("cpu")
    fc = seg_cfg["features"]
    variants = {"whole": lambda c, s, name: run_whole(c, s), "kmeans": run_kmeans(seg_cfg, args.seed)}
    feats = build_features(seg_cfg, cfg["weights"], args.seed, device)
    variants["features"] = run_features(feats, seg_cfg)
    variants["features-joint"] = run_joint(feats, seg_cfg)
    if args.sweep:
        for k in (3, 5, 6):
            sc = {**seg_cfg, "features": {**fc, "clusters": k}}
            variants[f"features k={k}"] = run_features(build_features(sc, cfg["weights"], args.seed, device), sc)
        for w in (0.0, 1.0):
            sc = {**seg_cfg, "features": {**fc, "position_weight": w}}
            variants[f"features pos={w:g}"] = run_features(build_features(sc, cfg["weights"], args.seed, device), sc)
    print(f"features: clusters {fc['clusters']}, position_weight {fc['position_weight']}, short side "
          f"{seg_cfg['short_side']}; kmeans: clusters {seg_cfg['kmeans']['clusters']}; min_area {seg_cfg['min_area']}")
    scores: dict[str, dict[str, float]] = {v: {} for v in variants}
    seconds: dict[str, float] = {v: 0.0 for v in variants}
    for name in names:
        c, s, c_hand, s_hand = load_pair(root, name, args.megapixels)
        for v, run in variants.items():
            t0 = time.perf_counter()
            cl, sl, matches = run(c, s, name)
            seconds[v] += time.perf_counter() - t0
            scores[v][name] = hand_score(c_hand, s_hand, cl, sl, matches)
    width = max(len(v) for v in variants) + 2
    print(f"{'':{width}s}" + "".join(f"{n:>8s}" for n in names) + f"{'mean':>8s}{'s/pair':>8s}")
    for v in variants:
        row = [scores[v][n] for n in names]
        print(f"{v:{width}s}" + "".join(f"{x:8.3f}" for x in row) + f"{np.mean(row):8.3f}"
              + f"{seconds[v] / len(names):8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
