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
"""

from __future__ import annotations

import math

import torch

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


def reinhard_transfer(content: torch.Tensor, style: torch.Tensor, colour_space: str = "lalphabeta",
                      style_stats=None, clip: bool = True) -> torch.Tensor:
    """Match per-channel mean and std of ``content`` to ``style`` in ``colour_space``."""
    fwd, inv = (rgb_to_lalphabeta, lalphabeta_to_rgb) if colour_space == "lalphabeta" else (lambda x: x, lambda x: x)
    c = fwd(_pixels(content))
    if style_stats is None:
        s = fwd(_pixels(style))
        style_stats = (s.mean(0), s.std(0, unbiased=False))
    mu_s, sd_s = style_stats
    mu_c, sd_c = c.mean(0), c.std(0, unbiased=False)
    out = (c - mu_c) * (sd_s / sd_c.clamp_min(1e-8)) + mu_s
    rgb = _unpixels(inv(out), content)
    return rgb.clamp(0.0, 1.0) if clip else rgb


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
                 style_stats=None, clip: bool = True) -> torch.Tensor:
    """Linear Monge-Kantorovich colour map: output mean/covariance equal the style's."""
    c = _pixels(content)
    mu_c, cov_c = mean_cov(c)
    mu_s, cov_s = style_stats if style_stats is not None else mean_cov(_pixels(style))
    out = (c - mu_c) @ _mkl_map(mu_c, cov_c, mu_s, cov_s, eps).T + mu_s
    rgb = _unpixels(out, content)
    return rgb.clamp(0.0, 1.0) if clip else rgb


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


def regionwise(content: torch.Tensor, style: torch.Tensor, masks, state: dict, key: str, to_space, from_space,
               region_map) -> torch.Tensor:
    """``sum_k w_k * region_map(content pixels in space, w_k, style region k's pixels in space)``.

    ``region_map(c, w, s_stats)`` maps all content pixels ``c`` with the content statistics under
    weights ``w`` and the style region's statistics ``s_stats`` (cached per style region).
    """
    c = to_space(_pixels(content))
    s_all = _pixels(style)
    weights = masks.content_weights.reshape(len(masks.matches), -1)
    cache = state.setdefault("region_stats", {})
    out = torch.zeros_like(c)
    for k, match in enumerate(masks.matches):
        w = weights[k].to(c.device)
        if float(w.sum()) < 1e-6:
            continue
        skey = (key, match.style)
        if skey not in cache:
            sel = masks.style_masks[k].reshape(-1).to(s_all.device)
            cache[skey] = to_space(s_all[sel])
        out += w.double()[:, None] * region_map(c, w, cache[skey])
    return _unpixels(from_space(out), content).clamp(0.0, 1.0)


def _blend(result: torch.Tensor, content: torch.Tensor, strength: float) -> torch.Tensor:
    return result if strength >= 1.0 else torch.lerp(content, result, strength)


def _style_stats(state: dict, key: tuple, style: torch.Tensor, fn):
    """Statistics of the style photo, computed once per style (``state`` lives for one style)."""
    cache = state.setdefault("style_stats", {})
    if key not in cache:
        cache[key] = fn(style)
    return cache[key]


def reinhard(content: torch.Tensor, style: torch.Tensor, masks=None, *, colour_space: str = "lalphabeta",
             strength: float = 1.0, state: dict | None = None) -> torch.Tensor:
    """Reinhard transfer of ``(1, 3, H, W)`` content to ``(1, 3, h, w)`` style, per matched region
    when ``masks`` are given; ``state`` caches the style's statistics (one dict per style)."""
    state = {} if state is None else state
    fwd = rgb_to_lalphabeta if colour_space == "lalphabeta" else (lambda x: x)
    if masks is not None:
        inv = lalphabeta_to_rgb if colour_space == "lalphabeta" else (lambda x: x)

        def region_map(c, w, s):
            mu_c, cov_c = weighted_mean_cov(c, w)
            sd_c = cov_c.diagonal().clamp_min(0).sqrt()
            return (c - mu_c) * (s.std(0, unbiased=False) / sd_c.clamp_min(1e-8)) + s.mean(0)

        out = regionwise(content, style, masks, state, "reinhard:" + colour_space, fwd, inv, region_map)
        return _blend(out, content, strength)

    def stats(s):
        p = fwd(_pixels(s))
        return p.mean(0), p.std(0, unbiased=False)

    st = _style_stats(state, ("reinhard", colour_space), style, stats)
    out = reinhard_transfer(content, style, colour_space, style_stats=st)
    return _blend(out, content, strength)


def mkl(content: torch.Tensor, style: torch.Tensor, masks=None, *, eps: float = 1e-6, strength: float = 1.0,
        state: dict | None = None) -> torch.Tensor:
    """Linear Monge-Kantorovich transfer, per matched region when ``masks`` are given."""
    state = {} if state is None else state
    if masks is not None:
        def region_map(c, w, s):
            mu_c, cov_c = weighted_mean_cov(c, w)
            mu_s, cov_s = mean_cov(s)
            return (c - mu_c) @ _mkl_map(mu_c, cov_c, mu_s, cov_s, eps).T + mu_s

        out = regionwise(content, style, masks, state, "mkl", lambda x: x, lambda x: x, region_map)
        return _blend(out, content, strength)
    st = _style_stats(state, ("mkl",), style, lambda s: mean_cov(_pixels(s)))
    out = mkl_transfer(content, style, eps=eps, style_stats=st)
    return _blend(out, content, strength)
