import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from conftest import smooth_photo
from photostyle.ops.measures import gradient_correlation, lab_sample, projections, sliced_wasserstein, ssim_luminance
from photostyle.stages.metrics import summarise


def _dist(a, b, seed=0):
    rng = np.random.default_rng(seed)
    return sliced_wasserstein(lab_sample(a, 4096, rng), lab_sample(b, 4096, np.random.default_rng(seed)), projections(32))


def test_identical_images():
    img = smooth_photo(40, 50)
    assert ssim_luminance(img, img) == 1.0
    assert gradient_correlation(img, img) > 0.999999
    assert _dist(img, img) == 0.0


def test_colour_shift_increases_distance_monotonically():
    img = smooth_photo(40, 50)
    dists = []
    for k in (0, 10, 20, 40, 80):
        shifted = np.clip(img.astype(int) + [k, 0, -k // 2], 0, 255).astype(np.uint8)
        dists.append(_dist(shifted, img))
    assert dists[0] == 0 and all(b > a for a, b in zip(dists, dists[1:]))


def test_blur_lowers_ssim_and_gradient_correlation():
    img = smooth_photo(60, 60)
    img[20:40, 20:40] = 255  # an edge to lose
    prev_ssim, prev_gc = 1.0, 1.0
    for sigma in (0.7, 1.5, 3.0):
        blurred = np.stack([gaussian_filter(img[..., c].astype(float), sigma) for c in range(3)], -1)
        blurred = np.clip(blurred, 0, 255).round().astype(np.uint8)
        s, g = ssim_luminance(blurred, img), gradient_correlation(blurred, img)
        assert s < prev_ssim and g < prev_gc
        prev_ssim, prev_gc = s, g


def test_summary_aggregates_a_known_table():
    rows = []
    vals = {"a": [0.1, 0.2, 0.3, 0.9], "b": [1.0, 2.0]}
    for method, xs in vals.items():
        for i, x in enumerate(xs):
            rows.append({"photo_id": f"p{i}", "style": "s", "method": method, "variant": "raw",
                         "status": "ok", "ssim_lum": x, "grad_corr": 1.0, "colour_dist": 2 * x,
                         "colour_dist_content": 5.0, "runtime_s": 1.0, "peak_mem_mb": 10.0,
                         "weights": "none", "device": "cpu", "code_version": "v"})
    rows.append({**rows[0], "photo_id": "bad", "status": "failed", "ssim_lum": np.nan})
    s = summarise(pd.DataFrame(rows)).set_index("method")
    a = np.array(vals["a"])
    assert s.loc["a", "ssim_lum_mean"] == np.mean(a)
    assert s.loc["a", "ssim_lum_median"] == np.median(a)
    assert np.isclose(s.loc["a", "ssim_lum_p95"], np.quantile(a, 0.95))
    assert np.isclose(s.loc["b", "colour_dist_mean"], 3.0)
    assert (s.loc["a", "n_ok"], s.loc["a", "n_failed"], s.loc["b", "n_failed"]) == (4, 1, 0)


def test_region_colour_distance_sees_what_the_global_distance_cannot(tmp_path):
    """Swapping the colours of two regions keeps the global colour distribution (and so the
    global distance) but puts each region's colour in the wrong place."""
    from PIL import Image

    from photostyle.core.io import write_csv_atomic
    from photostyle.ops.measures import region_colour_distance
    from photostyle.ops.regions import RegionSource, load_groups
    from photostyle.stages.segment import SEGMENT_COLUMNS

    groups = str(__import__("conftest").REPO / "config" / "segmentation_groups.yaml")
    table = load_groups(groups)
    lab = np.full((40, 40), table.gid("sky"), np.uint8)
    lab[20:] = table.gid("ground")
    rows = []
    for kind, pid in (("content", "c"), ("style", "s")):
        path = tmp_path / f"{pid}.png"
        Image.fromarray(lab, "L").save(path)
        rows.append({"photo_id": pid, "kind": kind, "status": "ok", "labels": str(path), "label_space": "groups"})
    write_csv_atomic(tmp_path / "seg.csv", SEGMENT_COLUMNS, rows)
    regions = RegionSource({"groups_file": groups, "min_pixels": 10, "max_area_ratio": 100}, [tmp_path / "seg.csv"])
    rng = np.random.default_rng(0)
    style = np.where(lab[..., None] == table.gid("sky"), [200, 120, 60], [40, 60, 150]).astype(float)
    style = np.clip(style + rng.normal(0, 4, style.shape), 0, 255).astype(np.uint8)
    right = style.copy()
    swapped = np.concatenate([style[20:], style[:20]])
    content = np.full_like(style, 128)
    dirs = projections(16)
    d_right = region_colour_distance(right, content, style, "c", "s", regions, dirs, 4096, 0)
    d_swapped = region_colour_distance(swapped, content, style, "c", "s", regions, dirs, 4096, 0)
    assert d_right < 3 and d_swapped > 10 * d_right
    assert abs(_dist(right, style) - _dist(swapped, style)) < 1.0  # the global distance cannot tell


def test_gram_style_distance_zero_for_style_itself_and_flagged_random():
    import torch

    from photostyle.nets.style_distance import GramDistance

    g = GramDistance({"mode": "random", "dir": "none", "download": False}, 0, 64, torch.device("cpu"))
    assert g.provenance == "random, seed 0"
    img = smooth_photo(50, 70, seed=1)
    assert g.distance(img, g.grams(img)) < 1e-6
    assert g.distance(smooth_photo(50, 70, seed=2), g.grams(img)) > 0.01
