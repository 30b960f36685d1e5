"""User label maps in the research datasets' colour-coded format (DPST, FastPhotoStyle, WCT2),
and what happens to outputs whose segmentation failed (issue 18, items 5 and 9)."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import save, smooth_photo
from photostyle.config import validate_config
from photostyle.core.collection import sync_listings
from photostyle.core.io import read_csv_dicts
from photostyle.core.photo import PhotoLimits
from photostyle.nets.segmenters import LabelSegmenter
from photostyle.ops.regions import MASK_COLOURS, UnknownMaskColours, colour_mask_labels, load_groups
from photostyle.stages import metrics as metrics_stage
from photostyle.stages import segment as segment_stage
from photostyle.stages import stylize as stylize_stage
from photostyle.stages.ingest import ingest_listing
from photostyle.stages.segment import run_segment_part
from photostyle.stages.stylize import run_stylize_shard

NAMES = list(MASK_COLOURS)


def _mask(h, w, top, bottom):
    m = np.zeros((h, w, 3), np.uint8)
    m[: h // 2] = MASK_COLOURS[top]
    m[h // 2:] = MASK_COLOURS[bottom]
    return m


def _jpeg(img, quality=75):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_each_dpst_colour_reads_as_its_own_label():
    strip = np.array([list(MASK_COLOURS.values())], np.uint8).repeat(4, 0)  # 4 x 9 pixels, one per colour
    labels = colour_mask_labels(strip)
    assert labels[0].tolist() == list(range(len(NAMES)))
    # DPST's tolerance: 0.1 of the range per channel
    assert colour_mask_labels(np.clip(strip.astype(int) + 20, 0, 255).astype(np.uint8))[0].tolist() == labels[0].tolist()


def test_jpeg_compressed_masks_keep_their_regions():
    mask = np.zeros((64, 64, 3), np.uint8)
    for i, name in enumerate(("red", "blue", "lightblue", "yellow")):  # four quadrants
        mask[(i // 2) * 32:(i // 2 + 1) * 32, (i % 2) * 32:(i % 2 + 1) * 32] = MASK_COLOURS[name]
    exact = colour_mask_labels(mask)
    compressed = _jpeg(mask, quality=60)
    assert not np.array_equal(compressed, mask)  # JPEG changed the colours
    got = colour_mask_labels(compressed)
    assert (got == exact).mean() > 0.99


def test_unknown_colours_are_refused_with_the_colour_list():
    mask = _mask(80, 80, "red", "blue")
    mask[:, :40] = (255, 128, 0)  # orange: half the mask is no DPST colour
    with pytest.raises(UnknownMaskColours, match="no mask colour.*#ff8000.*lightblue=#00ffff"):
        colour_mask_labels(mask)


@pytest.fixture
def corpus(tmp_path):
    """A content and a style photo, each with a sky (top) and a ground (bottom) of different
    colours, and DPST masks: red top, blue bottom (the content's as a JPEG)."""
    rng = np.random.default_rng(0)
    c = np.zeros((40, 30, 3))
    c[:20], c[20:] = (0.3, 0.5, 0.8), (0.3, 0.6, 0.3)
    s = np.zeros((40, 40, 3))
    s[:20], s[20:] = (0.8, 0.3, 0.2), (0.2, 0.3, 0.9)
    for name, img, root in (("a", c, "c"), ("b", s, "s")):
        save((np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1) * 255).astype(np.uint8), tmp_path / root / f"{name}.png")
    save(_mask(40, 30, "red", "blue"), tmp_path / "labels" / "a.jpg", quality=80)
    save(_mask(40, 40, "red", "blue"), tmp_path / "labels" / "b.png")
    cfg = validate_config({"device": "cpu", "segmentation": {"model": "labels", "labels_dir": str(tmp_path / "labels"),
                                                             "min_area": 0.0}})
    limits = PhotoLimits.from_settings(cfg)
    (shard,) = sync_listings(tmp_path / "c", tmp_path / "lc", 100)
    ingest_listing(tmp_path / "lc" / f"{shard}.csv", tmp_path / "c", "content", shard, limits, tmp_path / "content.csv")
    (sid,) = sync_listings(tmp_path / "s", tmp_path / "ls", per_file=True)
    ingest_listing(tmp_path / "ls" / f"{sid}.csv", tmp_path / "s", "style", sid, limits, tmp_path / "style.csv")
    return tmp_path, cfg, sid


