"""Compiled CPU kernels (Numba) of the lift: the normal equations of its colour LUT
(:func:`lut_normal_equations`), window sums and per-window affine fits for its local model
(:func:`box_sums`, :func:`window_affine`), and the pass that applies a fitted lift to a
full-resolution photo (:func:`apply_rows`).

One pass over the photo, blocks of rows in parallel; per pixel:

* the colour table: trilinear interpolation of a dense table (``(R, 65, 65, 65, 3)``: every
  4th 8-bit level, 256 included) of the region's lattice of affine models, evaluated
  beforehand (:func:`photostyle.ops.lift.dense_table`); trilinear interpolation in linear
  colour coordinates is exact for affine maps;
* or, for a method that recorded its colour map (Reinhard, MKL: :class:`photostyle.ops.colour.ColourMap`),
  that map itself, per region: ``post @ g^-1(M_k g(pre @ c) + t_k)`` with ``g`` the natural log
  (clamped at a floor) or the identity, clipped, then blended with the content by its strength:
  exact at any size;
* the local model: bilinear interpolation of the working-size coefficient maps from the four
  neighbours that share the pixel's region (its nearest working pixel's), then ``A c + b``.

Each row first interpolates the coefficients between its two working rows for the columns
whose two rows share a region, so most pixels need only the horizontal step. ``fastmath``
lets the compiler contract multiply-adds: results differ from
:func:`photostyle.ops.lift.apply_reference` by float32 rounding (tested to 2e-6) and are
identical from run to run.

The per-pixel arithmetic stays in float32: constants are float32 (``zero``, ``one``), since
Numba follows NumPy's promotion rules and an ``int`` or ``float`` literal would turn the
pixel's arithmetic into float64 (1.2-1.4x slower; ``docs/benchmarks.md``).

The loop is compiled once per model kind (colour part: table, map or none; with or without the
local model) with the kind as a
constant, so each version holds only its own per-pixel work (1.2-1.5x faster than one loop
that tests the kind per pixel; ``benchmarks/full_resolution.py``). Row buffers are allocated
once per block of rows, not per row.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

STEP = 4  # 8-bit levels between table entries
TABLE = 256 // STEP + 1  # 65 entries per axis


@njit(cache=True)
def _columns(width, w):  # pragma: no cover - compiled
    """Per full-resolution column: left/right working column, weight of the right one, nearest."""
    x0s = np.empty(width, np.int64)
    x1s = np.empty(width, np.int64)
    txs = np.empty(width, np.float32)
    nxs = np.empty(width, np.int64)
    for x in range(width):
        sx = min(max((x + 0.5) * w / width - 0.5, 0.0), w - 1.0)
        x0 = min(int(np.floor(sx)), max(w - 2, 0))
        x0s[x], x1s[x], txs[x] = x0, min(x0 + 1, w - 1), sx - x0
        nxs[x] = int(np.floor(sx + 0.5))
    return x0s, x1s, txs, nxs


@njit(inline="always", fastmath=True, error_model="numpy")
def _interp(flat, base, n, x):  # pragma: no cover - compiled
    """Linear interpolation in the table ``flat[base:base + n]`` at fractional index ``x`` (clamped to the table)."""
    x = min(max(x, np.float32(0.0)), np.float32(n - 1))
    i = min(int(x), n - 2)
    t = x - np.float32(i)  # float32: an int operand would promote it to float64
    a = flat[base + i]
    return a + t * (flat[base + i + 1] - a)


@njit(inline="always", fastmath=True, error_model="numpy")
def _interp_inside(flat, base, n, x):  # pragma: no cover - compiled
    """:func:`_interp` for ``0 <= x <= n - 1`` (the logarithm's argument: its table spans every value)."""
    i = min(int(x), n - 2)
    t = x - np.float32(i)  # float32: an int operand would promote it to float64
    a = flat[base + i]
    return a + t * (flat[base + i + 1] - a)


@njit(inline="always", fastmath=True, error_model="numpy")
def _rows(content, table, coef, labels, cmap, cglob, bw, pure, tabs, use_table, use_map, use_coef, out, blocks):  # pragma: no cover - compiled
    """``content`` (H, W, 3) uint8 -> ``out`` (3, H, W) float32 in [0, 1]; inlined into the
    kernels below with ``use_table``/``use_map``/``use_coef`` constant. ``cmap`` (R, 12): each
    region's map (M row-major, t); ``cglob`` (25,): pre (9), post (9), floor, strength, log (0/1),
    blend (0/1), then the tables' scales: the logarithm is ``tabs[0]`` at ``sqrt(x) * cglob[22]``,
    the exponential ``tabs[1]`` at ``(x - cglob[23]) * cglob[24]`` (linear interpolation: no
    transcendental function per pixel; :meth:`photostyle.ops.lift.MapParams.kernel_arrays`
    builds them and bounds their error); with blend, ``bw`` (R, h, w) the method's soft region weights and ``pure``
    (h, w) 1 where one region holds all the weight: a pixel with a neighbour that is not pure
    (or of another region) takes the weighted sum of the regions' maps, in the maps' own space."""
    height, width = content.shape[0], content.shape[1]
    h, w = labels.shape
    x0s, x1s, txs, nxs = _columns(width, w)
    flat = table.reshape(-1)
    n = table.shape[1]
    s_b, s_g, s_r = 3, n * 3, n * n * 3  # strides of the (R, n, n, n, 3) table
    s_reg = n * n * n * 3
    k255 = np.float32(1.0 / 255)
    zero, one = np.float32(0.0), np.float32(1.0)  # float32 constants: a float64 (or int) literal would promote the arithmetic
    floor, strength, logm, blend = cglob[18], cglob[19], cglob[20] > 0.5, cglob[21] > 0.5
    lscale, emin, escale = cglob[22], cglob[23], cglob[24]
    ntab = tabs.shape[1]
    tflat = tabs.reshape(-1)
    regions = cmap.shape[0]
    for blk in prange(blocks):
        vert = np.empty((w, 12), np.float32)
        same = np.empty(w, np.bool_)
        acc = np.empty(12, np.float32)
        for y in range(blk * height // blocks, (blk + 1) * height // blocks):
            sy = min(max((y + 0.5) * h / height - 0.5, 0.0), h - 1.0)
            y0 = min(int(np.floor(sy)), max(h - 2, 0))
            y1 = min(y0 + 1, h - 1)
            ty = np.float32(sy - y0)
            ny = int(np.floor(sy + 0.5))
            # the coefficients interpolated between the two working rows, for columns whose two
            # rows share a region (most): the pixels there need only the horizontal step
            if use_coef:
                for xw in range(w):
                    same[xw] = labels[y0, xw] == labels[y1, xw]
                    if same[xw]:
                        for k in range(12):
                            vert[xw, k] = (one - ty) * coef[k, y0, xw] + ty * coef[k, y1, xw]
            for x in range(width):
                own = labels[ny, nxs[x]]
                r, g, b = content[y, x, 0], content[y, x, 1], content[y, x, 2]
                o0 = np.float32(0.0)
                o1 = np.float32(0.0)
                o2 = np.float32(0.0)
                if use_table:  # trilinear: along blue, then green, then red
                    base = own * s_reg + (r >> 2) * s_r + (g >> 2) * s_g + (b >> 2) * s_b
                    fr = np.float32(r & 3) * np.float32(0.25)
                    fg = np.float32(g & 3) * np.float32(0.25)
                    fb = np.float32(b & 3) * np.float32(0.25)
                    for c in range(3):
                        p = base + c
                        a0 = flat[p] + fb * (flat[p + s_b] - flat[p])
                        a1 = flat[p + s_g] + fb * (flat[p + s_g + s_b] - flat[p + s_g])
                        a2 = flat[p + s_r] + fb * (flat[p + s_r + s_b] - flat[p + s_r])
                        a3 = flat[p + s_r + s_g] + fb * (flat[p + s_r + s_g + s_b] - flat[p + s_r + s_g])
                        e0 = a0 + fg * (a1 - a0)
                        v = e0 + fr * (a2 + fg * (a3 - a2) - e0)
                        if c == 0:
                            o0 = v
                        elif c == 1:
                            o1 = v
                        else:
                            o2 = v
                if use_map:  # the method's own colour map
                    cr, cg, cb = np.float32(r) * k255, np.float32(g) * k255, np.float32(b) * k255
                    u0 = cglob[0] * cr + cglob[1] * cg + cglob[2] * cb
                    u1 = cglob[3] * cr + cglob[4] * cg + cglob[5] * cb
                    u2 = cglob[6] * cr + cglob[7] * cg + cglob[8] * cb
                    if logm:
                        u0 = _interp_inside(tflat, 0, ntab, np.sqrt(max(u0, zero)) * lscale)
                        u1 = _interp_inside(tflat, 0, ntab, np.sqrt(max(u1, zero)) * lscale)
                        u2 = _interp_inside(tflat, 0, ntab, np.sqrt(max(u2, zero)) * lscale)
                    mixed = False
                    if blend:
                        bx0, bx1, btx = x0s[x], x1s[x], txs[x]
                        mixed = not (pure[y0, bx0] and pure[y0, bx1] and pure[y1, bx0] and pure[y1, bx1]
                                     and labels[y0, bx0] == own and labels[y0, bx1] == own
                                     and labels[y1, bx0] == own and labels[y1, bx1] == own)
                    if mixed:
                        v0 = np.float32(0.0)
                        v1 = np.float32(0.0)
                        v2 = np.float32(0.0)
                        for k in range(regions):
                            wk = ((one - ty) * ((one - btx) * bw[k, y0, bx0] + btx * bw[k, y0, bx1])
                                  + ty * ((one - btx) * bw[k, y1, bx0] + btx * bw[k, y1, bx1]))
                            v0 += wk * (cmap[k, 0] * u0 + cmap[k, 1] * u1 + cmap[k, 2] * u2 + cmap[k, 9])
                            v1 += wk * (cmap[k, 3] * u0 + cmap[k, 4] * u1 + cmap[k, 5] * u2 + cmap[k, 10])
                            v2 += wk * (cmap[k, 6] * u0 + cmap[k, 7] * u1 + cmap[k, 8] * u2 + cmap[k, 11])
                    else:
                        v0 = cmap[own, 0] * u0 + cmap[own, 1] * u1 + cmap[own, 2] * u2 + cmap[own, 9]
                        v1 = cmap[own, 3] * u0 + cmap[own, 4] * u1 + cmap[own, 5] * u2 + cmap[own, 10]
                        v2 = cmap[own, 6] * u0 + cmap[own, 7] * u1 + cmap[own, 8] * u2 + cmap[own, 11]
                    if logm:
                        v0 = _interp(tflat, ntab, ntab, (v0 - emin) * escale)
                        v1 = _interp(tflat, ntab, ntab, (v1 - emin) * escale)
                        v2 = _interp(tflat, ntab, ntab, (v2 - emin) * escale)
                    q0 = min(max(cglob[9] * v0 + cglob[10] * v1 + cglob[11] * v2, zero), one)
                    q1 = min(max(cglob[12] * v0 + cglob[13] * v1 + cglob[14] * v2, zero), one)
                    q2 = min(max(cglob[15] * v0 + cglob[16] * v1 + cglob[17] * v2, zero), one)
                    o0 = cr + strength * (q0 - cr)
                    o1 = cg + strength * (q1 - cg)
                    o2 = cb + strength * (q2 - cb)
                if use_coef:
                    x0, x1, tx = x0s[x], x1s[x], txs[x]
                    den = np.float32(0.0)
                    if same[x0] and same[x1] and labels[y0, x0] == own and labels[y0, x1] == own:
                        for k in range(12):  # all four neighbours in the pixel's region: plain bilinear
                            acc[k] = (one - tx) * vert[x0, k] + tx * vert[x1, k]
                        den = np.float32(1.0)
                    else:
                        for k in range(12):
                            acc[k] = 0
                        for j in range(4):
                            yy = y1 if j >= 2 else y0
                            xx = x1 if j % 2 == 1 else x0
                            if labels[yy, xx] != own:
                                continue
                            wgt = (ty if j >= 2 else one - ty) * (tx if j % 2 == 1 else one - tx)
                            if wgt == 0:
                                continue
                            den += wgt
                            for k in range(12):
                                acc[k] += wgt * coef[k, yy, xx]
                    if den > 0:
                        cr, cg, cb = np.float32(r) * k255, np.float32(g) * k255, np.float32(b) * k255
                        inv = one / den
                        o0 += (acc[0] * cr + acc[1] * cg + acc[2] * cb + acc[9]) * inv
                        o1 += (acc[3] * cr + acc[4] * cg + acc[5] * cb + acc[10]) * inv
                        o2 += (acc[6] * cr + acc[7] * cg + acc[8] * cb + acc[11]) * inv
                out[0, y, x] = min(max(o0, zero), one)
                out[1, y, x] = min(max(o1, zero), one)
                out[2, y, x] = min(max(o2, zero), one)


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _rows_table_local(content, table, coef, labels, cmap, cglob, bw, pure, tabs, out, blocks):  # pragma: no cover - compiled
    _rows(content, table, coef, labels, cmap, cglob, bw, pure, tabs, True, False, True, out, blocks)


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _rows_table(content, table, coef, labels, cmap, cglob, bw, pure, tabs, out, blocks):  # pragma: no cover - compiled
    _rows(content, table, coef, labels, cmap, cglob, bw, pure, tabs, True, False, False, out, blocks)


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _rows_map_local(content, table, coef, labels, cmap, cglob, bw, pure, tabs, out, blocks):  # pragma: no cover - compiled
    _rows(content, table, coef, labels, cmap, cglob, bw, pure, tabs, False, True, True, out, blocks)


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _rows_map(content, table, coef, labels, cmap, cglob, bw, pure, tabs, out, blocks):  # pragma: no cover - compiled
    _rows(content, table, coef, labels, cmap, cglob, bw, pure, tabs, False, True, False, out, blocks)


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _rows_local(content, table, coef, labels, cmap, cglob, bw, pure, tabs, out, blocks):  # pragma: no cover - compiled
    _rows(content, table, coef, labels, cmap, cglob, bw, pure, tabs, False, False, True, out, blocks)


KERNELS = {("table", True): _rows_table_local, ("table", False): _rows_table, ("map", True): _rows_map_local,
           ("map", False): _rows_map, (None, True): _rows_local}


def apply_rows(content, labels, out, table=None, coef=None, colour_map=None) -> None:
    """``content`` (H, W, 3) uint8 -> ``out`` (3, H, W) float32 in [0, 1], through the kernel of
    the model's kind; ``labels``: (h, w) int32 region index at the working size; the colour
    part is ``table`` ((R, 65, 65, 65, 3) float32) or ``colour_map`` (``(cmap, cglob, bw, pure, tabs)``, see
    :func:`_rows`) or neither; ``coef``: (12, h, w) float32 local model, or None."""
    kind = ("table" if table is not None else "map" if colour_map is not None else None, coef is not None)
    if kind not in KERNELS:
        raise ValueError("a lift model has a colour part (table or map), a local model, or both")
    table = table if table is not None else np.zeros((1, 1, 1, 1, 1), np.float32)
    cmap, cglob, bw, pure, tabs = colour_map if colour_map is not None else (
        np.zeros((1, 12), np.float32), np.zeros(25, np.float32), np.zeros((1, 1, 1), np.float32),
        np.zeros((1, 1), np.bool_), np.zeros((2, 2), np.float32))
    coef = coef if coef is not None else np.zeros((12, 1, 1), np.float32)
    KERNELS[kind](content, table, coef, labels, cmap, cglob, bw, pure, tabs, out,
                  max(1, min(content.shape[0], 4 * get_num_threads())))


@njit(parallel=True, cache=True)
def _box_sums(x, r, out):  # pragma: no cover - compiled
    channels, h, w = x.shape
    for c in prange(channels):
        rows = np.empty((h, w), np.float64)
        for y in range(h):  # running sums along the row, in float64 (no drift over long rows)
            acc = 0.0
            for i in range(min(r, w)):
                acc += x[c, y, i]
            for i in range(w):
                if i + r < w:
                    acc += x[c, y, i + r]
                if i - r - 1 >= 0:
                    acc -= x[c, y, i - r - 1]
                rows[y, i] = acc
        col = np.zeros(w, np.float64)
        for y in range(min(r, h)):
            for i in range(w):
                col[i] += rows[y, i]
        for y in range(h):
            if y + r < h:
                for i in range(w):
                    col[i] += rows[y + r, i]
            if y - r - 1 >= 0:
                for i in range(w):
                    col[i] -= rows[y - r - 1, i]
            for i in range(w):
                out[c, y, i] = col[i]


def box_sums(x: np.ndarray, r: int) -> np.ndarray:
    """Sums of ``x`` ``(C, h, w)`` over (2r+1)² windows clipped at the borders, float32 out
    (running sums in float64: the sum of a window, not a difference of two large prefix sums)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _box_sums(x, int(r), out)
    return out


@njit(parallel=True, cache=True)
def _window_affine(sums, eps, out):  # pragma: no cover - compiled
    h, w = sums.shape[1], sums.shape[2]
    for y in prange(h):
        for x in range(w):
            n = sums[0, y, x]
            if n <= 0.5:  # no pixel of the region in this window
                for k in range(13):
                    out[k, y, x] = 0.0
                continue
            inv = 1.0 / n
            m0, m1, m2 = sums[1, y, x] * inv, sums[2, y, x] * inv, sums[3, y, x] * inv
            p0, p1, p2 = sums[4, y, x] * inv, sums[5, y, x] * inv, sums[6, y, x] * inv
            # covariance of the content (pairs 00 01 02 11 12 22) + eps I
            s00 = sums[7, y, x] * inv - m0 * m0 + eps
            s01 = sums[8, y, x] * inv - m0 * m1
            s02 = sums[9, y, x] * inv - m0 * m2
            s11 = sums[10, y, x] * inv - m1 * m1 + eps
            s12 = sums[11, y, x] * inv - m1 * m2
            s22 = sums[12, y, x] * inv - m2 * m2 + eps
            # inverse of the symmetric 3x3 by cofactors
            c00 = s11 * s22 - s12 * s12
            c01 = s02 * s12 - s01 * s22
            c02 = s01 * s12 - s02 * s11
            c11 = s00 * s22 - s02 * s02
            c12 = s01 * s02 - s00 * s12
            c22 = s00 * s11 - s01 * s01
            det = s00 * c00 + s01 * c01 + s02 * c02
            idet = 1.0 / det
            mp = (p0, p1, p2)
            for o in range(3):  # output channel: cross-covariance column, then a = Sigma^-1 cp
                q0 = sums[13 + o, y, x] * inv - m0 * mp[o]
                q1 = sums[16 + o, y, x] * inv - m1 * mp[o]
                q2 = sums[19 + o, y, x] * inv - m2 * mp[o]
                a0 = (c00 * q0 + c01 * q1 + c02 * q2) * idet
                a1 = (c01 * q0 + c11 * q1 + c12 * q2) * idet
                a2 = (c02 * q0 + c12 * q1 + c22 * q2) * idet
                out[3 * o, y, x] = a0
                out[3 * o + 1, y, x] = a1
                out[3 * o + 2, y, x] = a2
                out[9 + o, y, x] = mp[o] - (a0 * m0 + a1 * m1 + a2 * m2)
            out[12, y, x] = 1.0


def window_affine(sums: np.ndarray, eps: float) -> np.ndarray:
    """Per window, the ridge least-squares affine map of content to residual from its sums
    ``(22, h, w)``: count, content (3), residual (3), content products (00 01 02 11 12 22),
    content x residual (channel i x output o at 13 + 3i + o). Out ``(13, h, w)`` float32: A
    row-major (output, input), b, and 1 where the window holds pixels of the region (else all 0)."""
    out = np.empty((13,) + sums.shape[1:], np.float32)
    _window_affine(np.ascontiguousarray(sums, dtype=np.float32), float(eps), out)
    return out


@njit(cache=True)
def _lut_normal_equations(c, s, n, gram, rhs):  # pragma: no cover - compiled
    scale = 1.0 / (n - 1)
    for k in range(c.shape[0]):
        c0, c1, c2 = c[k, 0], c[k, 1], c[k, 2]
        p0 = np.sqrt(min(max(c0, 0.0), 1.0)) * (n - 1)
        p1 = np.sqrt(min(max(c1, 0.0), 1.0)) * (n - 1)
        p2 = np.sqrt(min(max(c2, 0.0), 1.0)) * (n - 1)
        i0, i1, i2 = min(int(np.floor(p0)), n - 2), min(int(np.floor(p1)), n - 2), min(int(np.floor(p2)), n - 2)
        t0, t1, t2 = p0 - i0, p1 - i1, p2 - i2
        for dr in range(2):
            wr = t0 if dr else 1.0 - t0
            vr = i0 + dr
            x0 = c0 - (vr * scale) ** 2
            for dg in range(2):
                wg = t1 if dg else 1.0 - t1
                vg = i1 + dg
                x1 = c1 - (vg * scale) ** 2
                for db in range(2):
                    wgt = wr * wg * (t2 if db else 1.0 - t2)
                    vb = i2 + db
                    x2 = c2 - (vb * scale) ** 2
                    idx = (vr * n + vg) * n + vb
                    for i in range(4):
                        xi = x0 if i == 0 else x1 if i == 1 else x2 if i == 2 else 1.0
                        wx = wgt * xi
                        gram[idx, 4 * i] += wx * x0
                        gram[idx, 4 * i + 1] += wx * x1
                        gram[idx, 4 * i + 2] += wx * x2
                        gram[idx, 4 * i + 3] += wx
                        rhs[idx, 3 * i] += wx * s[k, 0]
                        rhs[idx, 3 * i + 1] += wx * s[k, 1]
                        rhs[idx, 3 * i + 2] += wx * s[k, 2]


def lut_normal_equations(c: np.ndarray, s: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The weighted normal equations of every lattice vertex of an ``n``³ LUT from colour pairs
    ``c -> s`` ((N, 3) float64): ``gram`` (n³, 16) = sum w x xT and ``rhs`` (n³, 12) = sum w x sT
    with ``x = [c - v, 1]``, ``w`` the trilinear weight of vertex ``v`` in square-root coordinates."""
    gram = np.zeros((n ** 3, 16))
    rhs = np.zeros((n ** 3, 12))
    _lut_normal_equations(np.ascontiguousarray(c, dtype=np.float64), np.ascontiguousarray(s, dtype=np.float64),
                          int(n), gram, rhs)
    return gram, rhs
