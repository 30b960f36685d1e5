"""Classical colour transfer (pure tensor functions; the methods are in :mod:`photostyle.methods.colour`): Reinhard et al. 2001 and Pitié & Kokaram's linear MKL (2007).

Both match global colour statistics of the content photo to those of the style photo:

* ``reinhard``: per-channel mean and standard deviation in Ruderman's decorrelated
  l-alpha-beta space (log LMS), as in "Color Transfer between Images" (or in RGB).
* ``mkl``: the linear Monge-Kantorovich map between the two Gaussian colour
  distributions, ``T = Sc^-1/2 (Sc^1/2 Ss Sc^1/2)^1/2 Sc^-1/2``, which makes the output's
  RGB mean and full covariance equal to the style's (Pitié & Kokaram, "The linear
  Monge-Kantorovitch linear colour mapping for example-based colour transfer").

Statistics are computed in float64; a per-style cache in ``state`` avoids recomputing the
style's statistics for every photo of a shard.

With matched region masks (segmentation stage), both are region-aware: region k of the content
(soft weights ``w_k``, summing to 1 at each pixel) is mapped with the statistics of its matched
style region, and the per-region results are blended with the same soft weights, so no seams
appear at region borders: ``out(x) = sum_k w_k(x) T_k(x)``.

Each ``T_k`` is affine in the method's colour space: ``T_k(c) = (c - shift) M^T + offset``. The
functions can return these maps (``with_map=True``) as a :class:`ColourMap`; the stylize stage
stores it beside the image (:data:`COLOUR_MAP_KEY`), and the lift applies it to the
full-resolution photo instead of fitting a colour model (:mod:`photostyle.ops.lift`), which
makes the lift of these methods exact.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

COLOUR_MAP_KEY = "photostyle-colour-map"  # PNG text chunk of a stylised image: its ColourMap (JSON)

# Reinhard et al. 2001, eq. 4 (RGB -> LMS) and eq. 6 (log LMS -> l-alpha-beta).
_RGB2LMS = torch.tensor(
    [[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]],
    dtype=torch.float64,
)
_LMS2LAB = torch.diag(torch.tensor([1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)], dtype=torch.float64)) @ torch.tensor(
    [[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]], dtype=torch.float64
)
_LMS_FLOOR = 1e-4  # log10 of 0 is undefined; black is clamped to this LMS value


def _pixels(image: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` -> ``(N, 3)`` float64."""
    return image[0].reshape(3, -1).T.double()


