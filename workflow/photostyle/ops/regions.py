"""Semantic regions: coarse groups, small-region merging, content<->style matching, soft masks.

Label maps hold coarse *group* ids (see ``config/segmentation_groups.yaml``), or, for the
weight-free ``kmeans`` segmentation, cluster ids.

Matching rules (documented in config/README.md):

* A content group is styled from the same group of the style photo, if the style photo has
  it and the pair passes the size checks: both regions have at least ``min_pixels`` pixels
  and their area fractions differ by at most ``max_area_ratio`` times (FastPhotoStyle uses
  > 10 px and < 100x).
* Else from the first group of its ``related`` list that the style photo has (and that
  passes the checks); else from the whole style photo (``*``).
* Before matching, regions under ``min_area`` (a fraction of the photo) merge into the first
  related group present in the same photo, else into the photo's largest region.
* Colour-coded masks (DPST's format, ``label_space`` ``colours``): regions match by equal colour;
  a colour the style photo lacks is styled from the whole style photo.
* Feature clusters (``label_space`` ``features``, the ``features`` segmenter): each label map
  carries its clusters' mean L2-normalised deep features (PNG text
  ``photostyle-region-features``); a content cluster takes the style cluster whose mean feature
  is most similar (cosine), among those that pass the size checks, else the whole style photo.
  Several content clusters may share a style cluster. Without the features (an older map), as
  k-means clusters.
* k-means clusters carry no meaning: clusters are matched by luminance rank (the content's
  darkest cluster takes the style's darkest, and so on; with different counts, by relative
  rank), which keeps the tonal order of the photo.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml
from PIL import Image

from photostyle.core.io import read_csv_dicts, resolve_repo_path
from photostyle.core.photo import sha256_bytes

if TYPE_CHECKING:
    import torch

WHOLE = "*"


@dataclass(frozen=True)
class GroupTable:
    groups: tuple[str, ...]
    related: dict[str, tuple[str, ...]]
    fine: dict[str, dict[str, str]]  # label set ("ade20k", "voc") -> class -> group

    def gid(self, name: str) -> int:
        return self.groups.index(name)

    def fine_to_group_ids(self, label_set: str, class_names: list[str]) -> np.ndarray:
        """Lookup table: fine class index -> group id."""
        mapping = self.fine[label_set]
        return np.array([self.gid(mapping.get(c, "other")) for c in class_names], dtype=np.uint8)


@lru_cache(maxsize=8)
def load_groups(path: str) -> GroupTable:
    with open(resolve_repo_path(path), encoding="utf-8") as fh:
        d = yaml.safe_load(fh)
    groups = tuple(d["groups"])
    related = {g: tuple(d.get("related", {}).get(g, ())) for g in groups}
    bad = {x for v in related.values() for x in v} - set(groups)
    bad |= {g for s in ("ade20k", "voc") for g in d.get(s, {}).values()} - set(groups)
    if bad:
        raise ValueError(f"{path}: unknown groups {sorted(bad)}; declared groups: {list(groups)}")
    return GroupTable(groups, related, {s: dict(d.get(s, {})) for s in ("ade20k", "voc")})


# Colour-coded masks of the research datasets (Deep Photo Style Transfer's 60 pairs,
# FastPhotoStyle's manual masks, WCT2's examples): nine colours, content and style regions
# matched by equal colour. DPST reads a pixel as a colour when every channel is within 0.1 of
# it (on [0, 1]); we do the same, so JPEG-compressed masks work.
MASK_COLOURS = {
    "blue": (0, 0, 255), "green": (0, 255, 0), "black": (0, 0, 0), "white": (255, 255, 255),
    "red": (255, 0, 0), "yellow": (255, 255, 0), "grey": (128, 128, 128), "lightblue": (0, 255, 255),
    "purple": (255, 0, 255),
}
COLOUR_TABLE = GroupTable(tuple(MASK_COLOURS), {c: () for c in MASK_COLOURS}, {})  # no colour is related to another


class UnknownMaskColours(ValueError):
    """A colour-coded mask has too many pixels far from every mask colour."""


def colour_mask_labels(rgb: np.ndarray, tolerance: float = 0.1, max_unmatched: float = 0.01,
                       edge_px: int = 8) -> np.ndarray:
    """``(H, W, 3)`` uint8 colour-coded mask -> ``(H, W)`` uint8 ids into :data:`MASK_COLOURS`.

    A pixel takes the colour whose every channel is within ``tolerance`` (fraction of 255, as
    DPST does). Pixels near no colour take the nearest one when they lie within ``edge_px`` of a
    region border (anti-aliasing, JPEG ringing: chroma blocks are up to 16 px); if more than
    ``max_unmatched`` of the mask is off-colour away from borders, the mask uses colours that
    are not mask colours, and :class:`UnknownMaskColours` names them."""
    from scipy.ndimage import maximum_filter, minimum_filter

    ref = np.array(list(MASK_COLOURS.values()), np.int16)  # (9, 3)
    dist = np.abs(rgb.astype(np.int16)[..., None, :] - ref).max(-1)  # (H, W, 9): largest channel difference
    labels = dist.argmin(-1).astype(np.uint8)
    far = dist.min(-1) > tolerance * 255
    if far.any():
        size = 2 * edge_px + 1
        border = maximum_filter(labels, size, mode="nearest") != minimum_filter(labels, size, mode="nearest")
        stray = far & ~border
        if stray.mean() > max_unmatched:
            cols, counts = np.unique(rgb[stray].reshape(-1, 3), axis=0, return_counts=True)
            top = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in cols[np.argsort(-counts)][:6]]
            raise UnknownMaskColours(
                f"{stray.mean():.1%} of the pixels are no mask colour (e.g. {', '.join(top)}); colour-coded masks "
                f"use {', '.join(f'{n}=#{r:02x}{g:02x}{b:02x}' for n, (r, g, b) in MASK_COLOURS.items())}")
    return labels


def merge_small_regions(labels: np.ndarray, table: GroupTable | None, min_area: float) -> np.ndarray:
    """Relabel regions under ``min_area`` of the photo into a related (or the largest) region."""
    labels = labels.copy()
    total = labels.size
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) <= 1:
            return labels
        small = [(c, i) for i, c in zip(ids, counts) if c < min_area * total]
        if not small:
            return labels
        _, victim = min(small)
        present = {int(i) for i, c in zip(ids, counts) if i != victim and c >= min_area * total}
        target = None
        if table is not None and victim < len(table.groups):
            for r in table.related.get(table.groups[victim], ()):
                if table.gid(r) in present:
                    target = table.gid(r)
                    break
        if target is None:
            others = [(c, i) for i, c in zip(ids, counts) if i != victim]
            target = int(max(others)[1])
        labels[labels == victim] = target


@dataclass
class Match:
    content: int
    style: int | str  # a style label id, or WHOLE
    reason: str  # "same", "related", "rank", "similar", "whole"


def _passes(c_px: int, s_px: int, c_total: int, s_total: int, min_pixels: int, max_ratio: float) -> bool:
    if c_px < min_pixels or s_px < min_pixels:
        return False
    fc, fs = c_px / c_total, s_px / s_total
    return max(fc, fs) / min(fc, fs) <= max_ratio


def match_groups(content: np.ndarray, style: np.ndarray, table: GroupTable, min_pixels: int = 10,
                 max_area_ratio: float = 100.0) -> list[Match]:
    """Match each group of the content label map to a group of the style map (rules above)."""
    c_ids, c_counts = np.unique(content, return_counts=True)
    s_ids, s_counts = np.unique(style, return_counts=True)
    s_px = dict(zip(s_ids.tolist(), s_counts.tolist()))
    matches = []
    for g, px in zip(c_ids.tolist(), c_counts.tolist()):
        def ok(sg):
            return sg in s_px and _passes(px, s_px[sg], content.size, style.size, min_pixels, max_area_ratio)

        if ok(g):
            matches.append(Match(g, g, "same"))
            continue
        name = table.groups[g] if g < len(table.groups) else ""
        related = next((table.gid(r) for r in table.related.get(name, ()) if ok(table.gid(r))), None)
        matches.append(Match(g, related, "related") if related is not None else Match(g, WHOLE, "whole"))
    return matches


def match_clusters(content_img: np.ndarray, content: np.ndarray, style_img: np.ndarray, style: np.ndarray) -> list[Match]:
    """k-means clusters: match by rank of mean luminance (relative rank when counts differ)."""
    def ranked(img, labels):
        luma = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        ids = np.unique(labels)
        return [i for _, i in sorted((luma[labels == i].mean(), int(i)) for i in ids)]

    c_rank, s_rank = ranked(content_img, content), ranked(style_img, style)
    out = []
    for r, cid in enumerate(c_rank):
        pos = 0 if len(c_rank) == 1 else r / (len(c_rank) - 1)
        out.append(Match(cid, s_rank[int(round(pos * (len(s_rank) - 1)))], "rank"))
    return out


def region_features(text: dict | None) -> dict[int, np.ndarray] | None:
    """Each cluster's mean feature from a label map's PNG text (``photostyle-region-features``), or None."""
    import json

    raw = (text or {}).get("photostyle-region-features")
    if not raw:
        return None
    return {int(k): np.asarray(v, np.float64) for k, v in json.loads(raw)["clusters"].items()}


def match_features(content: np.ndarray, c_feats: dict[int, np.ndarray], style: np.ndarray,
                   s_feats: dict[int, np.ndarray], min_pixels: int = 10, max_area_ratio: float = 100.0) -> list[Match]:
    """Feature clusters: each content cluster takes the style cluster of most similar mean feature
    (cosine; ties to the lower id) among those passing the size checks, else the whole style photo."""
    c_ids, c_counts = np.unique(content, return_counts=True)
    s_ids, s_counts = np.unique(style, return_counts=True)
    out = []
    for cid, cpx in zip(c_ids.tolist(), c_counts.tolist()):
        best, best_sim = None, -np.inf
        for sid, spx in zip(s_ids.tolist(), s_counts.tolist()):
            if cid not in c_feats or sid not in s_feats or not _passes(cpx, spx, content.size, style.size,
                                                                         min_pixels, max_area_ratio):
                continue
            a, b = c_feats[cid], s_feats[sid]
            sim = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
            if sim > best_sim + 1e-9:
                best, best_sim = sid, sim
        out.append(Match(cid, best, "similar") if best is not None else Match(cid, WHOLE, "whole"))
    return out


def describe(matches: list[Match], table: GroupTable | None) -> str:
    """``sky>sky;tree>ground(related);road>*`` for the index and the report."""
    def name(i):
        if i == WHOLE:
            return WHOLE
        return table.groups[i] if table is not None and i < len(table.groups) else f"c{i}"

    return ";".join(f"{name(m.content)}>{name(m.style)}" + ("" if m.reason in ("same", "rank", "similar") else f"({m.reason})")
                    for m in matches)


def match_labels(space: str, content: np.ndarray, content_img, content_text: dict | None, style: np.ndarray, style_img,
                 style_text: dict | None, seg: dict, table: GroupTable) -> tuple[list[Match], GroupTable | None]:
    """How a content label map's regions match a style label map's, by the label space's rule
    (images are needed for k-means clusters only; ``*_text``: the label maps' PNG text). Any
    array shape works: a pixel sample (``(N, 1)`` labels, ``(N, 1, 3)`` image) matches as its
    photo does, up to sampling (the grade stage, :mod:`photostyle.stages.grade`)."""
    if space == "features":
        cf, sf = region_features(content_text), region_features(style_text)
        if cf is not None and sf is not None:
            return match_features(content, cf, style, sf, seg["min_pixels"], seg["max_area_ratio"]), None
    if space in ("clusters", "features"):
        return match_clusters(content_img, content, style_img, style), None
    if space == "colours":  # colour-coded masks: equal colour, else the whole style photo
        return match_groups(content, style, COLOUR_TABLE, seg["min_pixels"], seg["max_area_ratio"]), COLOUR_TABLE
    return match_groups(content, style, table, seg["min_pixels"], seg["max_area_ratio"]), table


@dataclass
class MatchedMasks:
    """What a region-aware method receives.

    ``content_weights``: ``(K, H, W)`` float32 soft weights summing to 1 at every pixel;
    ``style_masks``: ``(K, h, w)`` bool, the style region matched to content region k (all
    True for a whole-photo fallback). Both are torch tensors on the method's device.
    """

    content_weights: "torch.Tensor"
    style_masks: "torch.Tensor"
    matches: list[Match] = field(default_factory=list)
    summary: str = ""
    blur_sigma: float = 0.0  # of the Gaussian that softened the content weights, in label-map pixels
    feather_px: float = 0.0  # reach of the edge-aware feathering of the weights (0: none), in label-map pixels


FEATHER_RANGE = 0.1  # colour difference (on [0, 1]) that stops the feathering: an edge of the photo


def soft_weights(labels: np.ndarray, ids: list[int], blur_sigma: float, guide: np.ndarray | None = None,
                 feather_px: float = 0.0) -> np.ndarray:
    """One-hot masks of ``ids`` blurred with a Gaussian (seam-free blending), normalised to sum 1.

    With ``guide`` (the content photo at the label map's size, ``(H, W, 3)``, uint8 or float in
    [0, 1]) and ``feather_px`` > 0 the masks are then feathered edge-aware: a domain-transform
    filter (:func:`photostyle.ops.domain_transform.domain_transform`, ``sigma_spatial =
    feather_px``, ``sigma_range =`` :data:`FEATHER_RANGE`) guided by the photo spreads each mask
    far where the photo is smooth and not across the photo's edges. A label border that is an
    edge of the photo stays sharp; one that cuts a smooth sky or gradient (k-means splits
    them) becomes a blend over ``feather_px``, so a region-wise transform draws no edge there."""
    from scipy.ndimage import gaussian_filter

    masks = np.stack([(labels == i).astype(np.float32) for i in ids])
    if blur_sigma > 0:
        masks = np.stack([gaussian_filter(m, blur_sigma, mode="nearest") for m in masks])
    if guide is not None and feather_px > 0 and len(ids) > 1:
        import torch

        from photostyle.ops.domain_transform import domain_transform

        g = torch.from_numpy(np.ascontiguousarray(guide, dtype=np.float32))
        g = (g / 255.0 if guide.dtype == np.uint8 else g).permute(2, 0, 1)[None]
        if tuple(g.shape[-2:]) != labels.shape:
            raise ValueError(f"guide {tuple(g.shape[-2:])} and label map {labels.shape} differ in size")
        masks = domain_transform(torch.from_numpy(masks)[None], g.contiguous(), feather_px, FEATHER_RANGE, 3)[0].numpy()
    masks = np.maximum(masks, 1e-6)
    return masks / masks.sum(axis=0, keepdims=True)


def build_masks(content_labels: np.ndarray, style_labels: np.ndarray, matches: list[Match], device,
                blur_fraction: float = 0.01, table: GroupTable | None = None, guide: np.ndarray | None = None,
                feather_fraction: float = 0.0) -> MatchedMasks:
    """The matched masks; with ``guide`` (the content photo) the content weights are feathered
    edge-aware over ``feather_fraction`` of the short side (:func:`soft_weights`)."""
    import torch

    # content regions that share a style region still get separate weights (same transform)
    ids = [m.content for m in matches]
    sigma = blur_fraction * min(content_labels.shape)
    feather = feather_fraction * min(content_labels.shape) if guide is not None else 0.0
    cw = torch.from_numpy(soft_weights(content_labels, ids, sigma, guide, feather)).to(device)
    sm = np.stack([np.ones_like(style_labels, dtype=bool) if m.style == WHOLE else style_labels == m.style
                   for m in matches])
    return MatchedMasks(cw, torch.from_numpy(sm).to(device), matches, describe(matches, table), sigma, feather)


class RegionSource:
    """Label maps of the segment stage, and the content<->style matching of each pair."""

    def __init__(self, seg: dict, segment_indexes: list[str]):
        self.seg = seg
        self.table = load_groups(seg["groups_file"])
        self.rows = {(r["kind"], r["photo_id"]): r for idx in segment_indexes for r in read_csv_dicts(idx)}
        # Style label maps are few and used for every photo: kept. Content label maps are used
        # by photo-major loops one photo at a time: only the current one is kept, so a job does
        # not hold a whole shard's label maps in memory.
        self._style: dict[str, tuple[np.ndarray, str]] = {}
        self._content: tuple[str, tuple[np.ndarray, str]] | None = None

    @staticmethod
    def _read(path: str) -> tuple[np.ndarray, str, dict]:
        data = Path(path).read_bytes()
        im = Image.open(io.BytesIO(data))
        return np.asarray(im), sha256_bytes(data), dict(getattr(im, "text", {}) or {})

    def labels(self, kind: str, pid: str):
        """(label map, sha256 of its file, its PNG text) or None when segmentation failed for the photo."""
        row = self.rows.get((kind, pid))
        if row is None or row["status"] != "ok":
            return None
        if kind == "style":
            if pid not in self._style:
                self._style[pid] = self._read(row["labels"])
            return self._style[pid]
        if self._content is None or self._content[0] != pid:
            self._content = (pid, self._read(row["labels"]))
        return self._content[1]

    def missing(self, pid: str, sid: str) -> str | None:
        """Why a label map of the pair is missing (the segment stage's error), or None."""
        for kind, i in (("content", pid), ("style", sid)):
            row = self.rows.get((kind, i))
            if row is None or row["status"] != "ok":
                return f"{kind} label map missing: {row['error'] if row else 'not segmented'}"
        return None

    def warnings(self, pid: str, sid: str) -> str:
        """What the segment stage warned about the pair's label maps (e.g. a resized map), or ""."""
        return "; ".join(w for kind, i in (("content", pid), ("style", sid))
                         if (w := (self.rows.get((kind, i)) or {}).get("warning") or ""))

    def segmenters(self, pid: str, sid: str) -> tuple[str, str]:
        """What segmented the pair's content and style photos (the segment index's ``segmenter``,
        e.g. ``kmeans (fallback: segformer-b2-ade20k weights unavailable)``; "" where not segmented)."""
        return tuple((self.rows.get((kind, i)) or {}).get("segmenter") or (self.rows.get((kind, i)) or {}).get("model", "")
                     for kind, i in (("content", pid), ("style", sid)))

    def usable(self, pid: str, sid: str) -> str | None:
        """Why the pair runs globally (no label map, mixed label spaces), or None if it can use regions."""
        if self.labels("content", pid) is None or self.labels("style", sid) is None:
            return "global (segmentation missing)"
        if self.rows[("content", pid)]["label_space"] != self.rows[("style", sid)]["label_space"]:
            return "global (label spaces differ)"
        return None

    def digest(self, pid: str, sid: str) -> str:
        """Identifies the two label maps (part of the reuse key of an output)."""
        if self.usable(pid, sid):
            return "none"
        return hashlib.sha256((self.labels("content", pid)[1] + self.labels("style", sid)[1]).encode()).hexdigest()[:16]

    def matches(self, pid: str, sid: str, content_img, style_img) -> tuple[list[Match], GroupTable | None]:
        """How the pair's regions are matched (images are needed for k-means clusters only)."""
        c, s = self.labels("content", pid), self.labels("style", sid)
        return match_labels(self.rows[("content", pid)]["label_space"], c[0], content_img, c[2], s[0], style_img, s[2],
                            self.seg, self.table)

    def masks(self, pid: str, sid: str, content_img, style_img, device):
        """Matched masks of one content/style pair, or None for a global transfer."""
        if self.usable(pid, sid):
            return None
        matches, table = self.matches(pid, sid, content_img, style_img)
        if len(matches) == 1 and matches[0].style == WHOLE:
            return None
        c, s = self.labels("content", pid)[0], self.labels("style", sid)[0]
        return build_masks(c, s, matches, device, self.seg["blur_fraction"], table, content_img,
                           self.seg.get("feather_fraction", 0.0))
