"""Lifting a stylisation computed at a working size to the full-resolution photo.

Every method runs at a bounded working size (``ingest.work_megapixels``); the pair (content at
working size, stylised at working size) tells how the method changed each colour where. That
change is fitted as a colour model and applied to the full-resolution content, so the
deliverable keeps every full-resolution detail of the photo and takes the stylisation's
colours (the idea of Chen et al.'s bilateral guided upsampling, SIGGRAPH Asia 2016, and of
Neural Preset / URST: compute the style mapping small, apply it large).

The model has two parts, both per region of the content's label map (no colour bleeds across a
region border, since a pixel only ever uses its own region's model):

* **a colour LUT** (``lut_size``³ lattice over RGB, trilinear lookup): at each lattice vertex a
  weighted least-squares affine fit of the samples around it (trilinear weights), evaluated at
  the vertex, with the region's global affine fit as a prior where samples are few. For any
  global colour map this is the map itself up to the lattice's interpolation error: exact for
  affine and colour-matrix maps (MKL, a matrix in RGB), within a fraction of 1/255 for smooth
  non-linear ones (Reinhard's log-LMS statistics).
* **a local affine model of what the LUT leaves** (spatially varying methods: WCT, Gatys, a
  fast network): guided-filter statistics (He et al.) over windows of ``radius`` pixels at the
  working size, restricted to the pixel's region, fitted with ridge ``eps`` and averaged over
  the windows covering each pixel; its coefficient maps are upsampled bilinearly, neighbours of
  another region left out.

A method whose result is a colour map of the content (Reinhard, MKL) records that map with its
output (:class:`photostyle.ops.colour.ColourMap`); with ``colour_map`` given (``lift.colour_maps``,
default on) the lift applies the map itself in place of the LUT, so the lift of these methods is
exact at any size (a fitted LUT only interpolates a non-linear map such as Reinhard's log-LMS
one, and must extrapolate to the colours only the full-resolution photo holds). The map is
used only where it explains the working-size result (``MAP_SHARE`` of its pixels to
``AUTO_LUT_MAX``; a smoothed result, say, is not a colour map any more), per region of the
label map, with the local model for what it leaves (the method's soft blends at region borders).

``lift.model`` selects ``lut+local``, ``lut``, ``local``, ``upsample`` or ``auto`` (default): per
photo, the LUT (with the local model for what it leaves, e.g. blends at region borders) where it
explains the working-size result to ``AUTO_LUT_RMS``, else the local model alone: a LUT fitted
to a spatially varying result learns accidents of colour that do not carry to full resolution.
``upsample`` is the result itself upsampled (bilinear, region-aware): for generators whose output
has texture of its own at the pixel scale (a fast network, MUNIT), where it came closer to their
full-size run than the local model in ``benchmarks/lift_universal.py``. ``auto`` never picks it:
a test of both one octave down (half the working size to the working size) picked it for
Gatys, quilting and WCT too, where the local model is better (docs/benchmarks.md). The
choice is measured in ``benchmarks/full_resolution.py`` (docs/benchmarks.md). Fitting costs O(working size);
applying streams the full photo in strips of rows, so memory is the working-size model plus
one strip of coefficients, besides the full-size input and output themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MODELS = ("auto", "lut+local", "lut", "local", "upsample")
AUTO_LUT_RMS = 1.5 / 255  # auto: the LUT is used where it explains the result this well at the working size
AUTO_LUT_MAX = 1.5 / 255  # ... and alone (no local model) where no working pixel is further off than this
MAP_SHARE = 0.5  # a method's recorded colour map is used where it explains this share of working pixels (to AUTO_LUT_MAX)
MAX_LUT_SAMPLES = 1 << 18  # per region: a regular subsample (the fit is exact for affine maps anyway)


@dataclass
class LiftModel:
    """A fitted lift: per-region LUTs and local coefficient maps at the working size."""

    work_size: tuple[int, int]  # (h, w)
    labels: torch.Tensor  # (h, w) int64 region index 0..R-1 of each working pixel
    luts: torch.Tensor | None  # (R, 12, n, n, n) affine colour model at each lattice vertex
    coef: torch.Tensor | None  # (12, h, w): rows of A (3x3) then b (3), residual after the LUT
    table: torch.Tensor | None = None  # (R, 65, 65, 65, 3) the LUTs evaluated every 4th 8-bit level
    colour_map: "MapParams | None" = None  # the method's own colour map per region (in place of the LUT)
    upsampled: bool = False  # coef is the result itself (model "upsample"): no colour model of the content


@dataclass
class MapParams:
    """A :class:`photostyle.ops.colour.ColourMap` over the lift's regions, in the form the kernel
    evaluates: ``post @ g^-1(mat_k @ g(pre @ c) + off_k)``, clipped, blended with the content by
    ``strength``; ``g`` the natural log clamped at ``floor`` (``log``) or the identity."""

    pre: torch.Tensor  # (3, 3) float64
    post: torch.Tensor  # (3, 3)
    mat: torch.Tensor  # (R, 3, 3)
    off: torch.Tensor  # (R, 3)
    log: bool
    floor: float
    strength: float
    weights: torch.Tensor | None = None  # (R, h, w) float32: the method's soft region weights (region-aware maps)
    pure: torch.Tensor | None = None  # (h, w) bool: where one region holds (nearly) all the weight

    def kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """``(cmap (R, 12), cglob (25,), weights, pure, tabs)`` for
        :func:`photostyle.ops._lift_kernels.apply_rows`. For a map on a log scale, ``tabs`` holds
        the logarithm and the exponential as tables of :data:`MAP_TABLE` entries, linearly
        interpolated: the logarithm over the square root of its argument (the floor reached at
        entry ~40, so its interpolation error is at most ~4e-5 there and falls as 1/x above), the
        exponential over the range the map can reach (relative error below 1e-5 for ranges up to
        40; below ``exp(-16)`` it reads ``exp(-16)``): results within 1e-4 of the exact map
        (tested), 1.4x faster per pass than calling log and exp (docs/benchmarks.md)."""
        cmap = torch.cat([self.mat.reshape(-1, 9), self.off], 1).float().numpy()
        blend = self.weights is not None
        n = MAP_TABLE
        tabs, scales = np.zeros((2, 2), np.float32), [0.0, 0.0, 0.0]
        if self.log:
            smax = math.sqrt(max(float(self.pre.clamp_min(0).sum(1).max()), self.floor)) * 1.0001
            s = np.linspace(0.0, smax, n)
            lo, hi = math.log(self.floor), math.log(smax ** 2)
            mat = self.mat.numpy()
            reach = np.maximum(mat * lo, mat * hi).sum(2) + self.off.numpy()  # the largest value each v can take
            floor = np.minimum(mat * lo, mat * hi).sum(2) + self.off.numpy()
            vmax, vmin = float(reach.max()) + 1e-3, max(float(floor.min()), -16.0)
            vmin = min(vmin, vmax - 1e-3)
            v = np.linspace(vmin, vmax, n)
            tabs = np.stack([np.log(np.maximum(s * s, self.floor)), np.exp(v)]).astype(np.float32)
            scales = [(n - 1) / smax, vmin, (n - 1) / (vmax - vmin)]
        cglob = torch.cat([self.pre.reshape(9), self.post.reshape(9),
                           torch.tensor([self.floor, self.strength, float(self.log), float(blend)] + scales,
                                        dtype=torch.float64)])
        weights = self.weights.numpy() if blend else np.zeros((1, 1, 1), np.float32)
        pure = self.pure.numpy() if blend else np.zeros((1, 1), np.bool_)
        return (np.ascontiguousarray(cmap), cglob.float().numpy(), np.ascontiguousarray(weights),
                np.ascontiguousarray(pure), tabs)

    def blend_at(self, regions: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Soft weights ``(R, N)`` and purity ``(N,)`` of the working pixels (None: no blend)."""
        if self.weights is None:
            return None, None
        return self.weights.reshape(len(self.weights), -1).double(), self.pure.reshape(-1)