def _segment(tmp_path, cfg):
    s = segment_stage.settings(cfg)
    for kind, table in (("content", "content.csv"), ("style", "style.csv")):
        run_segment_part(tmp_path / table, kind, s, tmp_path / "seg", tmp_path / "seg" / kind / "_index" / "x.csv", "t")
    return [str(tmp_path / "seg" / k / "_index" / "x.csv") for k in ("content", "style")]


def _stylize(tmp_path, cfg, indexes, tag="o"):
    s = stylize_stage.settings(cfg, "mkl")
    return run_stylize_shard(tmp_path / "content.csv", [tmp_path / "style.csv"], "mkl", s, tmp_path / tag,
                             tmp_path / tag / "_index" / "mkl" / "x.csv", "t", indexes)


def test_dpst_masks_are_detected_and_regions_matched_by_colour(corpus):
    tmp_path, cfg, sid = corpus
    indexes = _segment(tmp_path, cfg)
    seg_rows = [r for i in indexes for r in read_csv_dicts(i)]
    assert [(r["status"], r["label_space"]) for r in seg_rows] == [("ok", "colours")] * 2
    assert "red:0.5" in seg_rows[0]["areas"] and "blue:0.5" in seg_rows[0]["areas"]
    (row,) = _stylize(tmp_path, cfg, indexes)
    assert row["status"] == "ok" and row["regions"] == "blue>blue;red>red" and not row["warning"]
    out = np.asarray(Image.open(row["output"])).astype(float) / 255
    assert np.abs(out[2:16].mean((0, 1)) - (0.8, 0.3, 0.2)).max() < 0.06  # top from the style's top
    assert np.abs(out[24:38].mean((0, 1)) - (0.2, 0.3, 0.9)).max() < 0.06  # bottom from its bottom


def test_group_maps_still_read_as_groups_in_auto_mode(tmp_path):
    table = load_groups("config/segmentation_groups.yaml")
    Image.fromarray(np.full((8, 8), table.gid("sky"), np.uint8), "L").save(tmp_path / "p.png")
    seg = LabelSegmenter(tmp_path, table, "auto")
    labels = seg.segment(np.zeros((8, 8, 3), np.uint8), {"relpath": "p.jpg", "id": "p"})
    assert (labels == table.gid("sky")).all() and seg.spaces["p"] == "groups"
    with pytest.raises(Exception, match="labels_format: dpst"):  # forced groups: DPST colours are refused
        Image.fromarray(_mask(8, 8, "red", "purple")).save(tmp_path / "q.png")
        LabelSegmenter(tmp_path, table, "groups").segment(np.zeros((8, 8, 3), np.uint8), {"relpath": "q.png"})


