"""The grade stage without Snakemake: pixel samples of a shard, a region-aware folder fit pooled
per matched style region, and the stylize job applying it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import save
from photostyle.config import validate_config
from photostyle.core.collection import sync_listings, unit_id
from photostyle.core.io import read_csv_dicts, write_csv_atomic
from photostyle.core.photo import PhotoLimits
from photostyle.stages import grade
from photostyle.stages.ingest import ingest_listing
from photostyle.stages.stylize import run_stylize_shard

H, W = 40, 48
LABELS = np.zeros((H, W), np.uint8)
LABELS[H // 2:] = 1  # top half: region 0 (bright), bottom: region 1 (dark)


def _photo(top, bottom, seed):
    rng = np.random.default_rng(seed)
    img = np.where(LABELS[..., None] == 0, top, bottom) + rng.normal(0, 10, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def graded(tmp_path):
    root, sroot = tmp_path / "c", tmp_path / "s"
    photos = {"a/p0.png": _photo([200, 190, 180], [70, 60, 50], 0),
              "a/p1.png": _photo([150, 140, 130], [40, 35, 30], 1),  # the same shoot, darker
              "b/q0.png": _photo([20, 20, 20], [10, 10, 10], 2)}  # another folder: must not be pooled into a's fit
    for rel, img in photos.items():
        save(img, root / rel)
    save(_photo([80, 120, 230], [150, 100, 40], 3), sroot / "sky.png")
    cfg = validate_config({"device": "cpu", "stylize": {"methods": ["reinhard"], "scope": "folder",
                                                        "scope_sample_pixels": 256}})
    limits = PhotoLimits.from_settings(cfg)
    (c_shard,) = sync_listings(root, tmp_path / "lc", 1000)
    ingest_listing(tmp_path / "lc" / f"{c_shard}.csv", root, "content", c_shard, limits, tmp_path / "content.csv")
    (sid,) = sync_listings(sroot, tmp_path / "ls", per_file=True)
    ingest_listing(tmp_path / "ls" / f"{sid}.csv", sroot, "style", sid, limits, tmp_path / "style.csv")
    # label maps as the segment stage writes them (k-means clusters: matched by luminance rank)
    seg_rows = []
    for kind, table in (("content", tmp_path / "content.csv"), ("style", tmp_path / "style.csv")):
        for r in read_csv_dicts(table):
            path = tmp_path / "labels" / f"{r['id']}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(LABELS).save(path)
            seg_rows.append({"kind": kind, "photo_id": r["id"], "status": "ok", "labels": str(path),
                             "label_space": "clusters"})
    cols = ["kind", "photo_id", "status", "labels", "label_space"]
    write_csv_atomic(tmp_path / "seg_content.csv", cols, [r for r in seg_rows if r["kind"] == "content"])
    write_csv_atomic(tmp_path / "seg_style.csv", cols, [r for r in seg_rows if r["kind"] == "style"])
    sample = tmp_path / "samples.npz"
    n = grade.run_sample_shard(tmp_path / "content.csv", str(tmp_path / "seg_content.csv"),
                               grade.settings(cfg, "sample"), sample)
    assert n == 3
    fit_settings = grade.settings(cfg, "fit", "reinhard")
    fits = {"both": tmp_path / "fits" / "both.json", "a": tmp_path / "fits" / "a.json"}
    grade.run_fit([sample], tmp_path / "style.csv", str(tmp_path / "seg_style.csv"), "reinhard", fit_settings,
                  [unit_id("a"), unit_id("b")], fits["both"])  # the units one shard owns, in one file
    grade.run_fit([sample], tmp_path / "style.csv", str(tmp_path / "seg_style.csv"), "reinhard", fit_settings,
                  [unit_id("a")], fits["a"])
    return tmp_path, cfg, sid, sample, fits, fit_settings


def test_samples_are_seeded_positions_of_the_working_photo_with_their_labels(graded):
    tmp_path, cfg, _, sample, *_ = graded
    got = {pid: (rel, rgb, lab) for pid, rel, rgb, lab, space, _, _ in grade.read_samples(sample)}
    assert len(got) == 3
    rows = {r["id"]: r for r in read_csv_dicts(tmp_path / "content.csv")}
    for pid, (rel, rgb, lab) in got.items():
        img = np.asarray(Image.open(rows[pid]["path"]).convert("RGB"))
        pos = grade.sample_positions((H, W), 256, cfg["seed"], pid)
        assert len(pos) == 256 and np.array_equal(rgb, img.reshape(-1, 3)[pos])
        assert np.array_equal(lab, LABELS.reshape(-1)[pos])
    # another seed draws other positions; the same seed the same
    assert not np.array_equal(grade.sample_positions((H, W), 256, 1, "x"), grade.sample_positions((H, W), 256, 0, "x"))
    assert np.array_equal(grade.sample_positions((H, W), 256, 0, "x"), grade.sample_positions((H, W), 256, 0, "x"))


def test_a_folder_fit_pools_only_its_photos_per_matched_region(graded):
    *_, fits, _ = graded
    units = json.loads(fits["both"].read_text())["units"]
    a, b = units[unit_id("a")], units[unit_id("b")]
    assert (a["photos"], a["pixels"], a["folder"]) == (2, 512, "a")
    assert (b["photos"], b["folder"]) == (1, "b")
    assert json.loads(fits["a"].read_text())["units"] == {unit_id("a"): a}  # alone or together: the same
    assert sorted(a["fit"]["groups"]) == ["0", "1"]  # the two regions, each to its style region by rank
    assert a["fit"]["groups"] != b["fit"]["groups"]
    assert a["group_names"] == {"0": "region0", "1": "region1"}


def test_stylize_applies_the_folder_fit_and_keeps_the_shoots_exposures_apart(graded):
    tmp_path, cfg, sid, _, fits, _ = graded
    from photostyle.stages.stylize import settings as stylize_settings

    s = stylize_settings(cfg, "reinhard")
    assert s["scope"] == "folder"
    index = tmp_path / "out" / "_index" / "reinhard" / "shard.csv"
    rows = run_stylize_shard(tmp_path / "content.csv", [tmp_path / "style.csv"], "reinhard", s, tmp_path / "out",
                             index, "test", [str(tmp_path / "seg_content.csv"), str(tmp_path / "seg_style.csv")],
                             fits=[str(fits["both"])])
    assert all(r["status"] == "ok" for r in rows), rows
    by_rel = {r["relpath"]: r["id"] for r in read_csv_dicts(tmp_path / "content.csv")}
    out = {rel: np.asarray(Image.open(tmp_path / "out" / sid / "reinhard" / f"{pid}.png").convert("RGB")).astype(float)
           for rel, pid in by_rel.items()}
    top = LABELS == 0
    assert out["a/p0.png"][top].mean() > out["a/p1.png"][top].mean() + 10  # p0 stays the brighter frame
    # the top regions of the shoot together take the style's top colour (blue sky): blue > red
    pooled = np.concatenate([out["a/p0.png"][top], out["a/p1.png"][top]])
    assert pooled[:, 2].mean() > pooled[:, 0].mean() + 40, pooled.mean(0)
    text = Image.open(tmp_path / "out" / sid / "reinhard" / f"{by_rel['a/p0.png']}.png").text
    assert text["photostyle:scope"] == f"folder {unit_id('a')}" and len(text["photostyle:fit_sha256"]) == 64
    # without its fit a photo fails with the reason, the others go on
    rows = run_stylize_shard(tmp_path / "content.csv", [tmp_path / "style.csv"], "reinhard", s, tmp_path / "out2",
                             tmp_path / "out2" / "i.csv", "test", [str(tmp_path / "seg_content.csv"),
                                                                  str(tmp_path / "seg_style.csv")], fits=[str(fits["a"])])
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["photo_id"] for r in failed] == [by_rel["b/q0.png"]] and "folder fit" in failed[0]["error"]


def test_a_fit_does_not_depend_on_which_shards_hold_its_photos(graded):
    """A neighbouring folder's shard splitting moves photos between sample files: the fit's bytes
    (and so its digest in every output's provenance) stay the same."""
    tmp_path, cfg, _, sample, fits, fit_settings = graded
    rows = read_csv_dicts(tmp_path / "content.csv")
    split = []
    for part, keep in (("x", {"a/p1.png", "b/q0.png"}), ("y", {"a/p0.png"})):
        table = tmp_path / f"content_{part}.csv"
        write_csv_atomic(table, list(rows[0]), [r for r in rows if r["relpath"] in keep])
        out = tmp_path / f"samples_{part}.npz"
        grade.run_sample_shard(table, str(tmp_path / "seg_content.csv"), grade.settings(cfg, "sample"), out)
        split.append(out)
    again = tmp_path / "again.json"
    grade.run_fit(split, tmp_path / "style.csv", str(tmp_path / "seg_style.csv"), "reinhard", fit_settings,
                  [unit_id("a")], again)
    assert again.read_bytes() == fits["a"].read_bytes()
    digest = {k: v[1] for k, v in grade.load_fits([fits["both"]]).items()}  # what outputs' provenance records
    assert grade.load_fits([again])[(graded[2], unit_id("a"))][1] == digest[(graded[2], unit_id("a"))]


def test_a_photo_scope_lut_is_written_where_the_map_is_global_and_reproduces_it(graded, tmp_path):
    from PIL import ImageFilter

    from photostyle.ops.lut import read_cube
    from photostyle.stages.export import write_luts
    from photostyle.stages.stylize import settings as stylize_settings

    src, cfg, sid, *_ = graded
    s = stylize_settings(cfg, "reinhard")
    s["scope"] = "photo"
    index = tmp_path / "raw" / "_index" / "reinhard" / "shard.csv"
    # global maps (no label maps given), then region-aware ones: a LUT for the first, a reason for the second
    run_stylize_shard(src / "content.csv", [src / "style.csv"], "reinhard", s, tmp_path / "raw", index, "test")
    luts = {"size": 33, "scope": "photo", "params": {"reinhard": cfg["methods"]["reinhard"]}}
    rows = write_luts(src / "content.csv", luts, [], [index], tmp_path / "export", tmp_path / "luts.csv", "test")
    assert [r["status"] for r in rows] == ["ok"] * 3
    by_rel = {r["relpath"]: r for r in read_csv_dicts(src / "content.csv")}
    lut = tmp_path / "export" / sid / "reinhard" / "luts" / "a" / "p0.png.cube"
    size, table, _, comments = read_cube(lut.read_text())
    assert size == 33 and any("a/p0.png" in c for c in comments)
    content = Image.open(by_rel["a/p0.png"]["path"]).convert("RGB")
    got = np.asarray(content.filter(ImageFilter.Color3DLUT(size, table.reshape(-1).tolist(), channels=3))) / 255.0
    want = np.asarray(Image.open(tmp_path / "raw" / sid / "reinhard" / f"{by_rel['a/p0.png']['id']}.png")) / 255.0
    lit = np.asarray(content).min(axis=2) >= 100  # Reinhard's log-space curve is too steep near black for a
    assert np.sqrt(((got - want)[lit] ** 2).mean()) < 1 / 255  # lattice (docs/benchmarks.md); elsewhere exact
    from photostyle.stages.common import matching_settings

    s2 = dict(s, segmentation=matching_settings(cfg))
    index2 = tmp_path / "raw2" / "_index" / "reinhard" / "shard.csv"
    run_stylize_shard(src / "content.csv", [src / "style.csv"], "reinhard", s2, tmp_path / "raw2", index2, "test",
                      [str(src / "seg_content.csv"), str(src / "seg_style.csv")])
    rows = write_luts(src / "content.csv", luts, [], [index2], tmp_path / "export2", tmp_path / "luts2.csv", "test")
    assert [r["status"] for r in rows] == ["skipped"] * 3 and all("region-aware" in r["note"] for r in rows)


def test_luts_of_a_folder_this_shard_no_longer_writes_are_deleted(graded, tmp_path):
    from photostyle.stages.export import write_luts

    src, cfg, sid, _, fits, _ = graded
    luts = {"size": 9, "scope": "folder", "params": {"reinhard": cfg["methods"]["reinhard"]}}
    out, index = tmp_path / "export", tmp_path / "luts.csv"
    rows = write_luts(src / "content.csv", luts, [fits["both"]], [], out, index, "test")
    written = {r["output"] for r in rows if r["status"] == "ok"}
    a = out / sid / "reinhard" / "luts" / "a" / "_folder.cube"
    b = out / sid / "reinhard" / "luts" / "b" / "_folder.cube"
    assert a.is_file() and b.is_file() and str(a) in written and len(written) > 2  # regions too
    keep = tmp_path / "export" / "mine.cube"  # a file no ledger names is never touched
    keep.write_text("x")
    write_luts(src / "content.csv", luts, [fits["a"]], [], out, index, "test")  # b's folder went elsewhere
    assert a.is_file() and not b.exists() and keep.is_file()
    assert not list(b.parent.glob("*.cube")) and list(a.parent.glob("_folder.region*.cube"))
