"""Per-image measures of an output against its content and style photos (numpy/scikit-image).

* ``ssim_lum``: SSIM (scikit-image, Wang et al. 2004 Gaussian window) of output and content
  luminance: structure preservation, 1 = identical.
* ``grad_corr``: Pearson correlation of the Sobel gradient magnitudes of output and content
  luminance: edge preservation, 1 = same edges.
* ``colour_dist``: sliced 1-Wasserstein distance between the output's and the style photo's
  pixel distributions in CIELAB (scikit-image colour conversion), in Lab units; 0 = same
  colour distribution. ``colour_dist_content`` is the same for the unmodified content photo,
  the baseline a method should move away from.
* ``colour_dist_regions`` (segmentation on): the same distance per matched region pair
  (output pixels of a content region against the pixels of its matched style region),
  averaged with the content regions' areas as weights.
* ``style_dist`` (``metrics.style_distance``): VGG-19 Gram-matrix distance to the style
  photo; ``style_dist_weights`` says which weights computed it (``random, seed N`` when no
  pretrained VGG-19 was available -- then it is not a perceptual measure).
"""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2lab
from skimage.filters import sobel
from skimage.metrics import structural_similarity


def _luma(image: np.ndarray) -> np.ndarray:
    img = image.astype(np.float64) / 255.0
    return img @ np.array([0.299, 0.587, 0.114])


def ssim_luminance(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luminance of two ``(H, W, 3)`` uint8 images of equal size."""
    la, lb = _luma(a), _luma(b)
    win = min(7, *(s if s % 2 else s - 1 for s in la.shape))
    if win < 3:
        return float(np.allclose(la, lb))
    return float(structural_similarity(la, lb, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, win_size=win))


def gradient_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ga, gb = sobel(_luma(a)).ravel(), sobel(_luma(b)).ravel()
    sa, sb = ga.std(), gb.std()
    if sa < 1e-12 or sb < 1e-12:
        return float(np.allclose(ga, gb))
    return float(np.mean((ga - ga.mean()) * (gb - gb.mean())) / (sa * sb))


def lab_sample(image: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` pixels of an ``(H, W, 3)`` uint8 image in CIELAB, ``(n, 3)``."""
    pix = image.reshape(-1, 3)
    if pix.shape[0] > n:
        pix = pix[rng.choice(pix.shape[0], size=n, replace=False)]
    return rgb2lab(pix.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)


def projections(n: int, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def projected_quantiles(x: np.ndarray, dirs: np.ndarray, levels: int = 256) -> np.ndarray:
    """``(levels, n_dirs)`` quantiles of the samples ``x`` projected on each direction.

    Sorting once and reading mid-point ranks is exact for the empirical distribution and
    about 20x faster than ``np.quantile`` with many levels.
    """
    proj = np.sort((x @ dirs.T).astype(np.float32), axis=0)
    ranks = ((np.arange(levels) + 0.5) / levels * proj.shape[0]).astype(np.int64)
    return proj[ranks]


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, dirs: np.ndarray, levels: int = 256) -> float:
    """Mean over directions of the 1-Wasserstein distance between projected samples."""
    return swd_from_quantiles(projected_quantiles(x, dirs, levels), projected_quantiles(y, dirs, levels))


def swd_from_quantiles(qx: np.ndarray, qy: np.ndarray) -> float:
    return float(np.abs(qx - qy).mean())


def image_metrics(out: np.ndarray, content: np.ndarray, style_q: np.ndarray, dirs: np.ndarray,
                  n_sample: int, seed: int) -> dict:
    """Metrics of one output; ``style_q`` is :func:`projected_quantiles` of the style photo."""
    rng = np.random.default_rng(seed)
    return {
        "ssim_lum": ssim_luminance(out, content),
        "grad_corr": gradient_correlation(out, content),
        "colour_dist": swd_from_quantiles(projected_quantiles(lab_sample(out, n_sample, rng), dirs), style_q),
    }


def region_colour_distance(out: np.ndarray, content: np.ndarray, style: np.ndarray, pid: str, sid: str,
                           regions, dirs: np.ndarray, n_sample: int, seed: int,
                           cache: dict | None = None) -> float | None:
    """Area-weighted colour distance over matched region pairs (None without usable labels).

    ``cache`` (one dict per job) keeps what does not depend on the output image: the matching
    of each photo/style pair and the projected quantiles of each style region.
    """
    from photostyle.ops.regions import WHOLE

    if regions is None or regions.usable(pid, sid):
        return None
    cache = {} if cache is None else cache
    if ("match", pid, sid) not in cache:
        cache[("match", pid, sid)] = regions.matches(pid, sid, content, style)[0]
    matches = cache[("match", pid, sid)]
    c_lab, s_lab = regions.labels("content", pid)[0], regions.labels("style", sid)[0]
    rng = np.random.default_rng(seed)
    total, acc = 0, 0.0
    for m in matches:
        c_sel = c_lab == m.content
        if ("style", sid, m.style) not in cache:
            s_sel = np.ones_like(s_lab, bool) if m.style == WHOLE else s_lab == m.style
            cache[("style", sid, m.style)] = projected_quantiles(
                lab_sample(style[s_sel][:, None], n_sample, np.random.default_rng(seed)), dirs) if s_sel.any() else None
        q_sty = cache[("style", sid, m.style)]
        if not c_sel.any() or q_sty is None:
            continue
        q_out = projected_quantiles(lab_sample(out[c_sel][:, None], n_sample, rng), dirs)
        acc += c_sel.sum() * swd_from_quantiles(q_out, q_sty)
        total += c_sel.sum()
    return acc / total if total else None
