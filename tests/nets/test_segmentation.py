"""Segmentation stage: models, label matching, k-means, user label maps, region-aware transfer."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, smooth_photo, make_method, stylise
from photostyle.config import validate_config
from photostyle.core.photo import PhotoRejected
from photostyle.ops.regions import (
    WHOLE, build_masks, load_groups, match_clusters, match_groups, merge_small_regions,
)
from photostyle.nets.segmenters import PALETTE, KMeansSegmenter, LabelSegmenter, build_segmenter

GROUPS = str(REPO / "config" / "segmentation_groups.yaml")


@pytest.fixture(scope="module")
def table():
    return load_groups(GROUPS)


def _cfg(**seg):
    cfg = validate_config({"segmentation": {"groups_file": GROUPS, "short_side": 64, **seg},
                           "weights": {"mode": "random", "download": False}})
    return cfg["segmentation"], cfg["weights"]


@pytest.mark.parametrize("model", ["segformer-ade20k", "deeplabv3"])
def test_random_init_networks_are_built_and_recorded_as_random(model):
    seg, weights = _cfg(model=model, segformer_variant="b0")
    segmenter = build_segmenter(seg, weights, seed=3, device=torch.device("cpu"))
    assert segmenter.provenance == "random, seed 3" and segmenter.label_space == "groups"
    labels = segmenter.segment((np.random.default_rng(0).random((45, 70, 3)) * 255).astype(np.uint8), {"id": "x"})
    assert labels.shape == (45, 70) and labels.dtype == np.uint8 and labels.max() < len(load_groups(GROUPS).groups)


def _varied_segmentations():
    """A seeded random DeepLabV3 and photos on which it gives several labels, different per photo
    (random Segformer-B0 labels everything one group: it could not show a mix-up)."""
    seg, weights = _cfg(model="deeplabv3")
    rng = np.random.default_rng(5)
    imgs = [smooth_photo(48, 64, seed=i) for i in range(3)] + [(rng.random((64, 40, 3)) * 255).astype(np.uint8)]
    return seg, weights, imgs


def test_random_init_networks_give_deterministic_label_maps():
    seg, weights, imgs = _varied_segmentations()
    runs = [build_segmenter(seg, weights, seed=3, device=torch.device("cpu")).segment_many(
        imgs, [{"id": str(i)} for i in range(len(imgs))]) for _ in range(2)]
    assert all(len(np.unique(m)) >= 2 for m in runs[0])  # the maps have content ...
    assert not np.array_equal(runs[0][0], runs[0][1])  # ... that differs between photos
    assert all(np.array_equal(a, b) for a, b in zip(*runs))  # and a rebuilt model gives the same maps


def test_auto_mode_without_weights_falls_back_to_features_and_says_so(tmp_path):
    seg, weights = _cfg(model="segformer-ade20k")
    weights = {**weights, "mode": "auto", "dir": str(tmp_path)}
    with pytest.warns(RuntimeWarning):
        segmenter = build_segmenter(seg, weights, seed=0, device=torch.device("cpu"))
    assert segmenter.name == "features" and "unavailable" in segmenter.provenance  # kmeans: tests/nets/test_segment_features.py


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_kmeans_separates_a_two_region_photo():
    rng = np.random.default_rng(1)
    img = np.zeros((60, 80, 3))
    truth = np.zeros((60, 80), bool)
    truth[:, 30:] = True
    truth[10:25, 5:20] = True  # a blob of the second region inside the first
    img[~truth] = [0.2, 0.4, 0.8]
    img[truth] = [0.3, 0.6, 0.2]
    img = np.clip(img + rng.normal(0, 0.04, img.shape), 0, 1)
    labels = KMeansSegmenter(2, 0.1, 20, 64, seed=0).segment((img * 255).astype(np.uint8), {"id": "p"})
    region = labels == labels[0, -1]
    assert max(_iou(region, truth), _iou(~region, truth)) > 0.9


def test_missing_group_falls_back_to_related_then_whole(table):
    g = table.gid
    content = np.full((40, 40), g("sky"), np.uint8)
    content[20:, :] = g("vegetation")
    content[30:, 30:] = g("person")
    style = np.full((40, 40), g("water"), np.uint8)  # no sky, no vegetation, no person
    style[25:, :] = g("ground")
    m = {table.groups[x.content]: (x.style if x.style == WHOLE else table.groups[x.style], x.reason)
         for x in match_groups(content, style, table)}
    assert m["sky"] == ("water", "related")  # sky -> first related group present
    assert m["vegetation"] == ("ground", "related")
    assert m["person"] == (WHOLE, "whole")  # nothing related in the style photo


def test_same_group_matched_and_area_ratio_bounded(table):
    g = table.gid
    content = np.full((100, 100), g("sky"), np.uint8)
    content[50:, :] = g("building")
    style = np.full((100, 100), g("building"), np.uint8)
    style[:1, :3] = g("sky")  # 3 px of sky: below min_pixels=10 -> sky not usable
    m = {x.content: x for x in match_groups(content, style, table, min_pixels=10)}
    assert m[g("building")].style == g("building") and m[g("building")].reason == "same"
    assert m[g("sky")].style != g("sky")
    style[:10, :] = g("sky")  # 10 % of the photo vs 50 %: ratio 5, allowed
    assert {x.content: x.style for x in match_groups(content, style, table)}[g("sky")] == g("sky")
    assert {x.content: x.style for x in match_groups(content, style, table, max_area_ratio=2)}[g("sky")] != g("sky")


def test_tiny_region_merges_into_related_neighbour(table):
    g = table.gid
    labels = np.full((50, 50), g("building"), np.uint8)
    labels[:20, :] = g("sky")
    labels[45:, 45:] = g("water")  # 1 % of the photo, under min_area 2 %
    merged = merge_small_regions(labels, table, 0.02)
    assert set(np.unique(merged)) == {g("building"), g("sky")}
    assert (merged[45:, 45:] == g("sky")).all()  # water -> sky, its first related group present


def test_clusters_matched_by_luminance_rank():
    content = np.zeros((10, 20, 3), np.uint8)
    content[:, 10:] = 200
    c_labels = np.zeros((10, 20), np.uint8)
    c_labels[:, 10:] = 1  # cluster 1 is bright
    style = np.zeros((10, 10, 3), np.uint8)
    style[5:] = 220
    s_labels = np.ones((10, 10), np.uint8)
    s_labels[5:] = 0  # cluster 0 is bright in the style
    m = {x.content: x.style for x in match_clusters(content, c_labels, style, s_labels)}
    assert m == {0: 1, 1: 0}


def test_user_label_maps_read_and_validated(tmp_path, table):
    seg = LabelSegmenter(tmp_path, table)
    img = np.zeros((20, 30, 3), np.uint8)
    lab = np.zeros((20, 30), np.uint8)
    lab[:10] = table.gid("sky")
    Image.fromarray(lab, "L").save(tmp_path / "a.png")
    assert np.array_equal(seg.segment(img, {"relpath": "a.jpg"}), lab)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:] = PALETTE[table.gid("water")]
    Image.fromarray(rgb).save(tmp_path / "b.png")
    assert (seg.segment(img, {"relpath": "b.jpg"}) == table.gid("water")).all()
    Image.fromarray(lab[:10], "L").save(tmp_path / "small.png")
    with pytest.raises(PhotoRejected, match="30x10, photo is 30x20"):
        seg.segment(img, {"relpath": "small.jpg"})
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(PhotoRejected, match="unknown colours.*#010203"):
        seg.segment(img, {"relpath": "odd.jpg"})
    Image.fromarray(np.full((20, 30), 99, np.uint8), "L").save(tmp_path / "bad.png")
    with pytest.raises(PhotoRejected, match="unknown label values \\[99\\]"):
        seg.segment(img, {"relpath": "bad.jpg"})
    with pytest.raises(PhotoRejected, match="no label map"):
        seg.segment(img, {"relpath": "missing.jpg"})


@pytest.mark.parametrize("name", ["mkl", "reinhard"])
def test_region_aware_transfer_moves_each_region_to_its_counterpart(name, table):
    """Content: bright sky-blue top, darker green bottom. Style: a *dark* red sky on top of a
    bright orange ground. Region-aware: sky takes the style's sky colour, vegetation the
    ground's. A global transfer follows brightness instead (bright sky -> bright ground colour)."""
    g = table.gid
    rng = np.random.default_rng(0)
    h, w = 40, 40
    c_lab = np.full((h, w), g("sky"), np.uint8)
    c_lab[20:] = g("vegetation")
    s_lab = np.full((h, w), g("sky"), np.uint8)
    s_lab[20:] = g("ground")
    content = np.where(c_lab[..., None] == g("sky"), [0.35, 0.55, 0.85], [0.25, 0.6, 0.25])
    style = np.where(s_lab[..., None] == g("sky"), [0.4, 0.1, 0.1], [0.9, 0.6, 0.3])
    content = np.clip(content + rng.normal(0, 0.03, content.shape), 0, 1)
    style = np.clip(style + rng.normal(0, 0.03, style.shape), 0, 1)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    matches = match_groups(c_lab, s_lab, table)
    masks = build_masks(c_lab, s_lab, matches, "cpu", blur_fraction=0.02, table=table)
    assert masks.summary == "sky>sky;vegetation>ground(related)"
    regional = stylise(make_method(name), t(content), t(style), masks)
    global_ = stylise(make_method(name), t(content), t(style))
    top_target, bottom_target = np.array([0.4, 0.1, 0.1]), np.array([0.9, 0.6, 0.3])

    def err(out, rows, target):
        return float(np.abs(out[0, :, rows].mean((1, 2)).numpy() - target).max())

    assert err(regional, slice(2, 16), top_target) < 0.05
    assert err(regional, slice(24, 38), bottom_target) < 0.05
    assert err(global_, slice(2, 16), top_target) > 0.1  # the global transfer fails this test