MAP_TABLE = 8192  # entries of the kernel's log and exp tables (MapParams.kernel_arrays)
PURE = 1 - 1e-4  # a working pixel whose largest soft weight reaches this takes its own region's map alone


def map_params(colour_map, label_values: list[int], regions: torch.Tensor | None = None,
               guide: torch.Tensor | None = None) -> MapParams | None:
    """The kernel form of ``colour_map`` (a ColourMap) for regions with content labels
    ``label_values`` (in region-index order; ``regions`` the working-size region index and
    ``guide`` the working-size content ``(3, h, w)`` in [0, 1], for the soft weights of a
    region-aware map), or None if some region has no map."""
    from photostyle.ops import colour as C
    from photostyle.ops.regions import soft_weights

    maps = [colour_map.region_of(v) for v in label_values]
    if any(m is None for m in maps):
        return None
    weights = pure = None
    if colour_map.blend_sigma is not None and len(maps) > 1 and regions is not None:
        # the method's weights, recomputed from the same label map: one-hot masks blurred alike
        g = guide.permute(1, 2, 0).float().numpy() if guide is not None and colour_map.blend_feather > 0 else None
        weights = torch.from_numpy(soft_weights(regions.numpy(), list(range(len(maps))), colour_map.blend_sigma,
                                                g, colour_map.blend_feather))
        pure = weights.amax(0) >= PURE
    eye = torch.eye(3, dtype=torch.float64)
    if colour_map.space == "lalphabeta":
        # lab = L2L log10(P c): in natural logs u = ln(P c), lab = L2L u / ln 10; the map
        # (lab - shift) M^T + offset, back through 10^(L2L^-1 .) is exp(L2L^-1 M L2L u + ln 10 L2L^-1 (offset - M shift))
        l2l, l2l_inv = C._LMS2LAB, torch.linalg.inv(C._LMS2LAB)
        mat = torch.stack([l2l_inv @ m.matrix @ l2l for m in maps])
        off = torch.stack([math.log(10) * l2l_inv @ (m.offset - m.matrix @ m.shift) for m in maps])
        return MapParams(C._RGB2LMS.clone(), torch.linalg.inv(C._RGB2LMS), mat, off, True, C._LMS_FLOOR,
                         colour_map.strength, weights, pure)
    if colour_map.space != "rgb":
        return None
    return MapParams(eye, eye.clone(), torch.stack([m.matrix for m in maps]),
                     torch.stack([m.offset - m.matrix @ m.shift for m in maps]), False, 0.0, colour_map.strength,
                     weights, pure)


