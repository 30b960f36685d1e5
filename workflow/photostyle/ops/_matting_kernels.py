"""Compiled CPU kernel (Numba) for the matrix-free matting Laplacian product.

Same operator as the torch path of :class:`photostyle.matting.MattingLaplacian` (which stays
the reference, differentiable and used on CUDA), fused into two passes that read the stored
whitened colours once each and allocate no 9x-sized buffers:

1. per 3x3 window k (parallel over window rows): ``m_k = mean_k(p)`` and
   ``t_k = 1/9 sum_j z_kj p_j`` for every channel;
2. per pixel i (parallel over rows), gathering from the (at most 9) windows containing it:
   ``(L p)_i = sum_k p_i - m_k - z_ki . t_k``, one window offset at a time along a row.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath=True)
def window_sums(z, p, sc, m, t):
    """z: (9, 3, Hw, Ww); p: (C, H, W) scaled by sc (H, W); m: (C, Hw, Ww) and t: (C, 3, Hw, Ww) are written."""
    nc = p.shape[0]
    hw, ww = z.shape[2], z.shape[3]
    for wy in prange(hw):
        for c in range(nc):
            for wx in range(ww):
                s = 0.0
                t0 = 0.0
                t1 = 0.0
                t2 = 0.0
                for dy in range(3):
                    for dx in range(3):
                        j = dy * 3 + dx
                        v = p[c, wy + dy, wx + dx] * sc[wy + dy, wx + dx]
                        s += v
                        t0 += z[j, 0, wy, wx] * v
                        t1 += z[j, 1, wy, wx] * v
                        t2 += z[j, 2, wy, wx] * v
                m[c, wy, wx] = s / 9.0
                t[c, 0, wy, wx] = t0 / 9.0
                t[c, 1, wy, wx] = t1 / 9.0
                t[c, 2, wy, wx] = t2 / 9.0


@njit(parallel=True, cache=True, fastmath=True)
def gather(z, p, sc, c0, c1, m, t, out):
    """out = c0 * p + c1 * sc * L(sc * p), from the window sums m, t of sc * p.

    Per output row and channel, each of the (at most 3x3) window offsets adds its term along
    the whole row into a row accumulator: contiguous, branch-free inner loops that vectorise
    (twice as fast as a per-pixel loop over the windows with bounds checks)."""
    nc, h, w = p.shape
    hw, ww = z.shape[2], z.shape[3]
    for y in prange(h):
        acc = np.empty(w, p.dtype)
        pv = np.empty(w, p.dtype)
        for c in range(nc):
            for x in range(w):
                acc[x] = 0.0
                pv[x] = p[c, y, x] * sc[y, x]
            for dy in range(3):
                wy = y - dy
                if wy < 0 or wy >= hw:
                    continue
                for dx in range(3):
                    j = dy * 3 + dx
                    for wx in range(ww):  # the window at (wy, wx) covers pixel (y, wx + dx)
                        acc[wx + dx] += pv[wx + dx] - m[c, wy, wx] - (z[j, 0, wy, wx] * t[c, 0, wy, wx]
                                                                     + z[j, 1, wy, wx] * t[c, 1, wy, wx]
                                                                     + z[j, 2, wy, wx] * t[c, 2, wy, wx])
            for x in range(w):
                out[c, y, x] = c0 * p[c, y, x] + c1 * sc[y, x] * acc[x]


def work_buffers(nc: int, h: int, w: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window means, window projections and a ones scale for ``nc`` channels of an H x W image."""
    return (np.empty((nc, h - 2, w - 2), dtype), np.empty((nc, 3, h - 2, w - 2), dtype), np.ones((h, w), dtype))


def matvec(z: np.ndarray, p: np.ndarray, scale: np.ndarray | None = None, c0: float = 0.0,
           c1: float = 1.0, work: tuple | None = None) -> np.ndarray:
    """``c0 p + c1 S L S p`` (S = diag(``scale``), default: ``L p``) for float32 ``z``
    (9, 3, H-2, W-2) and ``p`` (C, H, W), both C-contiguous. The scaled form is the smoothing
    operator in one pass (no round trips through torch between the steps).

    The arithmetic is in ``p``'s dtype: float32 for the solver's products, float64 (``p``,
    ``scale`` and ``work`` in float64, ``z`` still float32) for the residuals of its iterative
    refinement, where float32 sums would cancel to a floor of about 1e-3."""
    m, t, ones = work if work is not None else work_buffers(*p.shape, dtype=p.dtype)
    out = np.empty_like(p)
    sc = ones if scale is None else scale
    window_sums(z, p, sc, m, t)
    gather(z, p, sc, p.dtype.type(c0), p.dtype.type(c1), m, t, out)
    return out