def _unpixels(pix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return pix.T.reshape(like.shape).to(like.dtype)


def rgb_to_lalphabeta(pix: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` RGB -> l-alpha-beta (float64)."""
    lms = pix @ _RGB2LMS.to(pix.device).T
    return torch.log10(lms.clamp_min(_LMS_FLOOR)) @ _LMS2LAB.to(pix.device).T


def lalphabeta_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    lms = torch.pow(10.0, lab @ torch.linalg.inv(_LMS2LAB).to(lab.device).T)
    return lms @ torch.linalg.inv(_RGB2LMS).to(lab.device).T


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


SPACES = {"lalphabeta": (rgb_to_lalphabeta, lalphabeta_to_rgb), "rgb": (_identity, _identity)}


@dataclass
class RegionMap:
    """One region's colour map in a colour space: ``(c - shift) @ matrix.T + offset``; ``labels``
    the content label values it covers (None: every pixel)."""

    labels: tuple[int, ...] | None
    shift: torch.Tensor  # (3,) float64
    matrix: torch.Tensor  # (3, 3)
    offset: torch.Tensor  # (3,)

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.shift) @ self.matrix.T + self.offset


@dataclass
class ColourMap:
    """What a global colour method did to a photo: per region, an affine map in ``space``
    (:data:`SPACES`), then clipping to [0, 1] and a blend with the content by ``strength``. At a
    pixel inside region k it equals the method's result; at region borders the method blends
    neighbouring regions' maps with soft weights: the label masks blurred by ``blend_sigma`` and
    feathered edge-aware over ``blend_feather`` px guided by the content
    (:func:`photostyle.ops.regions.soft_weights`), which the lift recomputes from the label map
    and the working-size content."""

    space: str
    strength: float
    regions: list[RegionMap]
    blend_sigma: float | None = None  # region-aware: the maps blended with label masks softened by this Gaussian
    blend_feather: float = 0.0  # ... and feathered edge-aware over this many px (0: not)

    def to_json(self) -> str:
        return json.dumps({"space": self.space, "strength": self.strength, "blend_sigma": self.blend_sigma,
                           "blend_feather": self.blend_feather, "regions": [
            {"labels": None if r.labels is None else list(r.labels), "shift": r.shift.tolist(),
             "matrix": r.matrix.tolist(), "offset": r.offset.tolist()} for r in self.regions]})

    @classmethod
    def from_json(cls, text: str) -> "ColourMap":
        d = json.loads(text)
        t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
        return cls(d["space"], float(d["strength"]), [
            RegionMap(None if r["labels"] is None else tuple(r["labels"]), t(r["shift"]), t(r["matrix"]), t(r["offset"]))
            for r in d["regions"]], d.get("blend_sigma"), float(d.get("blend_feather", 0.0)))

    @classmethod
    def from_png(cls, data: bytes) -> "ColourMap | None":
        """The map stored in a stylised PNG's text (:data:`COLOUR_MAP_KEY`), or None."""
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            text = (getattr(im, "text", None) or {}).get(COLOUR_MAP_KEY)
        return cls.from_json(text) if text else None

    def region_of(self, label: int) -> RegionMap | None:
        """The map of content label ``label`` (the global map covers every label), or None."""
        for r in self.regions:
            if r.labels is None or label in r.labels:
                return r
        return None

    def apply(self, pix: torch.Tensor, region: RegionMap) -> torch.Tensor:
        """``(N, 3)`` RGB in [0, 1] through ``region``'s map (float64): the method's result inside that region."""
        fwd, inv = SPACES[self.space]
        pix = pix.double()
        return torch.lerp(pix, inv(region(fwd(pix))).clamp(0.0, 1.0), self.strength)


def reinhard_transfer(content: torch.Tensor, style: torch.Tensor, colour_space: str = "lalphabeta",
                      style_stats=None, clip: bool = True, with_map: bool = False):
    """Match per-channel mean and std of ``content`` to ``style`` in ``colour_space`` (and, with
    ``with_map``, return the :class:`ColourMap` too)."""
    fwd, inv = SPACES[colour_space]
    c = fwd(_pixels(content))
    if style_stats is None:
        s = fwd(_pixels(style))
        style_stats = (s.mean(0), s.std(0, unbiased=False))
    mu_s, sd_s = style_stats
    mu_c, sd_c = c.mean(0), c.std(0, unbiased=False)
    rmap = RegionMap(None, mu_c, torch.diag(sd_s / sd_c.clamp_min(1e-8)), mu_s)
    rgb = _unpixels(inv(rmap(c)), content)
    out = rgb.clamp(0.0, 1.0) if clip else rgb
    return (out, ColourMap(colour_space, 1.0, [rmap])) if with_map else out


def _sqrtm_psd(m: torch.Tensor, inverse: bool = False, eps: float = 0.0) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    vals = vals.clamp_min(0.0) + eps
    d = vals.rsqrt() if inverse else vals.sqrt()
    return (vecs * d) @ vecs.T


def mean_cov(pix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = pix.mean(0)
    x = pix - mu
    return mu, (x.T @ x) / pix.shape[0]


def mkl_transfer(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-6,
                 style_stats=None, clip: bool = True, with_map: bool = False):
    """Linear Monge-Kantorovich colour map: output mean/covariance equal the style's (and, with
    ``with_map``, the :class:`ColourMap`)."""
    c = _pixels(content)
    mu_c, cov_c = mean_cov(c)
    mu_s, cov_s = style_stats if style_stats is not None else mean_cov(_pixels(style))
    rmap = RegionMap(None, mu_c, _mkl_map(mu_c, cov_c, mu_s, cov_s, eps), mu_s)
    rgb = _unpixels(rmap(c), content)
    out = rgb.clamp(0.0, 1.0) if clip else rgb
    return (out, ColourMap("rgb", 1.0, [rmap])) if with_map else out


def weighted_mean_cov(pix: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of ``(N, 3)`` pixels under weights ``w`` ``(N,)``."""
    w = w.double() / w.double().sum().clamp_min(1e-12)
    mu = (pix * w[:, None]).sum(0)
    x = pix - mu
    return mu, (x * w[:, None]).T @ x


def _mkl_map(mu_c, cov_c, mu_s, cov_s, eps):
    eye = torch.eye(3, dtype=cov_c.dtype, device=cov_c.device)
    cov_c, cov_s = cov_c + eps * eye, cov_s + eps * eye
    c_half, c_inv_half = _sqrtm_psd(cov_c), _sqrtm_psd(cov_c, inverse=True)
    return c_inv_half @ _sqrtm_psd(c_half @ cov_s @ c_half) @ c_inv_half


def reinhard_map(content_stats, style_stats) -> RegionMap:
    """Reinhard's map between two (mean, covariance) pairs in a colour space: per-channel mean and
    standard deviation (the covariances' diagonals)."""
    (mu_c, cov_c), (mu_s, cov_s) = content_stats, style_stats
    sd_c, sd_s = cov_c.diagonal().clamp_min(0).sqrt(), cov_s.diagonal().clamp_min(0).sqrt()
    return RegionMap(None, mu_c, torch.diag(sd_s / sd_c.clamp_min(1e-8)), mu_s)


def mkl_map(content_stats, style_stats, eps: float = 1e-6) -> RegionMap:
    """The linear Monge-Kantorovich map between two (mean, covariance) pairs in RGB."""
    (mu_c, cov_c), (mu_s, cov_s) = content_stats, style_stats
    return RegionMap(None, mu_c, _mkl_map(mu_c, cov_c, mu_s, cov_s, eps), mu_s)


def regionwise(content: torch.Tensor, style: torch.Tensor, masks, state: dict, key: str, space: str,
               region_map) -> tuple[torch.Tensor, list[RegionMap]]:
    """``sum_k w_k * T_k(content pixels in space)``, clipped, and the maps ``T_k``.

    ``region_map(c, w, s)`` makes the :class:`RegionMap` of region k from all content pixels
    ``c`` (in ``space``) under weights ``w`` and the matched style region's pixels ``s``
    (cached per style region).
    """
    to_space, from_space = SPACES[space]
    c = to_space(_pixels(content))
    s_all = _pixels(style)
    weights = masks.content_weights.reshape(len(masks.matches), -1)
    cache = state.setdefault("region_stats", {})
    out = torch.zeros_like(c)
    maps = []
    for k, match in enumerate(masks.matches):
        w = weights[k].to(c.device)
        if float(w.sum()) < 1e-6:
            continue
        skey = (key, match.style)
        if skey not in cache:
            sel = masks.style_masks[k].reshape(-1).to(s_all.device)
            cache[skey] = to_space(s_all[sel])
        rmap = region_map(c, w, cache[skey])
        rmap.labels = (int(match.content),)
        maps.append(rmap)
        out += w.double()[:, None] * rmap(c)
    return _unpixels(from_space(out), content).clamp(0.0, 1.0), maps


def _blend(result: torch.Tensor, content: torch.Tensor, strength: float) -> torch.Tensor:
    return result if strength >= 1.0 else torch.lerp(content, result, strength)


def _result(out: torch.Tensor, content: torch.Tensor, strength: float, space: str, maps: list[RegionMap], masks,
            with_map: bool):
    """A colour method's result blended by ``strength``, with its :class:`ColourMap` if asked
    (the region maps' blend is the masks' Gaussian)."""
    out = _blend(out, content, strength)
    if not with_map:
        return out
    return out, ColourMap(space, min(strength, 1.0), maps, masks.blur_sigma if masks is not None else None,
                          masks.feather_px if masks is not None else 0.0)


def _style_stats(state: dict, key: tuple, style: torch.Tensor, fn):
    """Statistics of the style photo, computed once per style (``state`` lives for one style)."""
    cache = state.setdefault("style_stats", {})
    if key not in cache:
        cache[key] = fn(style)
    return cache[key]


def reinhard(content: torch.Tensor, style: torch.Tensor, masks=None, *, colour_space: str = "lalphabeta",
             strength: float = 1.0, state: dict | None = None, with_map: bool = False):
    """Reinhard transfer of ``(1, 3, H, W)`` content to ``(1, 3, h, w)`` style, per matched region
    when ``masks`` are given; ``state`` caches the style's statistics (one dict per style).
    ``with_map``: returns ``(image, ColourMap)``."""
    state = {} if state is None else state
    fwd = SPACES[colour_space][0]
    if masks is not None:
        def region_map(c, w, s):
            return reinhard_map(weighted_mean_cov(c, w), mean_cov(s))

        out, maps = regionwise(content, style, masks, state, "reinhard:" + colour_space, colour_space, region_map)
    else:
        def stats(s):
            p = fwd(_pixels(s))
            return p.mean(0), p.std(0, unbiased=False)

        st = _style_stats(state, ("reinhard", colour_space), style, stats)
        out, cmap = reinhard_transfer(content, style, colour_space, style_stats=st, with_map=True)
        maps = cmap.regions
    return _result(out, content, strength, colour_space, maps, masks, with_map)


def mkl(content: torch.Tensor, style: torch.Tensor, masks=None, *, eps: float = 1e-6, strength: float = 1.0,
        state: dict | None = None, with_map: bool = False):
    """Linear Monge-Kantorovich transfer, per matched region when ``masks`` are given.
    ``with_map``: returns ``(image, ColourMap)``."""
    state = {} if state is None else state
    if masks is not None:
        def region_map(c, w, s):
            return mkl_map(weighted_mean_cov(c, w), mean_cov(s), eps)

        out, maps = regionwise(content, style, masks, state, "mkl", "rgb", region_map)
    else:
        st = _style_stats(state, ("mkl",), style, lambda s: mean_cov(_pixels(s)))
        out, cmap = mkl_transfer(content, style, eps=eps, style_stats=st, with_map=True)
        maps = cmap.regions
    return _result(out, content, strength, "rgb", maps, masks, with_map)


# --- shared transforms: one map per folder or collection (stylize.scope) --------------------
# Photo scope fits each photo's map to its own statistics, so a dark frame and a bright frame
# of one scene both end at the style's mean. Folder and collection scope fit one map on the
# pooled statistics of a deterministic pixel sample of every photo of the folder (collection)
# and apply it to each photo: their differences pass through the same affine map, so order
# and spacing of exposures survive. Region-aware forms pool per matched group: every content
# region matched to the same style region contributes to that group's statistics.

GLOBAL = "global"  # the pooled group of every sampled pixel (content) or every pixel (style): the global map


class PooledStats:
    """Running count, sum and sum of outer products of ``(N, 3)`` pixels per group (float64);
    ``add`` in a fixed order gives byte-identical results."""

    def __init__(self):
        self.n: dict[str, float] = {}
        self.s1: dict[str, torch.Tensor] = {}
        self.s2: dict[str, torch.Tensor] = {}

    def _sums(self, group: str, n: float, s1: torch.Tensor, s2: torch.Tensor) -> None:
        if group not in self.n:
            self.n[group], self.s1[group], self.s2[group] = 0.0, torch.zeros(3, dtype=torch.float64), \
                torch.zeros(3, 3, dtype=torch.float64)
        self.n[group] += n
        self.s1[group] += s1
        self.s2[group] += s2

    def add(self, group: str, pix: torch.Tensor) -> None:
        pix = pix.double()
        self._sums(group, pix.shape[0], pix.sum(0), pix.T @ pix)

    def merge(self, other: "PooledStats") -> None:
        """Add another pool's sums, group by group (in sorted group order)."""
        for g in sorted(other.n):
            self._sums(g, other.n[g], other.s1[g], other.s2[g])

    def mean_cov(self, group: str) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.s1[group] / self.n[group]
        return mu, (self.s2[group] / self.n[group] - torch.outer(mu, mu))


@dataclass
class SharedFit:
    """One style's colour maps fitted on the pooled samples of a folder (or the collection):
    ``groups`` maps a style region (its label as text; ``regions.WHOLE`` for content regions
    matched to the whole style photo) to a :class:`RegionMap` in ``space``; ``whole`` is the
    global map (:data:`GLOBAL`: all pooled pixels to the whole style), used for a photo stylised
    globally and for a region whose match the samples did not see."""

    space: str
    strength: float
    whole: RegionMap | None
    groups: dict[str, RegionMap]
    photos: int = 0
    pixels: int = 0

    def to_dict(self) -> dict:
        def rm(r):
            return {"shift": r.shift.tolist(), "matrix": r.matrix.tolist(), "offset": r.offset.tolist()}

        return {"space": self.space, "strength": self.strength, "photos": self.photos, "pixels": self.pixels,
                "whole": rm(self.whole) if self.whole else None,
                "groups": {k: rm(v) for k, v in sorted(self.groups.items())}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SharedFit":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict) -> "SharedFit":
        t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731

        def rm(r):
            return RegionMap(None, t(r["shift"]), t(r["matrix"]), t(r["offset"]))

        return cls(d["space"], float(d["strength"]), rm(d["whole"]) if d["whole"] else None,
                   {k: rm(v) for k, v in d["groups"].items()}, int(d["photos"]), int(d["pixels"]))

    def colour_map(self, masks=None) -> ColourMap:
        """The :class:`ColourMap` this fit applies to one photo: the global map, or with matched
        ``masks`` the group map of each content region (labelled with the content label)."""
        if masks is None:
            return ColourMap(self.space, self.strength, [RegionMap(None, self.whole.shift, self.whole.matrix,
                                                                   self.whole.offset)])
        maps = []
        for m in masks.matches:
            g = self.groups.get(str(m.style)) or self.whole
            maps.append(RegionMap((int(m.content),), g.shift, g.matrix, g.offset))
        return ColourMap(self.space, self.strength, maps, masks.blur_sigma, masks.feather_px)


MIN_GROUP_PIXELS = 64  # a group with fewer pooled samples gets no map of its own (the global map serves)


def fit_shared(kind: str, content: PooledStats, style: PooledStats, *, space: str, strength: float = 1.0,
               eps: float = 1e-6, photos: int = 0) -> SharedFit:
    """The :class:`SharedFit` of ``kind`` (``reinhard`` or ``mkl``) from pooled content statistics
    per group (in ``space``) and the style's statistics per region (same group keys); groups with
    fewer than :data:`MIN_GROUP_PIXELS` samples on either side are left to the global map."""
    def one(c_group, s_group):
        cs, ss = content.mean_cov(c_group), style.mean_cov(s_group)
        return reinhard_map(cs, ss) if kind == "reinhard" else mkl_map(cs, ss, eps)

    whole = one(GLOBAL, GLOBAL) if GLOBAL in content.n else None
    groups = {g: one(g, g) for g in sorted(content.n)
              if g != GLOBAL and g in style.n and min(content.n[g], style.n[g]) >= MIN_GROUP_PIXELS}
    return SharedFit(space, min(strength, 1.0), whole, groups, photos, int(content.n.get(GLOBAL, 0)))


def apply_shared(content: torch.Tensor, fit: SharedFit, masks=None) -> tuple[torch.Tensor, ColourMap]:
    """``(1, 3, H, W)`` content through a shared fit: ``sum_k w_k T_g(k)(c)`` with the matched
    masks' soft weights (the global map without masks), clipped, blended by the fit's strength;
    and the :class:`ColourMap` that did it (the lift applies it at full resolution)."""
    cmap = fit.colour_map(masks)
    pix = _pixels(content)
    if masks is None:
        out = cmap.apply(pix, cmap.regions[0])
    else:
        to_space, from_space = SPACES[fit.space]
        c = to_space(pix)
        weights = masks.content_weights.reshape(len(masks.matches), -1).to(c.device).double()
        mapped = torch.zeros_like(c)
        for k, rmap in enumerate(cmap.regions):
            mapped += weights[k][:, None] * rmap(c)
        out = torch.lerp(pix, from_space(mapped).clamp(0.0, 1.0), cmap.strength)
    return _unpixels(out, content), cmap
