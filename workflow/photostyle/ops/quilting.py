"""Image quilting for texture transfer (Efros & Freeman, SIGGRAPH 2001).

The output is tiled, in raster order, with square patches copied from the style photo. Each
patch is chosen by a weighted sum of

* the **overlap error**: squared difference to what is already on the canvas where the patch
  overlaps it (the patches above and to the left; in later passes the whole patch, since the
  canvas starts as the previous pass's result), and
* the **correspondence error**: squared difference between the patch's luminance (optionally
  blurred) and the content photo's luminance there,

``error = (1 - w) * overlap + w * correspondence``, among all style patches on a grid (stride
chosen so that at most ``max_candidates`` are searched: one matrix product per patch, on the
unfolded candidates, for all the patches of an anti-diagonal at once). A random one within ``1 + tolerance`` of the best is taken (seeded). It is
pasted through **minimum-error boundary cuts**: dynamic programming finds the cheapest
vertical path through the left overlap and horizontal path through the top one
(:func:`min_cut_path`), and the patch replaces the canvas only beyond them.

Several passes (``iterations``) shrink the patch by a third each time; the content weight
``w`` goes from ``content_weight`` in the first pass to ``0.1`` in the last (the paper's
schedule ``alpha_i = 0.8 (i-1)/(N-1) + 0.1`` on the overlap term). Region-aware: with matched
masks a patch is drawn from inside the style region matched to the content region at its
centre (or centred in it, where the region holds no whole patch).

Every output pixel is a pixel of the style photo (at the size the quilting runs at); nothing is
blended.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def min_cut_path(err: np.ndarray) -> np.ndarray:
    """The minimum-cost top-to-bottom path through ``err`` ``(h, w)``, moving at most one column
    per row: the column of the path in each row (dynamic programming, then backtracking)."""
    h, w = err.shape
    cost = err.astype(np.float64).copy()
    for i in range(1, h):
        prev = cost[i - 1]
        left = np.concatenate([[np.inf], prev[:-1]])
        right = np.concatenate([prev[1:], [np.inf]])
        cost[i] += np.minimum(np.minimum(left, prev), right)
    path = np.empty(h, np.int64)
    path[-1] = int(np.argmin(cost[-1]))
    for i in range(h - 2, -1, -1):
        j = path[i + 1]
        lo, hi = max(j - 1, 0), min(j + 2, w)
        path[i] = lo + int(np.argmin(cost[i, lo:hi]))
    return path


def _cut_mask(err_left: np.ndarray | None, err_top: np.ndarray | None, p: int) -> np.ndarray:
    """Where the new patch replaces the canvas: beyond the vertical cut through the left overlap
    and below the horizontal cut through the top overlap."""
    mask = np.ones((p, p), bool)
    if err_left is not None:
        path = min_cut_path(err_left)
        mask &= np.arange(p)[None, :] >= path[:, None]
    if err_top is not None:
        path = min_cut_path(err_top.T)
        mask &= np.arange(p)[:, None] >= path[None, :]
    return mask


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (x * x.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, int(round(3 * sigma)))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    y = F.conv2d(F.pad(x[None], (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(x.shape[0], 1, 1, -1),
                 groups=x.shape[0])
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(x.shape[0], 1, -1, 1),
                 groups=x.shape[0])
    return y[0]


def _positions(n: int, p: int, step: int) -> list[int]:
    pos = list(range(0, max(n - p, 0) + 1, step))
    if pos[-1] != max(n - p, 0):
        pos.append(max(n - p, 0))  # the last patch flush with the border
    return pos


def quilt(content: torch.Tensor, style: torch.Tensor, *, patch: int = 24, overlap: float = 1 / 6,
          iterations: int = 3, content_weight: float = 0.9, tolerance: float = 0.1, blur: float = 0.0,
          max_candidates: int = 6000, seed: int = 0, content_regions: torch.Tensor | None = None,
          style_regions: torch.Tensor | None = None) -> torch.Tensor:
    """Texture transfer of ``style`` ``(3, hs, ws)`` onto ``content`` ``(3, h, w)`` (both in
    [0, 1]); returns ``(3, h, w)``. ``content_regions`` ``(h, w)`` int (region k at each pixel)
    and ``style_regions`` ``(K, hs, ws)`` bool (the style region matched to k) restrict each
    patch to its matched style region."""
    content, style = content.float().cpu(), style.float().cpu()
    h, w = content.shape[1:]
    rng = np.random.default_rng(seed)
    c_luma = _blur(_luma(content), blur)
    s_luma = _blur(_luma(style), blur)
    canvas = torch.zeros_like(content)
    for it in range(iterations):
        p = max(3, min(int(round(patch * (2 / 3) ** it)), h, w, *style.shape[1:]))
        ov = max(1, int(round(p * overlap)))
        step = p - ov
        wt = content_weight if iterations == 1 else content_weight + (0.1 - content_weight) * it / (iterations - 1)
        hs, ws = style.shape[1:]
        n_pos = (hs - p + 1) * (ws - p + 1)
        stride = max(1, int(np.ceil(np.sqrt(n_pos / max_candidates))))
        cand = F.unfold(style[None], p, stride=stride)[0].T  # (Nc, 3 p p)
        cand_l = F.unfold(s_luma[None], p, stride=stride)[0].T  # (Nc, p p)
        grid_w = (ws - p) // stride + 1
        idx = torch.arange(cand.shape[0])
        cy, cx = (idx // grid_w) * stride + p // 2, (idx % grid_w) * stride + p // 2
        cand_region = None
        if style_regions is not None:  # (K, Nc): candidates inside the style region k (else: centred in it)
            inside = F.unfold(style_regions[:, None].float(), p, stride=stride).mean(1) > 0.999
            centre = style_regions[:, cy, cx]
            cand_region = torch.where(inside.any(1, keepdim=True), inside, centre)
        c2, cl2 = (cand ** 2).reshape(-1, 3, p * p).sum(1), (cand_l ** 2).sum(1)  # (Nc, p p), (Nc,)
        first = it == 0
        placed = torch.zeros(h, w, dtype=torch.bool)
        ys, xs = _positions(h, p, step), _positions(w, p, step)
        # anti-diagonal wavefront: the patches of one diagonal depend only on earlier diagonals
        # (their left and upper neighbours), so their errors are one matrix product per diagonal;
        # they are pasted in raster order, each cut against the canvas as it is then
        for d in range(len(ys) + len(xs) - 1):
            cells = [(i, d - i) for i in range(len(ys)) if 0 <= d - i < len(xs)]
            targets, masks, lumas = [], [], []
            for i, j in cells:
                y, x = ys[i], xs[j]
                target = canvas[:, y:y + p, x:x + p]
                m = placed[y:y + p, x:x + p].to(cand.dtype) if first else torch.ones(p, p, dtype=cand.dtype)
                targets.append(target.reshape(-1))
                masks.append(m.reshape(-1))
                lumas.append(c_luma[0, y:y + p, x:x + p].reshape(-1))
            tg, mk, lm = torch.stack(targets, 1), torch.stack(masks, 1), torch.stack(lumas, 1)  # (d, n)
            tm = tg * mk.repeat(3, 1)
            n_m = mk.sum(0)  # (n,)
            block = (c2 @ mk - 2 * cand @ tm + (tm * tg).sum(0)) / (3 * n_m.clamp_min(1))
            block = torch.where(n_m > 0, block, torch.zeros_like(block))
            corr = (cl2[:, None] - 2 * cand_l @ lm + (lm ** 2).sum(0)) / (p * p)
            err = (1 - wt) * block + wt * corr  # (Nc, n)
            for col, (i, j) in enumerate(cells):
                y, x = ys[i], xs[j]
                e = err[:, col]
                if cand_region is not None:
                    k = int(content_regions[min(y + p // 2, h - 1), min(x + p // 2, w - 1)])
                    allowed = cand_region[k]
                    if bool(allowed.any()):
                        e = torch.where(allowed, e, torch.full_like(e, float("inf")))
                best = float(e.min())
                choices = torch.nonzero(e <= best * (1 + tolerance) + 1e-12).flatten().numpy()
                pick = int(choices[rng.integers(len(choices))])
                new = cand[pick].reshape(3, p, p)
                target = canvas[:, y:y + p, x:x + p]
                if float(n_m[col]) > 0 or not first:
                    diff = ((new - target) ** 2).sum(0).numpy()
                    left = diff[:, :ov] if x > 0 and (not first or bool(placed[y:y + p, x].any())) else None
                    top = diff[:ov, :] if y > 0 and (not first or bool(placed[y, x:x + p].any())) else None
                    keep = torch.from_numpy(_cut_mask(left, top, p))
                else:
                    keep = torch.ones(p, p, dtype=torch.bool)
                canvas[:, y:y + p, x:x + p] = torch.where(keep, new, target)
                placed[y:y + p, x:x + p] = True
    return canvas
