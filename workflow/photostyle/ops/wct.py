"""Feature transforms of the universal methods: whitening-colouring (WCT, Li et al. 2017) and
adaptive instance normalisation (AdaIN, Huang & Belongie 2017), in float64, per matched region.

Shapes: features ``(C, N)`` (channels x positions) or ``(1, C, H, W)`` for :func:`transform`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(C, 1)`` and biased covariance ``(C, C)`` of ``(C, N)`` features, in float64."""
    x = f.double()
    mu = x.mean(dim=1, keepdim=True)
    d = x - mu
    return mu, d @ d.T / max(1, x.shape[1])


def colouring(fs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The style side of WCT: mean and ``Sigma_s^1/2`` (float64), cached per style and region."""
    mu, cov = feature_stats(fs)
    lam, vec = torch.linalg.eigh(cov)
    return mu, (vec * lam.clamp_min(0).sqrt()) @ vec.T


def whiten_colour(fc: torch.Tensor, style: tuple[torch.Tensor, torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """WCT of ``(C, N)`` content features with the style's :func:`colouring`; float32 result."""
    mu_c, cov_c = feature_stats(fc)
    lam, vec = torch.linalg.eigh(cov_c)
    whiten = (vec * (lam.clamp_min(0) + eps).rsqrt()) @ vec.T
    mu_s, col = style
    return ((col @ whiten) @ (fc.double() - mu_c) + mu_s).to(fc.dtype)


def adain_stats(fs: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    x = fs.double()
    return x.mean(dim=1, keepdim=True), (x.var(dim=1, unbiased=False, keepdim=True) + eps).sqrt()


def adain(fc: torch.Tensor, style: tuple[torch.Tensor, torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    mu_c, sd_c = adain_stats(fc, eps)
    mu_s, sd_s = style
    return ((fc.double() - mu_c) / sd_c * sd_s + mu_s).to(fc.dtype)


def region_labels(masks, size: tuple[int, int]) -> torch.Tensor:
    """Hard content region ids ``(h, w)`` at feature resolution: the match with the largest weight."""
    cw = F.interpolate(masks.content_weights[None].float(), size=size, mode="area")[0]
    return cw.argmax(dim=0)


def style_region_masks(masks, size: tuple[int, int]) -> torch.Tensor:
    """The matched style regions ``(K, h, w)`` (bool) at feature resolution."""
    return F.interpolate(masks.style_masks[None].float(), size=size, mode="nearest")[0] > 0.5


def transform(fc: torch.Tensor, fs: torch.Tensor, kind: str, eps: float, masks=None, cache: dict | None = None,
              key=None) -> torch.Tensor:
    """``(1, C, H, W)`` content and ``(1, C, h, w)`` style features -> transformed content
    features (``kind``: ``wct`` or ``adain``), per matched region when ``masks`` are given.

    ``cache`` (per style) keeps the style statistics under ``(key, region)``."""
    stats_fn = colouring if kind == "wct" else (lambda f: adain_stats(f, eps))
    apply_fn = (lambda f, s: whiten_colour(f, s, eps)) if kind == "wct" else (lambda f, s: adain(f, s, eps))
    cache = {} if cache is None else cache
    c = fc.shape[1]
    xc, xs = fc[0].reshape(c, -1), fs[0].reshape(c, -1)

    def style_stats(region, sel):
        k = (key, region)
        if k not in cache:
            part = xs if sel is None else xs[:, sel]
            cache[k] = stats_fn(part if part.shape[1] > 0 else xs)
        return cache[k]

    if masks is None:
        return apply_fn(xc, style_stats("*", None)).reshape(fc.shape)
    labels = region_labels(masks, tuple(fc.shape[-2:])).reshape(-1)
    smasks = style_region_masks(masks, tuple(fs.shape[-2:])).reshape(len(masks.matches), -1)
    out = xc.clone()
    for k, match in enumerate(masks.matches):
        sel_c = labels == k
        if not bool(sel_c.any()):
            continue
        out[:, sel_c] = apply_fn(xc[:, sel_c], style_stats(match.style, smasks[k]))
    return out.reshape(fc.shape)
