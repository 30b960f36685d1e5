"""Colour transfer properties: MKL matches mean and covariance; Reinhard matches mean/std."""

import pytest
import torch

from conftest import make_method, stylise
from photostyle.methods import REGISTRY
from photostyle.ops.colour import (
    _pixels, lalphabeta_to_rgb, mean_cov, mkl_transfer, reinhard_transfer, rgb_to_lalphabeta,
)


def _img(seed, h, w, lo, hi, tint=(1.0, 1.0, 1.0)):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w, generator=g) * (hi - lo) + lo
    return (base * torch.tensor(tint).view(1, 3, 1, 1)).clamp(0, 1)


def test_mkl_matches_style_mean_and_covariance():
    content = _img(0, 32, 48, 0.2, 0.8)
    content[:, 1] = 0.5 * content[:, 0] + 0.5 * content[:, 1]  # correlated, not degenerate
    style = _img(1, 20, 30, 0.1, 0.5, tint=(1.2, 0.9, 0.7))
    out = mkl_transfer(content, style, eps=1e-12, clip=False)
    mu_o, cov_o = mean_cov(_pixels(out))
    mu_s, cov_s = mean_cov(_pixels(style))
    assert torch.allclose(mu_o, mu_s, atol=1e-5)
    assert torch.allclose(cov_o, cov_s, atol=1e-6, rtol=1e-3)
    # and it is not trivially the style image
    assert out.shape == content.shape


def test_reinhard_matches_mean_and_std_in_lalphabeta():
    content = _img(2, 30, 30, 0.3, 0.7)
    style = _img(3, 25, 25, 0.25, 0.6, tint=(1.0, 0.85, 0.7))
    out = reinhard_transfer(content, style, "lalphabeta", clip=False)
    o, s = rgb_to_lalphabeta(_pixels(out)), rgb_to_lalphabeta(_pixels(style))
    assert torch.allclose(o.mean(0), s.mean(0), atol=1e-5)
    assert torch.allclose(o.std(0, unbiased=False), s.std(0, unbiased=False), atol=1e-5)


def test_lalphabeta_round_trip():
    pix = torch.rand(1000, 3, dtype=torch.float64) * 0.9 + 0.05
    assert torch.allclose(lalphabeta_to_rgb(rgb_to_lalphabeta(pix)), pix, atol=1e-10)


def test_reinhard_in_rgb_matches_per_channel_stats():
    content, style = _img(4, 20, 20, 0.3, 0.6), _img(5, 20, 20, 0.4, 0.5)
    out = reinhard_transfer(content, style, "rgb", clip=False)
    assert torch.allclose(_pixels(out).mean(0), _pixels(style).mean(0), atol=1e-6)


@pytest.mark.parametrize("name", sorted(n for n, m in REGISTRY.items() if m.module() == "methods.colour"))
def test_colour_methods_keep_shape_range_and_honour_strength(name):
    content, style = _img(6, 17, 23, 0.0, 1.0), _img(7, 11, 9, 0.2, 0.4, tint=(1.3, 0.8, 0.6))
    out = stylise(make_method(name, {"strength": 1.0}), content, style)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert (out - content).abs().mean() > 0.02  # it changed the colours
    same = stylise(make_method(name, {"strength": 0.0}), content, style)
    assert torch.allclose(same, content, atol=1e-6)


def test_style_statistics_cached_per_job():
    content, style = _img(8, 10, 10, 0, 1), _img(9, 10, 10, 0, 1)
    method = make_method("mkl")
    state = method.prepare_style(style, "s")
    stylise(method, content, style, state=state)
    cached = state.cache["style_stats"][("mkl",)]
    stylise(method, content, style, state=state)
    assert state.cache["style_stats"][("mkl",)] is cached
