"""Folder and collection scope (stylize.scope): one colour map fitted on pooled samples of several
photos keeps their differences, where photo scope erases them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_photo

from photostyle.ops.colour import GLOBAL, SPACES, PooledStats, apply_shared, fit_shared, mkl, reinhard
from photostyle.ops.regions import Match, build_masks


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def _one_stop_darker(img: np.ndarray) -> np.ndarray:
    """Half the light: in linear sRGB, then encoded again (what the camera gives one stop down)."""
    x = img.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 0.5
    enc = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(enc * 255).astype(np.uint8)


def _luma(t: torch.Tensor) -> float:
    return float((t[0] * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0).mean())


def _small(name, side=96):
    from PIL import Image

    return np.asarray(Image.fromarray(sample_photo(name)).resize((side, side * 3 // 4), Image.LANCZOS))


def _pool(images, space, n=2048, seed=0):
    """Pooled statistics of a deterministic sample of each image, as the grade stage pools them."""
    stats = PooledStats()
    rng = np.random.default_rng(seed)
    for img in images:
        pix = img.reshape(-1, 3)[np.sort(rng.choice(img.shape[0] * img.shape[1], n, replace=False))]
        stats.add(GLOBAL, SPACES[space][0](torch.from_numpy(pix / 255.0)))
    return stats


def _style_stats(style, space):
    stats = PooledStats()
    stats.add(GLOBAL, SPACES[space][0](torch.from_numpy(style.reshape(-1, 3) / 255.0)))
    return stats


@pytest.mark.parametrize("kind, space", [("reinhard", "lalphabeta"), ("mkl", "rgb")])
def test_folder_scope_keeps_two_exposures_apart_photo_scope_does_not(kind, space):
    bright = _small("coffee.jpg")
    dark = _one_stop_darker(bright)
    style = _small("chelsea.jpg")
    fn = reinhard if kind == "reinhard" else mkl
    # photo scope: each photo fitted to itself -> both at the style's mean brightness
    per_photo = [_luma(fn(_tensor(x), _tensor(style))) for x in (bright, dark)]
    assert abs(per_photo[0] - per_photo[1]) < 0.01, per_photo
    # folder scope: one map fitted on both photos' pooled samples
    fit = fit_shared(kind, _pool([bright, dark], space), _style_stats(style, space), space=space, photos=2)
    folder = [_luma(apply_shared(_tensor(x), fit)[0]) for x in (bright, dark)]
    before = [_luma(_tensor(x)) for x in (bright, dark)]
    assert folder[0] > folder[1] + 0.05, (folder, before)  # ordered and clearly apart
    assert folder[0] - folder[1] > 0.4 * (before[0] - before[1]), (folder, before)  # the gap survives
    # and the look is the style's: the pair's mean brightness moves to the style's
    style_luma = _luma(_tensor(style))
    assert abs((folder[0] + folder[1]) / 2 - style_luma) < abs((before[0] + before[1]) / 2 - style_luma)


@pytest.mark.parametrize("kind, space", [("reinhard", "lalphabeta"), ("mkl", "rgb")])
def test_a_folder_of_one_photo_sampled_whole_is_the_photo_scope_transfer(kind, space):
    content, style = _small("astronaut.jpg", 64), _small("rocket.jpg", 64)
    stats = PooledStats()
    stats.add(GLOBAL, SPACES[space][0](torch.from_numpy(content.reshape(-1, 3) / 255.0)))
    fit = fit_shared(kind, stats, _style_stats(style, space), space=space, photos=1)
    fn = reinhard if kind == "reinhard" else mkl
    expect = fn(_tensor(content), _tensor(style)).double()
    got, cmap = apply_shared(_tensor(content), fit)
    assert torch.allclose(got.double(), expect, atol=1e-5)
    assert cmap.regions[0].labels is None and cmap.space == space


def test_strength_blends_the_shared_map_with_the_photo():
    content, style = _small("coffee.jpg", 48), _small("chelsea.jpg", 48)
    full = fit_shared("mkl", _pool([content], "rgb", 512), _style_stats(style, "rgb"), space="rgb")
    half = fit_shared("mkl", _pool([content], "rgb", 512), _style_stats(style, "rgb"), space="rgb", strength=0.5)
    x = _tensor(content)
    assert torch.allclose(apply_shared(x, half)[0], (x + apply_shared(x, full)[0]) / 2, atol=1e-5)


def test_region_groups_pool_across_photos_and_take_their_style_region():
    """Two photos with a sky (top) and ground (bottom) of different brightness; the style's sky is
    blue and its ground brown. Pooled per matched group, the sky pixels of both photos together
    take the style sky's mean, the ground pixels the style ground's, and each photo keeps its own
    brightness relative to the other."""
    rng = np.random.default_rng(1)
    h, w = 40, 60
    labels = np.zeros((h, w), np.int32)
    labels[h // 2:] = 1

    def photo(sky, ground, noise=8.0):
        img = np.where(labels[..., None] == 0, sky, ground) + rng.normal(0, noise, (h, w, 3))
        return np.clip(img, 0, 255).astype(np.uint8)

    photos = [photo([200, 200, 210], [90, 100, 80]), photo([150, 150, 160], [60, 70, 50])]
    style = photo([60, 110, 220], [140, 90, 40], noise=25.0)  # a sky with texture: its spread is the look's
    space = "lalphabeta"
    fwd = SPACES[space][0]
    c_stats, s_stats = PooledStats(), PooledStats()
    s_pix = fwd(torch.from_numpy(style.reshape(-1, 3) / 255.0))
    s_stats.add(GLOBAL, s_pix)
    for lab in (0, 1):
        s_stats.add(str(lab), s_pix[torch.from_numpy(labels.reshape(-1) == lab)])
    for img in photos:
        c = fwd(torch.from_numpy(img.reshape(-1, 3) / 255.0))
        c_stats.add(GLOBAL, c)
        for lab in (0, 1):
            c_stats.add(str(lab), c[torch.from_numpy(labels.reshape(-1) == lab)])
    fit = fit_shared("reinhard", c_stats, s_stats, space=space, photos=2)
    assert sorted(fit.groups) == ["0", "1"]
    matches = [Match(0, 0, "same"), Match(1, 1, "same")]
    outs = []
    for img in photos:
        masks = build_masks(labels, labels, matches, "cpu", blur_fraction=0.0)
        outs.append(apply_shared(_tensor(img), fit, masks)[0])
    for lab in (0, 1):
        sel = torch.from_numpy(labels == lab)
        pooled = torch.cat([fwd(o[0][:, sel].T.double()) for o in outs])
        target = s_pix[torch.from_numpy(labels.reshape(-1) == lab)].mean(0)
        assert torch.allclose(pooled.mean(0), target, atol=0.02), (lab, pooled.mean(0), target)
    sky = torch.from_numpy(labels == 0)
    assert float(outs[0][0][:, sky].mean()) > float(outs[1][0][:, sky].mean()) + 0.05  # photo 1 stays brighter


def test_the_shared_fit_survives_its_json():
    from photostyle.ops.colour import SharedFit

    content, style = _small("coffee.jpg", 48), _small("chelsea.jpg", 48)
    fit = fit_shared("reinhard", _pool([content], "lalphabeta", 512), _style_stats(style, "lalphabeta"),
                     space="lalphabeta", photos=1)
    again = SharedFit.from_json(fit.to_json())
    assert again.to_json() == fit.to_json()
    x = _tensor(content)
    assert torch.equal(apply_shared(x, again)[0], apply_shared(x, fit)[0])
