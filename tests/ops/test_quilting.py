"""Image quilting (photostyle.ops.quilting, methods.quilting)."""

import itertools

import numpy as np
import pytest
import torch

from conftest import make_method, smooth_photo, stylise
from photostyle.ops.quilting import min_cut_path, quilt


def _brute_force_min_path(err):
    """Every top-to-bottom path moving at most one column per row, by enumeration."""
    h, w = err.shape
    best, best_path = np.inf, None
    for start in range(w):
        for moves in itertools.product((-1, 0, 1), repeat=h - 1):
            path = [start]
            for m in moves:
                path.append(path[-1] + m)
            if min(path) < 0 or max(path) >= w:
                continue
            cost = sum(err[i, j] for i, j in enumerate(path))
            if cost < best:
                best, best_path = cost, path
    return best, best_path


@pytest.mark.parametrize("seed", range(5))
def test_boundary_cut_is_the_minimum_cost_path(seed):
    err = np.random.default_rng(seed).random((6, 4))
    path = min_cut_path(err)
    assert all(abs(int(a) - int(b)) <= 1 for a, b in zip(path[:-1], path[1:]))
    best, _ = _brute_force_min_path(err)
    assert sum(err[i, j] for i, j in enumerate(path)) == pytest.approx(best)


def _t(img):
    return torch.from_numpy(img).permute(2, 0, 1).double() / 255


def test_with_content_weight_one_the_output_follows_the_content_luminance():
    content = smooth_photo(64, 80, seed=2)
    rng = np.random.default_rng(0)  # a textured ramp: patches of every luminance exist
    ramp = np.linspace(0, 1, 96)[None, :, None] * np.array([[[255, 230, 200]]]) + rng.normal(0, 6, (96, 96, 3))
    style = np.clip(ramp, 0, 255).astype(np.uint8)
    out = quilt(_t(content), _t(style), patch=8, iterations=1, content_weight=1.0, tolerance=0.0, blur=0.0)
    luma = lambda x: (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).flatten()  # noqa: E731
    r = np.corrcoef(luma(out).numpy(), luma(_t(content)).numpy())[0, 1]
    assert r > 0.9, r


def test_a_tiled_texture_gives_an_output_made_only_of_its_pixels():
    tile = np.random.default_rng(1).integers(0, 256, (6, 6, 3)).astype(np.uint8)
    style = np.tile(tile, (12, 12, 1))
    content = smooth_photo(50, 70, seed=3)
    out = quilt(_t(content), _t(style), patch=12, iterations=2, seed=4)
    out_px = {tuple(v) for v in (out.permute(1, 2, 0).reshape(-1, 3) * 255).round().int().tolist()}
    style_px = {tuple(v) for v in style.reshape(-1, 3).tolist()}
    assert out_px <= style_px and out.shape == (3, 50, 70)


def test_patches_come_from_the_matched_style_region():
    content = smooth_photo(40, 60, seed=5)
    style = np.zeros((60, 60, 3), np.uint8)
    style[:, :30] = [250, 10, 10]  # left: red region
    style[:, 30:] = [10, 10, 250]  # right: blue region
    regions = torch.zeros(40, 60, dtype=torch.long)
    regions[:, 30:] = 1
    style_regions = torch.zeros(2, 60, 60, dtype=torch.bool)
    style_regions[0, :, 30:] = True  # content region 0 -> blue
    style_regions[1, :, :30] = True  # content region 1 -> red
    out = quilt(_t(content), _t(style), patch=8, iterations=1, content_regions=regions, style_regions=style_regions)
    left, right = out[:, :, :20], out[:, :, 40:]  # away from the seam
    assert (left[2] > 0.9).all() and (right[0] > 0.9).all()


def test_method_is_deterministic_and_keeps_the_size():
    m = make_method("quilting", {"max_side": 48, "patch": 10, "iterations": 2})
    content = torch.from_numpy(smooth_photo(61, 90, seed=6)).permute(2, 0, 1)[None].float() / 255
    style = torch.from_numpy(smooth_photo(50, 50, seed=7)).permute(2, 0, 1)[None].float() / 255
    torch.manual_seed(3)
    a = stylise(m, content, style)
    torch.manual_seed(3)
    b = stylise(m, content, style)
    assert a.shape == content.shape and torch.equal(a, b)
