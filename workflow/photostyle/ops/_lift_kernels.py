"""Compiled CPU kernel (Numba) that applies a fitted lift to a full-resolution photo.

One pass over the photo, rows in parallel; per pixel:

* the colour table: trilinear interpolation of a dense table (``(R, 65, 65, 65, 3)``: every
  4th 8-bit level, 256 included) of the region's lattice of affine models, evaluated
  beforehand (:func:`photostyle.ops.lift.dense_table`); trilinear interpolation in linear
  colour coordinates is exact for affine maps;
* the local model: bilinear interpolation of the working-size coefficient maps from the four
  neighbours that share the pixel's region (its nearest working pixel's), then ``A c + b``.

Each row first interpolates the coefficients between its two working rows for the columns
whose two rows share a region, so most pixels need only the horizontal step. ``fastmath``
lets the compiler contract multiply-adds: results differ from
:func:`photostyle.ops.lift.apply_reference` by float32 rounding (tested to 2e-6) and are
identical from run to run.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

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


@njit(parallel=True, cache=True, fastmath=True)
def apply_rows(content, table, coef, labels, use_table, use_coef, out):  # pragma: no cover - compiled
    """``content`` (H, W, 3) uint8 -> ``out`` (3, H, W) float32 in [0, 1]."""
    height, width = content.shape[0], content.shape[1]
    h, w = labels.shape
    x0s, x1s, txs, nxs = _columns(width, w)
    for y in prange(height):
        sy = min(max((y + 0.5) * h / height - 0.5, 0.0), h - 1.0)
        y0 = min(int(np.floor(sy)), max(h - 2, 0))
        y1 = min(y0 + 1, h - 1)
        ty = np.float32(sy - y0)
        ny = int(np.floor(sy + 0.5))
        # the coefficients interpolated between the two working rows, for columns whose two
        # rows share a region (most): the pixels there need only the horizontal step
        vert = np.empty((w, 12), np.float32)
        same = np.empty(w, np.bool_)
        if use_coef:
            for xw in range(w):
                same[xw] = labels[y0, xw] == labels[y1, xw]
                if same[xw]:
                    for k in range(12):
                        vert[xw, k] = (1 - ty) * coef[k, y0, xw] + ty * coef[k, y1, xw]
        acc = np.empty(12, np.float32)
        for x in range(width):
            x0, x1, tx = x0s[x], x1s[x], txs[x]
            own = labels[ny, nxs[x]]
            r, g, b = content[y, x, 0], content[y, x, 1], content[y, x, 2]
            o0 = np.float32(0.0)
            o1 = np.float32(0.0)
            o2 = np.float32(0.0)
            if use_table:
                ir, ig, ib = r // 4, g // 4, b // 4
                fr, fg, fb = np.float32(r % 4) / 4, np.float32(g % 4) / 4, np.float32(b % 4) / 4
                for dr in range(2):
                    wr = fr if dr else 1 - fr
                    for dg in range(2):
                        wg = fg if dg else 1 - fg
                        for db in range(2):
                            wgt = wr * wg * (fb if db else 1 - fb)
                            if wgt != 0:
                                o0 += wgt * table[own, ir + dr, ig + dg, ib + db, 0]
                                o1 += wgt * table[own, ir + dr, ig + dg, ib + db, 1]
                                o2 += wgt * table[own, ir + dr, ig + dg, ib + db, 2]
            if use_coef:
                den = np.float32(0.0)
                if same[x0] and same[x1] and labels[y0, x0] == own and labels[y0, x1] == own:
                    for k in range(12):  # all four neighbours in the pixel's region: plain bilinear
                        acc[k] = (1 - tx) * vert[x0, k] + tx * vert[x1, k]
                    den = np.float32(1.0)
                else:
                    for k in range(12):
                        acc[k] = 0
                    for j in range(4):
                        yy = y1 if j >= 2 else y0
                        xx = x1 if j % 2 == 1 else x0
                        if labels[yy, xx] != own:
                            continue
                        wgt = (ty if j >= 2 else 1 - ty) * (tx if j % 2 == 1 else 1 - tx)
                        if wgt == 0:
                            continue
                        den += wgt
                        for k in range(12):
                            acc[k] += wgt * coef[k, yy, xx]
                if den > 0:
                    cr, cg, cb = np.float32(r) / 255, np.float32(g) / 255, np.float32(b) / 255
                    inv = 1 / den
                    o0 += (acc[0] * cr + acc[1] * cg + acc[2] * cb + acc[9]) * inv
                    o1 += (acc[3] * cr + acc[4] * cg + acc[5] * cb + acc[10]) * inv
                    o2 += (acc[6] * cr + acc[7] * cg + acc[8] * cb + acc[11]) * inv
            out[0, y, x] = min(max(o0, 0.0), 1.0)
            out[1, y, x] = min(max(o1, 0.0), 1.0)
            out[2, y, x] = min(max(o2, 0.0), 1.0)
