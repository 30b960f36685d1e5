"""Colour transfer properties, checked with numpy written here (not the library's helpers):
MKL matches mean and covariance with a symmetric positive-definite map; Reinhard matches
mean/std in the lαβ space of Reinhard et al. 2001 (their published matrices)."""

import numpy as np
import pytest
import torch

from conftest import make_method, stylise
from photostyle.methods import REGISTRY
from photostyle.ops.colour import (ColourMap, _mkl_map, lalphabeta_to_rgb, mkl, mkl_transfer, reinhard, reinhard_transfer,
                                   rgb_to_lalphabeta)
from photostyle.ops.regions import Match, build_masks

# Reinhard, Ashikhmin, Gooch, Shirley, "Color Transfer between Images", IEEE CG&A 2001:
# eq. 4 (RGB -> LMS) and eq. 6 (log10 LMS -> l alpha beta), as printed in the paper.
PAPER_RGB2LMS = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
PAPER_LMS2LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array(
    [[1, 1, 1], [1, 1, -2], [1, -1, 0]], dtype=float)


def _np_pixels(img: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) -> (N, 3) float64, written with numpy."""
    return img[0].double().numpy().reshape(3, -1).T


def _np_lab(pix: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(pix @ PAPER_RGB2LMS.T, 1e-4)) @ PAPER_LMS2LAB.T


def _img(seed, h, w, lo, hi, tint=(1.0, 1.0, 1.0)):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w, generator=g) * (hi - lo) + lo
    return (base * torch.tensor(tint).view(1, 3, 1, 1)).clamp(0, 1)


def test_lalphabeta_uses_the_papers_matrices():
    pix = torch.rand(500, 3, dtype=torch.float64) * 0.9 + 0.05
    assert np.allclose(rgb_to_lalphabeta(pix).numpy(), _np_lab(pix.numpy()), atol=1e-12)


def test_mkl_matches_style_mean_and_covariance_with_a_symmetric_positive_definite_map():
    content = _img(0, 32, 48, 0.2, 0.8)
    content[:, 1] = 0.5 * content[:, 0] + 0.5 * content[:, 1]  # correlated, not degenerate
    style = _img(1, 20, 30, 0.1, 0.5, tint=(1.2, 0.9, 0.7))
    out = mkl_transfer(content, style, eps=1e-12, clip=False)
    o, s, c = _np_pixels(out), _np_pixels(style), _np_pixels(content)
    assert np.allclose(o.mean(0), s.mean(0), atol=1e-5)
    assert np.allclose(np.cov(o.T, bias=True), np.cov(s.T, bias=True), atol=1e-6, rtol=1e-3)
    # the Monge-Kantorovich solution is the unique symmetric positive-definite T with T Sc T = Ss
    t = _mkl_map(*(torch.from_numpy(v) for v in (c.mean(0), np.cov(c.T, bias=True), s.mean(0),
                                                     np.cov(s.T, bias=True))), 1e-12).numpy()
    assert np.allclose(t, t.T, atol=1e-10) and np.linalg.eigvalsh(t).min() > 0
    assert np.allclose(t @ np.cov(c.T, bias=True) @ t, np.cov(s.T, bias=True), atol=1e-8)
    # and it is not trivially the style image: the output is an affine map of the content's pixels
    fit, *_ = np.linalg.lstsq(np.c_[c, np.ones(len(c))], o, rcond=None)
    assert np.abs(np.c_[c, np.ones(len(c))] @ fit - o).max() < 1e-6
    assert np.corrcoef(o[:, 0], c[:, 0])[0, 1] > 0.9


def test_reinhard_matches_mean_and_std_in_lalphabeta():
    content = _img(2, 30, 30, 0.3, 0.7)
    style = _img(3, 25, 25, 0.25, 0.6, tint=(1.0, 0.85, 0.7))
    out = reinhard_transfer(content, style, "lalphabeta", clip=False)
    o, s = _np_lab(_np_pixels(out)), _np_lab(_np_pixels(style))
    assert np.allclose(o.mean(0), s.mean(0), atol=1e-5)
    assert np.allclose(o.std(0), s.std(0), atol=1e-5)


def test_lalphabeta_round_trip():
    pix = torch.rand(1000, 3, dtype=torch.float64) * 0.9 + 0.05
    assert torch.allclose(lalphabeta_to_rgb(rgb_to_lalphabeta(pix)), pix, atol=1e-10)


def test_reinhard_in_rgb_matches_per_channel_mean_and_std():
    content, style = _img(4, 20, 20, 0.3, 0.6), _img(5, 20, 20, 0.4, 0.5)
    o, s = _np_pixels(reinhard_transfer(content, style, "rgb", clip=False)), _np_pixels(style)
    assert np.allclose(o.mean(0), s.mean(0), atol=1e-6) and np.allclose(o.std(0), s.std(0), atol=1e-6)


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


@pytest.mark.parametrize("fn,kw", [(reinhard, {}), (reinhard, {"colour_space": "rgb"}), (mkl, {}),
                                   (reinhard, {"strength": 0.4}), (mkl, {"strength": 0.7})])
def test_the_recorded_colour_map_is_the_methods_result(fn, kw):
    """The ColourMap a colour method returns (stored with its output for the lift), read back from
    its JSON, reproduces the method's result: everywhere for a global transfer; inside each
    region (soft weight ~1) for a region-aware one, each region by its own map."""
    content = _img(10, 24, 32, 0.05, 0.9)
    style = torch.cat([_img(11, 10, 20, 0.2, 0.7, tint=(1.3, 0.8, 0.6)), _img(12, 10, 20, 0.1, 0.5, tint=(0.6, 0.9, 1.4))], 2)
    pix = content[0].reshape(3, -1).T.double()
    out, cmap = fn(content, style, with_map=True, **kw)
    cmap = ColourMap.from_json(cmap.to_json())
    assert len(cmap.regions) == 1 and cmap.regions[0].labels is None
    assert (cmap.apply(pix, cmap.regions[0]) - out[0].reshape(3, -1).T).abs().max() < 1e-5
    # region-aware: left / right half of the content matched to top / bottom half of the style
    cl = np.zeros((24, 32), np.int64)
    cl[:, 16:] = 5
    sl = np.zeros((20, 20), np.int64)
    sl[10:] = 5
    masks = build_masks(cl, sl, [Match(0, 0, "same"), Match(5, 5, "same")], "cpu", blur_fraction=0.03)
    out, cmap = fn(content, style, masks, with_map=True, **kw)
    cmap = ColourMap.from_json(cmap.to_json())
    inside = masks.content_weights.max(0).values.reshape(-1) > 0.99999
    got = out[0].reshape(3, -1).T.double()
    per_region = []
    for label in (0, 5):
        sel = torch.from_numpy(cl.reshape(-1) == label) & inside
        assert sel.sum() > 100
        region = cmap.region_of(label)
        assert region.labels == (label,)
        assert (cmap.apply(pix[sel], region) - got[sel]).abs().max() < 1e-5
        per_region.append(cmap.apply(pix, region))
    assert (per_region[0] - per_region[1]).abs().max() > 0.05  # two different maps: a shared one would fail above
    assert cmap.region_of(3) is None  # a label the method never saw has no map


def _gradient_and_edge(h=64, w=160):
    """A smooth horizontal gradient (a sky) in the top half, a hard edge to a dark band below."""
    x = np.linspace(0.35, 0.75, w)
    img = np.empty((h, w, 3))
    img[:] = np.stack([x, x * 0.9 + 0.05, np.full(w, 0.85)], -1)
    img[h // 2:] = [0.15, 0.12, 0.1]
    return (img * 255).round().astype(np.uint8)


@pytest.mark.parametrize("fn", [reinhard, mkl])
@pytest.mark.parametrize("feather", [0.25, 0.0])
def test_a_label_border_through_a_smooth_gradient_draws_no_edge(fn, feather):
    """k-means splits a smooth sky into two regions; styled from two differently coloured style
    regions, the output must not step where the photo has no edge. With the edge-aware feathering
    the largest step across the label border stays within twice the output's steepest step
    elsewhere along the gradient; without it (the broken variant, feather 0) it does not."""
    img = _gradient_and_edge()
    h, w = img.shape[:2]
    labels = np.zeros((h, w), np.int64)
    labels[: h // 2, w // 2:] = 1  # the sky split in the middle of the gradient
    labels[h // 2:] = 2
    style = torch.cat([_img(11, 12, 24, 0.3, 0.7, tint=(1.3, 0.8, 0.6)), _img(12, 12, 24, 0.3, 0.7, tint=(0.6, 0.9, 1.4)),
                       _img(13, 12, 24, 0.05, 0.2)], 2)
    sl = np.repeat(np.array([0, 1, 2]), 12)[:, None].repeat(24, 1)
    masks = build_masks(labels, sl, [Match(0, 0, "same"), Match(1, 1, "same"), Match(2, 2, "same")], "cpu",
                        blur_fraction=0.01, guide=img, feather_fraction=feather)
    out = fn(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, style, masks)[0].numpy()
    row = out[:, h // 4]  # (3, w): a row through the sky
    steps = np.abs(np.diff(row, axis=1)).max(0)
    border = steps[w // 2 - 2: w // 2 + 2].max()
    elsewhere = np.concatenate([steps[4: w // 2 - 8], steps[w // 2 + 8: -4]]).max()
    if feather:
        assert border <= 2 * elsewhere + 1 / 255, (border, elsewhere)
        # the real edge between sky and ground stays sharp: the ground keeps its own map right below it
        col = out[:, :, w // 4]
        assert np.abs(col[:, h // 2] - col[:, h // 2 + 3]).max() < 0.02
    else:
        assert border > 2 * elsewhere + 1 / 255
