"""Compiled CPU kernel (Numba) that applies a fitted lift to a full-resolution photo.

One pass over the photo, rows in parallel; per pixel:

* the colour table: trilinear interpolation of a dense table (``(R, 65, 65, 65, 3)``: every
  4th 8-bit level, 256 included) of the region's lattice of affine models, evaluated
  beforehand (:func:`photostyle.ops.lift.dense_table`); trilinear interpolation in linear
  colour coordinates is exact for affine maps;
* the local model: bilinear interpolation of the working-size coefficient maps from the four
  neighbours that share the pixel's region (its nearest working pixel's), then ``A c + b``.

It computes the same as :func:`photostyle.ops.lift.apply_reference` (tested against it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

STEP = 4  # 8-bit levels between table entries
TABLE = 256 // STEP + 1  # 65 entries per axis


@njit(parallel=True, cache=True, fastmath=False)
def apply_rows(content, table, coef, labels, use_table, use_coef, out):  # pragma: no cover - compiled
    """``content`` (H, W, 3) uint8 -> ``out`` (3, H, W) float32 in [0, 1]."""
    height, width = content.shape[0], content.shape[1]
    h, w = labels.shape
    for y in prange(height):
        sy = min(max((y + 0.5) * h / height - 0.5, 0.0), h - 1.0)
        y0 = min(int(np.floor(sy)), max(h - 2, 0))
        y1 = min(y0 + 1, h - 1)
        ty = sy - y0
        ny = int(np.floor(sy + 0.5))
        acc = np.empty(12, np.float32)
        for x in range(width):
            sx = min(max((x + 0.5) * w / width - 0.5, 0.0), w - 1.0)
            x0 = min(int(np.floor(sx)), max(w - 2, 0))
            x1 = min(x0 + 1, w - 1)
            tx = sx - x0
            own = labels[ny, int(np.floor(sx + 0.5))]
            r, g, b = content[y, x, 0], content[y, x, 1], content[y, x, 2]
            o0 = np.float32(0.0)
            o1 = np.float32(0.0)
            o2 = np.float32(0.0)
            if use_table:
                ir, ig, ib = r // 4, g // 4, b // 4
                fr, fg, fb = (r % 4) / 4.0, (g % 4) / 4.0, (b % 4) / 4.0
                for dr in range(2):
                    wr = fr if dr else 1.0 - fr
                    for dg in range(2):
                        wg = fg if dg else 1.0 - fg
                        for db in range(2):
                            wgt = wr * wg * (fb if db else 1.0 - fb)
                            if wgt != 0.0:
                                o0 += wgt * table[own, ir + dr, ig + dg, ib + db, 0]
                                o1 += wgt * table[own, ir + dr, ig + dg, ib + db, 1]
                                o2 += wgt * table[own, ir + dr, ig + dg, ib + db, 2]
            if use_coef:
                for k in range(12):
                    acc[k] = 0.0
                den = 0.0
                for j in range(4):
                    yy = y1 if j >= 2 else y0
                    xx = x1 if j % 2 == 1 else x0
                    if labels[yy, xx] != own:
                        continue
                    wgt = (ty if j >= 2 else 1.0 - ty) * (tx if j % 2 == 1 else 1.0 - tx)
                    if wgt == 0.0:
                        continue
                    den += wgt
                    for k in range(12):
                        acc[k] += wgt * coef[k, yy, xx]
                if den > 0.0:
                    cr, cg, cb = r / 255.0, g / 255.0, b / 255.0
                    inv = 1.0 / den
                    o0 += (acc[0] * cr + acc[1] * cg + acc[2] * cb + acc[9]) * inv
                    o1 += (acc[3] * cr + acc[4] * cg + acc[5] * cb + acc[10]) * inv
                    o2 += (acc[6] * cr + acc[7] * cg + acc[8] * cb + acc[11]) * inv
            out[0, y, x] = min(max(o0, 0.0), 1.0)
            out[1, y, x] = min(max(o1, 0.0), 1.0)
            out[2, y, x] = min(max(o2, 0.0), 1.0)
