"""The ``features`` segmenter (distilled VGG-19 relu4_1 clusters, shipped weights) and its
matching by mean-feature similarity; the fallback chain segformer -> features -> kmeans (issue 26)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, sample_photo
from photostyle.config import validate_config
from photostyle.nets import segmenters
from photostyle.nets.segmenters import REGION_FEATURES_KEY, build_features, build_segmenter, palette_png
from photostyle.ops.regions import match_clusters, match_features, region_features

GROUPS = str(REPO / "config" / "segmentation_groups.yaml")
CPU = torch.device("cpu")


def _cfg(mode="auto", tmp=None, **seg):
    cfg = validate_config({"segmentation": {"groups_file": GROUPS, "short_side": 128, **seg},
                           "weights": {"mode": mode, "download": False, **({"dir": str(tmp)} if tmp else {})}})
    return cfg["segmentation"], cfg["weights"]


def _features(**fc):
    seg, weights = _cfg(model="features", features=fc)
    return build_features(seg, weights, seed=0, device=CPU)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def _square(name, side=96):
    """A centre crop of a sample photo, ``side`` px square."""
    img = sample_photo(name)
    h, w = img.shape[:2]
    m = min(h, w)
    crop = img[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.LANCZOS))


def test_two_textures_of_one_colour_are_separated():
    """Stripes and blotches of the same mean grey: colour alone cannot tell them apart, features can."""
    rng = np.random.default_rng(0)
    h, w = 96, 144
    yy, xx = np.mgrid[0:h, 0:w]
    truth = xx >= 64
    truth[20:50, 10:40] = True  # a patch of the second texture inside the first
    stripes = 0.5 + 0.35 * np.sign(np.sin(yy * 2 * np.pi / 6))
    from scipy.ndimage import gaussian_filter

    blotches = gaussian_filter(rng.random((h, w)), 2.0)
    blotches = 0.5 + (blotches - blotches.mean()) / blotches.std() * 0.2
    grey = np.where(truth, blotches, stripes)
    img = (np.clip(np.stack([grey] * 3, -1), 0, 1) * 255).astype(np.uint8)
    labels = _features(clusters=2).segment(img, {"id": "t"})
    assert labels.shape == (h, w) and len(np.unique(labels)) == 2
    region = labels == labels[0, -1]
    assert max(_iou(region, truth), _iou(~region, truth)) > 0.9  # 0.94; Lab colour + position instead of features: 0.81


def test_matching_follows_content_not_position_or_luminance():
    """Content: coffee | cat (the cat is the brighter); style: the cat darkened over the coffee
    brightened. The cat region must take the style's cat, the coffee the style's coffee, although
    position and luminance rank say otherwise."""
    coffee, cat = _square("coffee.jpg"), _square("chelsea.jpg")
    assert cat.mean() > coffee.mean()
    content = np.concatenate([coffee, cat], axis=1)  # 96 x 192, side by side
    dark = (cat.astype(np.float32) * 0.35).astype(np.uint8)
    bright = (255 - (255 - coffee.astype(np.float32)) * 0.35).astype(np.uint8)
    style = np.concatenate([dark, bright], axis=0)  # 192 x 96, stacked: cat on top
    c_truth = np.zeros(content.shape[:2], bool)
    c_truth[:, 96:] = True  # cat
    s_truth = np.zeros(style.shape[:2], bool)
    s_truth[:96] = True  # cat
    seg = _features(clusters=2)
    cl, sl = seg.segment(content, {"id": "c"}), seg.segment(style, {"id": "s"})
    cf, sf = (region_features({REGION_FEATURES_KEY: seg.region_features[i]}) for i in ("c", "s"))
    c_cat = int(np.bincount(cl[c_truth]).argmax())  # the content cluster that is mostly the cat
    s_cat = int(np.bincount(sl[s_truth]).argmax())
    c_coffee, s_coffee = 1 - c_cat, 1 - s_cat
    assert (cl[c_truth] == c_cat).mean() > 0.8 and (sl[s_truth] == s_cat).mean() > 0.8
    by_features = {m.content: m.style for m in match_features(cl, cf, sl, sf)}
    assert by_features == {c_cat: s_cat, c_coffee: s_coffee}
    # the control: luminance rank pairs them the other way round on the same label maps
    assert {m.content: m.style for m in match_clusters(content, cl, style, sl)} == {c_cat: s_coffee, c_coffee: s_cat}


def test_same_photo_same_labels_whatever_its_name_or_segmenter():
    img = sample_photo("astronaut.jpg")[::2, ::2]
    a, b = _features(), _features()
    la, lb = a.segment(img, {"id": "x"}), b.segment(img, {"id": "another-name"})
    assert len(np.unique(la)) >= 3 and np.array_equal(la, lb)
    assert a.region_features["x"] == b.region_features["another-name"]
    assert np.array_equal(a.segment(img, {"id": "x"}), la)


def test_a_feature_map_round_trips_through_its_png_and_matches_by_features(tmp_path):
    """The stage writes each cluster's mean feature into the label map's PNG text; RegionSource
    reads it back and matches by it (without it: as k-means clusters, by luminance rank)."""
    from photostyle.core.io import write_csv_atomic
    from photostyle.ops.regions import RegionSource
    from photostyle.stages.segment import SEGMENT_COLUMNS

    e = np.eye(4)
    c = np.zeros((20, 20), np.uint8)
    c[10:] = 1
    s = np.ones((20, 20), np.uint8)
    s[10:] = 0
    feats = {"c": {0: e[0], 1: e[1]}, "s": {0: 0.2 * e[0] + e[2], 1: e[0] + 0.1 * e[3]}}  # c0 ~ s1; c1 ~ neither
    rows = []
    for pid, kind, lab in (("c", "content", c), ("s", "style", s)):
        text = {REGION_FEATURES_KEY: json.dumps({"layer": "relu4_1", "clusters": {
            str(k): v.tolist() for k, v in feats[pid].items()}})}
        (tmp_path / f"{pid}.png").write_bytes(palette_png(lab, text))
        rows.append({"photo_id": pid, "kind": kind, "status": "ok", "labels": str(tmp_path / f"{pid}.png"),
                     "label_space": "features"})
    write_csv_atomic(tmp_path / "seg.csv", SEGMENT_COLUMNS, rows)
    src = RegionSource({"groups_file": GROUPS, "min_pixels": 10, "max_area_ratio": 100}, [tmp_path / "seg.csv"])
    img = np.zeros((20, 20, 3), np.uint8)
    matches, _ = src.matches("c", "s", img, img)
    assert {m.content: (m.style, m.reason) for m in matches} == {0: (1, "similar"), 1: (0, "similar")}


def test_without_segformer_weights_auto_falls_back_to_features_and_records_it(tmp_path):
    seg, weights = _cfg(tmp=tmp_path, model="segformer-ade20k")
    with pytest.warns(RuntimeWarning):
        segmenter = build_segmenter(seg, weights, seed=0, device=CPU)
    assert segmenter.name == "features" and segmenter.label_space == "features"
    assert segmenter.provenance.startswith("sha256:d2f059cb")  # the shipped relu4_1 encoder
    assert segmenter.provenance.endswith("(features cd16x relu4_1; fallback: segformer-b2-ade20k weights unavailable)")


def test_kmeans_is_the_last_resort_when_features_fail_too(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("encoder file damaged")

    monkeypatch.setattr(segmenters, "build_features", broken)
    seg, weights = _cfg(tmp=tmp_path, model="deeplabv3")
    with pytest.warns(RuntimeWarning):
        segmenter = build_segmenter(seg, weights, seed=0, device=CPU)
    assert segmenter.name == "kmeans"
    assert "deeplabv3-resnet101-coco weights unavailable" in segmenter.provenance
    assert "features failed: RuntimeError: encoder file damaged" in segmenter.provenance


def test_a_uniform_sky_split_by_position_takes_one_style_region():
    """k is fixed, so a clear sky splits into position clusters; their features are alike, so they
    all match one style cluster (one colour map: no transition inside the sky)."""
    rng = np.random.default_rng(0)
    sky = np.zeros((100, 150, 3))
    sky[:] = (0.45, 0.65, 0.9)
    sky += np.linspace(0, 0.08, 100)[:, None, None]
    sky = (np.clip(sky + rng.normal(0, 0.01, sky.shape), 0, 1) * 255).astype(np.uint8)
    seg = _features()
    cl, sl = seg.segment(sky, {"id": "c"}), seg.segment(sample_photo("rocket.jpg")[::2, ::2], {"id": "s"})
    cf, sf = (region_features({REGION_FEATURES_KEY: seg.region_features[i]}) for i in ("c", "s"))
    matches = match_features(cl, cf, sl, sf)
    assert len(matches) > 1 and len({m.style for m in matches}) == 1