@pytest.mark.parametrize("on_error", ["auto", "global"])
def test_a_photo_whose_label_map_failed_is_failed_or_visibly_degraded(corpus, on_error):
    tmp_path, cfg, sid = corpus
    (tmp_path / "labels" / "a.jpg").unlink()  # the content photo's map is missing
    cfg = validate_config({**cfg, "segmentation": {**cfg["segmentation"], "on_error": on_error}})
    indexes = _segment(tmp_path, cfg)
    assert read_csv_dicts(indexes[0])[0]["status"] == "failed"
    (row,) = _stylize(tmp_path, cfg, indexes)
    if on_error == "auto":  # user label maps: the photo fails, with the segment stage's reason
        assert row["status"] == "failed" and "no label map" in row["error"] and "on_error: global" in row["error"]
        return
    assert row["status"] == "ok" and row["warning"].startswith("stylised globally: content label map missing")
    # metrics carry the warning, the issues list names it, the run's summary line counts it
    out = tmp_path / "m.csv"
    metrics_stage.run_metrics_shard(tmp_path / "content.csv", [tmp_path / "style.csv"],
                                    [str(tmp_path / "o" / "_index" / "mkl" / "x.csv")],
                                    metrics_stage.settings(cfg), out, indexes)
    (m,) = read_csv_dicts(out)
    assert m["status"] == "ok" and m["warning"] == row["warning"]
    metrics_stage.aggregate([out], tmp_path / "pi.csv", tmp_path / "sum.csv", tmp_path / "issues.csv")
    (issue,) = read_csv_dicts(tmp_path / "issues.csv")
    assert issue["warning"] == row["warning"]
    assert read_csv_dicts(tmp_path / "sum.csv")[0]["n_warnings"] == "1"
    line = metrics_stage.run_summary(tmp_path / "pi.csv", tmp_path / "issues.csv")
    assert line.startswith("photostyle: 1 outputs ok (1 with warnings), 0 failed") and "issues.csv" in line


def test_style_distance_auto_is_skipped_with_random_weights_and_says_why(corpus):
    tmp_path, cfg, sid = corpus
    cfg = validate_config({**cfg, "segmentation": {"enabled": False}, "weights": {"mode": "random"}})
    assert cfg["metrics"]["style_distance"] == "auto"
    (row,) = _stylize(tmp_path, cfg, [], "g")
    out = tmp_path / "m.csv"
    for setting, computed in (("auto", False), (True, True)):
        c = {**cfg, "metrics": {**cfg["metrics"], "style_distance": setting}}
        metrics_stage.run_metrics_shard(tmp_path / "content.csv", [tmp_path / "style.csv"],
                                        [str(tmp_path / "g" / "_index" / "mkl" / "x.csv")],
                                        metrics_stage.settings(c), out, [])
        (m,) = read_csv_dicts(out)
        assert bool(m["style_dist"]) == computed
        assert ("not computed: no pretrained VGG-16" in m["style_dist_weights"]) != computed
        if computed:
            assert m["style_dist_weights"] == "random, seed 0"



def test_a_label_map_a_pixel_off_is_resized_with_a_warning(corpus):
    """DPST's own examples pair a 700x393 map with a 700x394 photo: the map is resized (nearest)
    and the output says so; a map of another shape is still an error (issue 27, item 8)."""
    tmp_path, cfg, sid = corpus
    photo = np.zeros((394, 700, 3))
    photo[:197], photo[197:] = (0.3, 0.5, 0.8), (0.3, 0.6, 0.3)
    save((photo * 255).astype(np.uint8), tmp_path / "c" / "a.png")
    save(_mask(393, 700, "red", "blue"), tmp_path / "labels" / "a.png")
    (tmp_path / "labels" / "a.jpg").unlink()
    (shard,) = sync_listings(tmp_path / "c", tmp_path / "lc", 100)
    ingest_listing(tmp_path / "lc" / f"{shard}.csv", tmp_path / "c", "content", shard,
                   PhotoLimits.from_settings(cfg), tmp_path / "content.csv")
    indexes = _segment(tmp_path, cfg)
    (seg_row,) = read_csv_dicts(indexes[0])
    assert seg_row["status"] == "ok", seg_row["error"]
    assert seg_row["warning"] == "label map a.png is 700x393, photo is 700x394: resized (nearest neighbour)"
    (row,) = _stylize(tmp_path, cfg, indexes)
    assert row["status"] == "ok" and row["regions"] == "blue>blue;red>red" and row["warning"] == seg_row["warning"]
    out = tmp_path / "m.csv"  # the warning reaches the issues list
    metrics_stage.run_metrics_shard(tmp_path / "content.csv", [tmp_path / "style.csv"],
                                    [str(tmp_path / "o" / "_index" / "mkl" / "x.csv")],
                                    metrics_stage.settings(cfg), out, indexes)
    metrics_stage.aggregate([out], tmp_path / "pi.csv", tmp_path / "sum.csv", tmp_path / "issues.csv")
    (issue,) = read_csv_dicts(tmp_path / "issues.csv")
    assert issue["warning"] == seg_row["warning"]
    table = load_groups("config/segmentation_groups.yaml")
    seg = LabelSegmenter(tmp_path / "labels", table, "dpst")
    with pytest.raises(Exception, match="is 700x380, photo is 700x394"):  # 3.6 % off: not rounding
        save(_mask(380, 700, "red", "blue"), tmp_path / "labels" / "a.png")
        seg.segment((photo * 255).astype(np.uint8), {"relpath": "a.png", "id": "a"})