def test_soft_region_blending_leaves_no_seam(table):
    """A label border through a uniform area of the content must not become a visible step."""
    g = table.gid
    rng = np.random.default_rng(2)
    c_lab = np.full((60, 40), g("sky"), np.uint8)
    c_lab[30:] = g("building")
    s_lab = c_lab.copy()
    content = np.clip(np.full((60, 40, 3), 0.5) + rng.normal(0, 0.02, (60, 40, 3)), 0, 1)
    style = np.where(s_lab[..., None] == g("sky"), [0.7, 0.5, 0.3], [0.3, 0.4, 0.6])
    style = np.clip(style + rng.normal(0, 0.05, style.shape), 0, 1)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    matches = match_groups(c_lab, s_lab, table)
    steps = {}
    for blur in (0.0, 0.05):
        masks = build_masks(c_lab, s_lab, matches, "cpu", blur_fraction=blur, table=table)
        out = stylise(make_method("mkl"), t(content), t(style), masks)
        steps[blur] = float(out[0].mean(2).diff(dim=1).abs().max())  # largest row-to-row change
    assert steps[0.0] > 0.15  # hard masks: a seam
    assert steps[0.05] < steps[0.0] / 3  # soft masks spread it into a gradual transition


def test_batched_inference_equals_one_at_a_time():
    seg, weights, imgs = _varied_segmentations()  # three photos of one working size, one of another
    segmenter = build_segmenter(seg, weights, seed=1, device=torch.device("cpu"))
    rows = [{"id": str(i)} for i in range(4)]
    batched = segmenter.segment_many(imgs, rows)
    single = [segmenter.segment(img, row) for img, row in zip(imgs, rows)]
    assert sum(not np.array_equal(single[0], s) for s in single[1:3]) == 2  # a mixed-up batch would show
    for a, b in zip(batched, single):
        assert a.shape == b.shape and (a == b).mean() > 0.999


def test_region_source_keeps_style_maps_and_only_the_current_content_map(tmp_path, table):
    from photostyle.core.io import write_csv_atomic
    from photostyle.ops.regions import RegionSource
    from photostyle.stages.segment import SEGMENT_COLUMNS

    rows = []
    for kind, pid, value in (("content", "a", 1), ("content", "b", 2), ("style", "s", 3)):
        path = tmp_path / f"{pid}.png"
        Image.fromarray(np.full((8, 8), value, np.uint8), "L").save(path)
        rows.append({"photo_id": pid, "kind": kind, "status": "ok", "labels": str(path), "label_space": "groups"})
    write_csv_atomic(tmp_path / "seg.csv", SEGMENT_COLUMNS, rows)
    src = RegionSource({"groups_file": GROUPS, "min_pixels": 10, "max_area_ratio": 100}, [tmp_path / "seg.csv"])
    for pid, value in (("a", 1), ("b", 2), ("a", 1)):
        assert (src.labels("content", pid)[0] == value).all()
        assert (src.labels("style", "s")[0] == 3).all()
    assert src.digest("a", "s") != src.digest("b", "s")
    assert src.labels("content", "missing") is None