def map_reference(params: MapParams, c: torch.Tensor, regions: torch.Tensor, weights: torch.Tensor | None = None,
                  pure: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, 3)`` colours in [0, 1] of pixels in regions ``(N,)`` through ``params`` (float64; the
    kernel's reference); with soft ``weights`` ``(R, N)``, pixels not ``pure`` take the weighted
    sum of every region's map (before the inverse of the space, as the method blends)."""
    c = c.double()
    u = c @ params.pre.T
    if params.log:
        u = u.clamp_min(params.floor).log()
    v = (params.mat[regions] @ u[:, :, None])[..., 0] + params.off[regions]
    if weights is not None:
        each = torch.einsum("koi,ni->kno", params.mat, u) + params.off[:, None, :]  # (R, N, 3)
        v = torch.where(pure[:, None], v, (weights.double()[..., None] * each).sum(0))
    if params.log:
        v = v.exp()
    return torch.lerp(c, (v @ params.post.T).clamp(0.0, 1.0), params.strength)


def _region_index(labels: np.ndarray | torch.Tensor | None, size: tuple[int, int]) -> tuple[torch.Tensor, list]:
    """Labels (any integers) -> consecutive region indices at the working size (nearest), and
    the label value of each index (``[None]``: no label map, one region)."""
    if labels is None:
        return torch.zeros(size, dtype=torch.int64), [None]
    lab = torch.as_tensor(np.asarray(labels)).to(torch.int64)
    if tuple(lab.shape) != tuple(size):
        lab = F.interpolate(lab[None, None].double(), size=size, mode="nearest")[0, 0].to(torch.int64)
    values, idx = torch.unique(lab, return_inverse=True)
    return idx.reshape(size), values.tolist()


def _affine_fit(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-9) -> torch.Tensor:
    """Least squares ``y ~ [x, 1] @ M`` -> ``M`` (4, 3), float64."""
    xa = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    g = xa.T @ xa + ridge * len(x) * torch.eye(4, dtype=x.dtype)
    return torch.linalg.solve(g, xa.T @ y)


def warp(c: torch.Tensor) -> torch.Tensor:
    """Lattice coordinate of a colour: ``sqrt``, so vertices crowd near black, where maps on log
    or power scales (Reinhard's log LMS) bend most."""
    return c.clamp(0, 1).sqrt()


def _corners(c: torch.Tensor, n: int):
    """Trilinear corner indices (N, 8) into a flattened n³ lattice (in :func:`warp` coordinates),
    weights (N, 8), and the sample's colour relative to each corner vertex (N, 8, 3)."""
    pos = warp(c) * (n - 1)
    i0 = pos.floor().clamp(max=n - 2).to(torch.int64)
    t = pos - i0
    idx, wts, offs = [], [], []
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                d = torch.tensor([dr, dg, db])
                v = i0 + d
                idx.append((v[:, 0] * n + v[:, 1]) * n + v[:, 2])
                wts.append(torch.where(d.bool(), t, 1 - t).prod(dim=1))
                offs.append(c - (v.to(c.dtype) / (n - 1)) ** 2)
    return torch.stack(idx, 1), torch.stack(wts, 1), torch.stack(offs, 1)


def _compiled(name: str):
    """The Numba kernel ``name`` of :mod:`photostyle.ops._lift_kernels`, or None where Numba is
    missing (numba is a dependency; the torch references then run)."""
    try:
        from photostyle.ops import _lift_kernels
    except ImportError:  # pragma: no cover
        return None
    return getattr(_lift_kernels, name)


def _normal_equations(c: torch.Tensor, s: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per lattice vertex, ``gram`` (n³, 16) = sum of w x xT and ``rhs`` (n³, 12) = sum of w x sT
    over the samples around it (``x = [c - v, 1]``, ``w`` their trilinear weights), float64:
    compiled (:func:`photostyle.ops._lift_kernels.lut_normal_equations`), else
    :func:`normal_equations_reference`."""
    kernel = _compiled("lut_normal_equations")
    if kernel is None:  # pragma: no cover
        return normal_equations_reference(c, s, n)
    gram, rhs = kernel(c.double().numpy(), s.double().numpy(), n)
    return torch.from_numpy(gram), torch.from_numpy(rhs)


def normal_equations_reference(c: torch.Tensor, s: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_normal_equations` in torch (the kernel's reference)."""
    idx, w, off = _corners(c, n)
    x = torch.cat([off, torch.ones_like(off[..., :1])], dim=2)  # (N, 8, 4): [c - v, 1]
    gram = torch.zeros(n ** 3, 16, dtype=c.dtype)
    rhs = torch.zeros(n ** 3, 12, dtype=c.dtype)
    flat = idx.reshape(-1)
    wx = (w[..., None] * x).reshape(-1, 4)
    gram.index_add_(0, flat, (wx[:, :, None] * x.reshape(-1, 4)[:, None, :]).reshape(-1, 16))
    rhs.index_add_(0, flat, (wx[:, :, None] * s.repeat_interleave(8, 0)[:, None, :]).reshape(-1, 12))
    return gram, rhs


def fit_lut(c: torch.Tensor, s: torch.Tensor, n: int, prior_weight: float = 1e-4, min_weight: float = 16.0) -> torch.Tensor:
    """A lattice of affine colour models ``(12, n, n, n)`` (rows of A, then b: ``s = A c + b``)
    from colour pairs ``c -> s`` ((N, 3) float64 in [0, 1]): at each vertex a least-squares fit
    of the samples around it, weighted by their trilinear weights (the global affine fit as a
    faint prior keeps each solve well posed); vertices with less than ``min_weight`` of samples
    take the model of their nearest sampled vertex. Blending affine models (not values) between vertices
    makes the lookup exact for any affine map, whatever the lattice."""
    if len(c) > MAX_LUT_SAMPLES:
        step = -(-len(c) // MAX_LUT_SAMPLES)
        c, s = c[::step], s[::step]
    glob = _affine_fit(c, s)  # (4, 3): the region's global affine map
    n3 = n ** 3
    gram, rhs = _normal_equations(c, s, n)
    u = torch.arange(n, dtype=c.dtype) / (n - 1)
    verts = torch.stack(torch.meshgrid(u ** 2, u ** 2, u ** 2, indexing="ij"), -1).reshape(-1, 3)
    # the prior in vertex coordinates: s = A (c - v) + (A v + b); slope rows scaled to the
    # vertex's cell so that the prior decides only where the samples leave a direction open
    cell = ((torch.minimum(u + 1 / (n - 1), torch.ones(())) ** 2 - u ** 2)).clamp_min(1e-6)
    h2 = torch.stack(torch.meshgrid(cell, cell, cell, indexing="ij"), -1).reshape(-1, 3) ** 2
    reg = torch.diag_embed(torch.cat([h2, torch.ones(n3, 1, dtype=c.dtype)], 1)) * prior_weight  # (n3, 4, 4)
    prior = torch.cat([glob[:3].expand(n3, 3, 3), (verts @ glob[:3] + glob[3])[:, None, :]], dim=1)
    sol = torch.linalg.solve(gram.reshape(n3, 4, 4) + reg, rhs.reshape(n3, 4, 3) + reg @ prior)  # (n3, 4, 3)
    # vertices with (almost) no samples take the model of the nearest sampled vertex: colours the
    # working size lacks (fine noise, specular highlights) extrapolate from their nearest data
    weight = gram[:, 15].reshape(n, n, n).numpy()
    empty = weight < min_weight
    if empty.any() and not empty.all():
        from scipy.ndimage import distance_transform_edt

        near = distance_transform_edt(empty, return_distances=False, return_indices=True)
        src = torch.from_numpy(((near[0] * n + near[1]) * n + near[2]).reshape(-1))
        a_src = sol[src, :3, :]
        v_src = verts[src]
        # the neighbour's model, re-expressed at this vertex: same slope, value by its affine map
        sol = torch.cat([a_src, (sol[src, 3, :] + ((verts - v_src)[:, :, None] * a_src).sum(1))[:, None, :]], 1)
    a = sol[:, :3, :]  # (n3, 3 in, 3 out)
    b = sol[:, 3, :] - (verts[:, :, None] * a).sum(1)  # back to absolute colours
    return torch.cat([a.transpose(1, 2).reshape(n3, 9), b], 1).T.reshape(12, n, n, n)


def apply_lut(lut: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` colours through a ``(12, n, n, n)`` lattice of affine models -> ``(N, 3)``."""
    # grid_sample's last grid axis indexes the volume's last dimension: (b, g, r) order
    grid = (warp(c).flip(-1) * 2 - 1).to(lut.dtype).reshape(1, -1, 1, 1, 3)
    m = F.grid_sample(lut[None], grid, mode="bilinear", padding_mode="border", align_corners=True).reshape(12, -1)
    a, b = m[:9].reshape(3, 3, -1), m[9:]
    return ((a * c.T.to(lut.dtype)[None]).sum(1) + b).T


def _box_sum(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sums over (2r+1)² windows clipped at the borders: ``(C, h, w)`` float32, through the
    compiled running sums (:func:`photostyle.ops._lift_kernels.box_sums`), else
    :func:`box_sum_reference`."""
    kernel = _compiled("box_sums")
    return box_sum_reference(x, r) if kernel is None else torch.from_numpy(kernel(x.numpy(), r))


def box_sum_reference(x: torch.Tensor, r: int) -> torch.Tensor:
    """:func:`_box_sum` with integral images in torch (the kernel's reference)."""
    def along(v: torch.Tensor, dim: int) -> torch.Tensor:
        n = v.shape[dim]
        c = v.cumsum(dim)
        last = c.narrow(dim, n - 1, 1)
        shape = list(v.shape)
        shape[dim] = r + 1
        zeros = torch.zeros(shape, dtype=v.dtype)
        shape[dim] = r
        # c' = [0]*(r+1) + c + [c[n-1]]*r: window i is c'[i + 2r + 1] - c'[i]
        ext = torch.cat([zeros, c, last.expand(shape)], dim)
        return ext.narrow(dim, 2 * r + 1, n) - ext.narrow(dim, 0, n)

    return along(along(x, -2), -1)


PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # the content products of the local fits


def window_moments(mask: torch.Tensor, content: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """The 22 per-pixel moments whose window sums :func:`_window_affine` takes, inside the region
    ``mask`` ``(1, h, w)``: count, content (3), residual (3), content products (:data:`PAIRS`),
    content x residual (channel i x output o at 13 + 3i + o)."""
    ci = content * mask
    return torch.cat([mask, ci, residual * mask] + [ci[i:i + 1] * content[j:j + 1] for i, j in PAIRS]
                     + [ci[i:i + 1] * residual for i in range(3)])


def _window_affine(sums: torch.Tensor, eps: float) -> torch.Tensor:
    """Per window, the ridge least-squares affine map from its sums (see :func:`fit_local`):
    ``(13, h, w)``: A (output-major), b, and 1 where the window holds pixels of the region (all
    zero elsewhere). Compiled (:func:`photostyle.ops._lift_kernels.window_affine`), else
    :func:`window_affine_reference`."""
    kernel = _compiled("window_affine")
    return window_affine_reference(sums, eps) if kernel is None else torch.from_numpy(kernel(sums.numpy(), eps))


def window_affine_reference(sums: torch.Tensor, eps: float) -> torch.Tensor:
    """:func:`_window_affine` in torch (the kernel's reference): batched 3x3 solves."""
    cnt = sums[:1].clamp_min(1e-6)
    mean = sums[1:] / cnt
    mc, mp = mean[0:3], mean[3:6]
    cov = mean[6:12] - torch.stack([mc[i] * mc[j] for i, j in PAIRS])
    sigma = cov[[0, 1, 2, 1, 3, 4, 2, 4, 5]].permute(1, 2, 0).reshape(*cov.shape[1:], 3, 3)
    sigma = sigma + eps * torch.eye(3, dtype=sums.dtype)
    cp = (mean[12:21].reshape(3, 3, *mean.shape[1:]) - mc[:, None] * mp[None]).permute(2, 3, 0, 1)  # (.., in, out)
    a = torch.linalg.solve(sigma, cp).permute(3, 2, 0, 1)  # (3 out, 3 in, ...)
    b = mp - (a * mc[None]).sum(1)
    inside = (sums[:1] > 0.5).to(sums.dtype)  # windows holding pixels of the region
    return torch.cat([a.reshape(9, *a.shape[2:]), b, torch.ones_like(b[:1])]) * inside


def fit_local(content: torch.Tensor, residual: torch.Tensor, regions: torch.Tensor, radius: int,
              eps: float) -> torch.Tensor:
    """Per-pixel affine coefficients ``(12, h, w)`` of ``residual ~ A content + b``, fitted over
    windows of the pixel's own region (guided-filter statistics, ridge ``eps``) and averaged over
    the windows of that region covering the pixel. ``content``/``residual``: ``(3, h, w)``.
    Window sums are running sums with float64 accumulators (:func:`_box_sum`), float32 out."""
    h, w = regions.shape
    coef = torch.zeros(12, h, w)
    content, residual = content.float(), residual.float()
    for k in range(int(regions.max()) + 1):
        m = regions == k
        ys, xs = torch.nonzero(m, as_tuple=True)
        if len(ys) == 0:  # a region index without pixels
            continue
        y0, y1 = max(int(ys.min()) - radius, 0), min(int(ys.max()) + radius + 1, h)
        x0, x1 = max(int(xs.min()) - radius, 0), min(int(xs.max()) + radius + 1, w)
        mk = m[y0:y1, x0:x1].float()[None]
        sums = _box_sum(window_moments(mk, content[:, y0:y1, x0:x1], residual[:, y0:y1, x0:x1]), radius)
        local = _window_affine(sums, eps) * mk  # A (out, in), b, 1: windows of the region, at its pixels
        avg = _box_sum(local, radius)
        avg = avg[:12] / avg[12:].clamp_min(1e-6)
        coef[:, y0:y1, x0:x1] = torch.where(mk.bool(), avg, coef[:, y0:y1, x0:x1])
    return coef


def _chw(image) -> torch.Tensor:
    """``(h, w, 3)`` uint8 array or ``(1, 3, h, w)`` tensor in [0, 1] -> ``(3, h, w)`` float64."""
    if isinstance(image, torch.Tensor):
        return image.detach().reshape(image.shape[-3:]).double().cpu()
    return torch.from_numpy(np.array(image, dtype=np.float64)).permute(2, 0, 1) / 255


def fit(content: np.ndarray, stylised: np.ndarray, labels=None, *, model: str = "auto", lut_size: int = 16,
        radius: int = 8, eps: float = 1e-4, colour_map=None, colour_maps: bool = True) -> LiftModel:
    """Fit the lift of one stylisation: ``content``/``stylised`` at the working size (``(h, w, 3)``
    uint8 arrays or ``(1, 3, h, w)`` tensors in [0, 1]), ``labels`` the content's label map (any
    size; None: one region); ``colour_map`` the method's recorded ColourMap, if any, used in
    place of the LUT where it explains the result (``colour_maps: false``: never)."""
    if model not in MODELS:
        raise ValueError(f"lift model {model!r}: expected one of {', '.join(MODELS)}")
    c, s = _chw(content), _chw(stylised)
    if c.shape != s.shape:
        raise ValueError(f"content {tuple(c.shape)} and stylised {tuple(s.shape)} differ in size")
    h, w = c.shape[1:]
    regions, values = _region_index(labels, (h, w))
    if model == "upsample":  # the result itself, upsampled (region-aware): no colour model of the content
        return LiftModel((h, w), regions, None, upsample_coef(s), upsampled=True)
    luts, fitted = None, torch.zeros_like(s)
    params = (map_params(colour_map, values, regions, c) if colour_map is not None and colour_maps and model != "local"
              else None)
    if params is not None:  # the method's own map, where it explains the result (not after smoothing, say)
        fitted = map_reference(params, c.reshape(3, -1).T, regions.reshape(-1), *params.blend_at(regions)).T.reshape(s.shape)
        near = float(((s - fitted).abs().amax(0) <= AUTO_LUT_MAX).double().mean())  # share of pixels it explains
        if near < MAP_SHARE:
            params, fitted = None, torch.zeros_like(s)
        elif model == "lut" or (model == "auto" and near == 1.0):
            model = "lut"
        else:
            model = "lut+local"  # the local model takes what the map leaves (soft blends at borders)
    if model != "local" and params is None:
        cf, sf, rf = c.reshape(3, -1).T, s.reshape(3, -1).T, regions.reshape(-1)
        luts = torch.stack([fit_lut(cf[rf == k], sf[rf == k], lut_size) for k in range(int(regions.max()) + 1)])
        table = dense_table(luts)
        for k in range(len(luts)):  # what the LUT gives, as it is applied at full size
            sel = rf == k
            fitted.reshape(3, -1)[:, sel] = _table_lookup(table[k], cf[sel]).T.double()
        if model == "auto":
            # a colour map explains the result (global methods): LUT + local for the rest (region
            # borders); else the method is spatial and a LUT fitted to it would only generalise
            # its accidents of colour: local model alone
            res = s - fitted
            if res.square().mean().sqrt() > AUTO_LUT_RMS:
                luts, table, fitted = None, None, torch.zeros_like(s)
            elif res.abs().max() <= AUTO_LUT_MAX:  # a pure colour map: nothing is left for a local model
                model = "lut"
    coef = fit_local(c, s - fitted, regions, radius, eps) if model != "lut" else None
    return LiftModel((h, w), regions, luts.float() if luts is not None else None,
                     coef,
                     table if luts is not None else None, params)


def upsample_coef(stylised: torch.Tensor) -> torch.Tensor:
    """Local coefficients that give the stylised result itself: ``A = 0``, ``b`` = the result.
    Applied like any local model, that is the result upsampled bilinearly, each pixel from the
    working pixels of its own region only."""
    return torch.cat([torch.zeros(9, *stylised.shape[1:]), stylised.float()])


def dense_table(luts: torch.Tensor) -> torch.Tensor:
    """The LUTs evaluated at every 4th 8-bit level (0, 4, ..., 256): ``(R, 65, 65, 65, 3)``
    float32, interpolated trilinearly in linear colour coordinates when applied (exact for an
    affine map, which the lattice reproduces exactly)."""
    levels = torch.arange(0, 257, 4, dtype=torch.float64) / 255
    grid = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    return torch.stack([apply_lut(lut, grid).reshape(65, 65, 65, 3) for lut in luts]).float()


def _table_lookup(table: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of ``(N, 3)`` colours in [0, 1] in a ``(65, 65, 65, 3)`` dense table."""
    grid = (c.flip(-1) * (255 / 256) * 2 - 1).reshape(1, -1, 1, 1, 3).float()
    out = F.grid_sample(table.permute(3, 0, 1, 2)[None], grid, mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.reshape(3, -1).T


def _strip_grid(model: LiftModel, y0: int, y1: int, width: int, height: int):
    """The working-size neighbours of full-resolution rows ``y0:y1``: the four (row, column,
    bilinear weight) and the region index of each pixel (its nearest working pixel's)."""
    h, w = model.work_size
    ys = ((torch.arange(y0, y1, dtype=torch.float32) + 0.5) * h / height - 0.5).clamp(0, h - 1)
    xs = ((torch.arange(width, dtype=torch.float32) + 0.5) * w / width - 0.5).clamp(0, w - 1)
    yi0, xi0 = ys.floor().long().clamp(max=max(h - 2, 0)), xs.floor().long().clamp(max=max(w - 2, 0))
    yi1, xi1 = (yi0 + 1).clamp(max=h - 1), (xi0 + 1).clamp(max=w - 1)
    ty, tx = (ys - yi0)[:, None], (xs - xi0)[None, :]
    own = model.labels[ys.round().long()][:, xs.round().long()]  # nearest: the pixel's region
    return [(yy, xx, wy * wx) for yy, wy in ((yi0, 1 - ty), (yi1, ty)) for xx, wx in ((xi0, 1 - tx), (xi1, tx))], own


def _strip_coefficients(model: LiftModel, y0: int, y1: int, width: int, height: int):
    """Coefficients ``(12, y1-y0, width)`` and region index of full-resolution rows ``y0:y1``:
    bilinear from the working size, leaving out neighbours of another region."""
    corners, own = _strip_grid(model, y0, y1, width, height)
    num = torch.zeros(12 if model.coef is not None else 0, y1 - y0, width)
    den = torch.zeros(y1 - y0, width)
    for yy, xx, bil in corners:
        wgt = bil * (model.labels[yy][:, xx] == own)
        den += wgt
        if model.coef is not None:
            num += model.coef[:, yy][:, :, xx] * wgt
    return (num / den.clamp_min(1e-12) if model.coef is not None else None), own


def _strip_blend(model: LiftModel, y0: int, y1: int, width: int, height: int):
    """Soft region weights ``(R, N)`` of full-resolution rows ``y0:y1`` (bilinear) and whether each
    pixel is pure (its four neighbours pure and of its region), as the kernel has them; or None."""
    cm = model.colour_map
    if cm is None or cm.weights is None:
        return None, None
    corners, own = _strip_grid(model, y0, y1, width, height)
    weights = sum(cm.weights[:, yy][:, :, xx] * bil for yy, xx, bil in corners)
    pure = torch.ones_like(own, dtype=torch.bool)
    for yy, xx, _ in corners:
        pure &= cm.pure[yy][:, xx] & (model.labels[yy][:, xx] == own)
    return weights.reshape(len(weights), -1), pure.reshape(-1)


def apply(model: LiftModel, content: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
    """The lifted stylisation of the full-resolution ``content`` ``(H, W, 3)`` uint8, as a
    ``(1, 3, H, W)`` float32 tensor in [0, 1]: one pass of the compiled kernel
    (:mod:`photostyle.ops._lift_kernels`), or :func:`apply_reference` without Numba. ``out``: a
    contiguous tensor of that shape to write into and return (a buffer reused from one result of
    a photo to the next: a fresh 12 MP output costs about as much to fault in as a third of the
    pass), else a new one."""
    height, width = content.shape[:2]
    if out is not None and (tuple(out.shape) != (1, 3, height, width) or out.dtype != torch.float32
                            or not out.is_contiguous()):
        raise ValueError(f"out: expected a contiguous (1, 3, {height}, {width}) float32 tensor, got "
                         f"{tuple(out.shape)} {out.dtype}")
    apply_rows = _compiled("apply_rows")
    if apply_rows is None:  # pragma: no cover
        res = apply_reference(model, content)
        return res if out is None else out.copy_(res)
    out = torch.empty(1, 3, height, width) if out is None else out
    apply_rows(np.ascontiguousarray(content), model.labels.to(torch.int32).numpy(), out[0].numpy(),
               table=model.table.numpy() if model.table is not None else None,
               coef=model.coef.numpy() if model.coef is not None else None,
               colour_map=model.colour_map.kernel_arrays() if model.colour_map is not None else None)
    return out


def apply_reference(model: LiftModel, content: np.ndarray, strip_rows: int | None = None) -> torch.Tensor:
    """:func:`apply` in torch, strip by strip (the kernel's reference, and its fallback)."""
    height, width = content.shape[:2]
    if strip_rows is None:
        strip_rows = max(1, (1 << 20) // max(width, 1))  # about a megapixel per strip
    out = torch.empty(1, 3, height, width)
    for y0 in range(0, height, strip_rows):
        y1 = min(y0 + strip_rows, height)
        c = torch.from_numpy(np.array(content[y0:y1], dtype=np.float32)).permute(2, 0, 1) / 255  # (3, hs, W)
        coef, own = _strip_coefficients(model, y0, y1, width, height)
        res = torch.zeros_like(c)
        if model.colour_map is not None:
            res = map_reference(model.colour_map, c.reshape(3, -1).T, own.reshape(-1),
                                *_strip_blend(model, y0, y1, width, height)).T.reshape(c.shape).float()
        if model.table is not None:
            flat_c, flat_own = c.reshape(3, -1).T, own.reshape(-1)
            flat = res.reshape(3, -1)
            for k in torch.unique(flat_own).tolist():
                sel = flat_own == k
                flat[:, sel] = _table_lookup(model.table[k], flat_c[sel]).T
        if coef is not None:
            a, b = coef[:9].reshape(3, 3, *c.shape[1:]), coef[9:]
            res += (a * c[None]).sum(1) + b
        out[0, :, y0:y1] = res.clamp_(0, 1)
    return out


def lift(content_work: np.ndarray, stylised_work: np.ndarray, content_full: np.ndarray, labels=None,
         **kwargs) -> torch.Tensor:
    """Fit on the working-size pair and apply to the full-resolution content (see :func:`fit`).
    A photo at its working size already (no downscale) keeps the stylisation as it is."""
    if content_full.shape == content_work.shape:
        return _chw(stylised_work).float()[None]
    return apply(fit(content_work, stylised_work, labels, **kwargs), content_full)