def test_without_network_weights_the_stage_segments_by_features_and_stylize_matches_by_them(tmp_path):
    """Segformer without weights (auto): the segment stage falls back to the ``features`` segmenter,
    records it, stores each cluster's mean feature in the label map, and stylize matches content
    clusters to style clusters by those features (issue 26, item 4)."""
    from conftest import sample_photo

    def square(name, side=96):
        img = sample_photo(name)
        m = min(img.shape[:2])
        return np.asarray(Image.fromarray(img[:m, :m]).resize((side, side), Image.Resampling.LANCZOS))

    coffee, cat = square("coffee.jpg"), square("chelsea.jpg")
    save(np.concatenate([coffee, cat], axis=1), tmp_path / "c" / "a.png")  # coffee | cat (the brighter)
    dark, bright = (cat * 0.35).astype(np.uint8), (255 - (255 - coffee.astype(float)) * 0.35).astype(np.uint8)
    save(np.concatenate([dark, bright], axis=0), tmp_path / "s" / "b.png")  # the cat darkened over the coffee brightened
    cfg = validate_config({"device": "cpu", "weights": {"mode": "auto", "dir": str(tmp_path / "w"), "download": False},
                           "segmentation": {"model": "segformer-ade20k", "short_side": 128, "features": {"clusters": 2}}})
    limits = PhotoLimits.from_settings(cfg)
    (shard,) = sync_listings(tmp_path / "c", tmp_path / "lc", 100)
    ingest_listing(tmp_path / "lc" / f"{shard}.csv", tmp_path / "c", "content", shard, limits, tmp_path / "content.csv")
    (sid,) = sync_listings(tmp_path / "s", tmp_path / "ls", per_file=True)
    ingest_listing(tmp_path / "ls" / f"{sid}.csv", tmp_path / "s", "style", sid, limits, tmp_path / "style.csv")
    with pytest.warns(RuntimeWarning):
        indexes = _segment(tmp_path, cfg)
    rows = [r for i in indexes for r in read_csv_dicts(i)]
    for r in rows:
        assert (r["status"], r["model"], r["label_space"]) == ("ok", "features", "features")
        assert r["weights"].endswith("(features cd16x relu4_1; fallback: segformer-b2-ade20k weights unavailable)")
    maps = [Image.open(r["labels"]) for r in rows]
    assert all("photostyle-region-features" in m.text for m in maps)
    cl, sl = (np.asarray(m) for m in maps)  # content, style
    c_cat = int(np.bincount(cl[:, 96:].ravel()).argmax())  # the content cluster of the cat (right half)
    s_cat = int(np.bincount(sl[:96].ravel()).argmax())  # the style's (top half)
    expected = {c_cat: s_cat, 1 - c_cat: 1 - s_cat}
    (row,) = _stylize(tmp_path, cfg, indexes)
    assert row["status"] == "ok" and row["regions"] == ";".join(f"c{c}>c{expected[c]}" for c in sorted(expected))
