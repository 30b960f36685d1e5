"""Grading a shoot (stylize.scope folder): one colour map per style and folder, fitted on pooled
pixel samples, applied to every photo of the folder, exported as .cube LUTs that another
implementation (Pillow's Color3DLUT) applies to the same result; adding a photo to a folder
reruns that folder's fit and outputs only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFilter

from conftest import run_snakemake, save, scheduled_jobs, smooth_photo
from photostyle.core.collection import folder_of, read_listing, unit_id
from photostyle.core.io import read_csv_dicts
from photostyle.ops.lut import read_cube


def _darker(img: np.ndarray, stops: float = 1.0) -> np.ndarray:
    x = img.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 2.0 ** -stops
    return np.round(np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055) * 255).astype(np.uint8)


SHOOT = {  # relpath -> photo
    "shoot_a/bright.jpg": smooth_photo(48, 64, seed=0),
    "shoot_a/dark.jpg": _darker(smooth_photo(48, 64, seed=0)),
    "shoot_a/other.jpg": smooth_photo(48, 64, seed=1),
    "shoot b/één.jpg": smooth_photo(40, 56, seed=2),
    "shoot b/two.jpg": smooth_photo(40, 56, seed=3),
    "top.jpg": smooth_photo(40, 40, seed=4),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grade")
    for rel, img in SHOOT.items():
        save(img, tmp / "photos" / rel, quality=97)
    warm = np.clip(smooth_photo(40, 40, seed=10) * np.array([1.15, 0.9, 0.55]), 0, 255).astype(np.uint8)
    save(warm, tmp / "styles" / "warm.png")
    cfg = {
        "content_dir": str(tmp / "photos"), "style_dir": str(tmp / "styles"), "device": "cpu",
        "ingest": {"shard_size": 2},
        "segmentation": {"enabled": False},
        # reinhard only: mkl's fits and LUTs are the same code with another map (tests/ops cover both)
        "stylize": {"methods": ["reinhard"], "scope": "folder", "scope_sample_pixels": 512},
        "refine": {"enabled": False},
        "metrics": {"colour_sample_pixels": 1024, "swd_projections": 16, "style_distance": False},
        "report": {"grid_photos": 2, "thumb_px": 64},
        "export": {"lut_size": 33, "format": "png"},
    }
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    # only what grading makes (no metrics, report grids or tables: other tests cover them)
    proc = run_snakemake(tmp, cfg_path, "--cores", "2", "--until", "export", "report_shoot")
    return tmp, cfg_path, cfg, proc.stdout + proc.stderr


def _manifest(tmp):
    return {r["relpath"]: r for r in read_csv_dicts(tmp / "results" / "manifest.csv")}


def _raw(tmp, method, pid):
    return np.asarray(Image.open(tmp / "results" / "stylized" / "warm" / method / f"{pid}.png").convert("RGB"))


def _fits(tmp, method="reinhard", style="warm"):
    """unit -> its fit entry, over the fit files (one per owner shard)."""
    from photostyle.stages.grade import read_fits

    return {u["unit"]: u for f in (tmp / "results" / "grade" / "fit" / method / style).glob("*.json")
            for u in read_fits(f)}


def test_one_fit_per_style_method_and_folder_pooling_its_photos(graded):
    tmp, *_ = graded
    fits = _fits(tmp)
    assert sorted(fits) == sorted(unit_id(f) for f in ("shoot_a", "shoot b", ""))
    for folder, n in (("shoot_a", 3), ("shoot b", 2), ("", 1)):
        fit = fits[unit_id(folder)]
        assert (fit["photos"], fit["folder"], fit["scope"]) == (n, folder, "folder"), fit
        assert fit["pixels"] == n * 512
    # each fit file is the job of the folders' first shard
    listed = {r["relpath"]: r["shard"] for r in read_csv_dicts(tmp / "results" / "manifest.csv")}
    owners = {min(s for rel, s in listed.items() if folder_of(rel) == f) for f in ("shoot_a", "shoot b", "")}
    assert {p.stem for p in (tmp / "results" / "grade" / "fit" / "reinhard" / "warm").glob("*.json")} == owners
    provenance = Image.open(tmp / "results" / "stylized" / "warm" / "reinhard" /
                            f"{_manifest(tmp)['shoot_a/dark.jpg']['id']}.png").text
    assert provenance["photostyle:scope"] == f"folder {unit_id('shoot_a')}"
    assert provenance["photostyle:fit_sha256"] == fits[unit_id("shoot_a")]["digest"]


@pytest.mark.parametrize("method", ["reinhard"])
def test_a_folder_keeps_its_exposures_apart(graded, method):
    tmp, *_ = graded
    m = _manifest(tmp)
    bright, dark = (_raw(tmp, method, m[f"shoot_a/{n}.jpg"]["id"]).mean() / 255 for n in ("bright", "dark"))
    assert bright > dark + 0.05, (bright, dark)


@pytest.mark.parametrize("method", ["reinhard"])
def test_the_folder_lut_reproduces_the_pipeline_in_pillow(graded, method):
    tmp, *_ = graded
    m = _manifest(tmp)
    lut = tmp / "results" / "export" / "warm" / method / "luts" / "shoot_a" / "_folder.cube"
    size, table, title, comments = read_cube(lut.read_text())
    assert size == 33 and any("fit sha256:" in c for c in comments) and any("3 photos" in c for c in comments)
    pil_lut = ImageFilter.Color3DLUT(size, table.reshape(-1).tolist(), channels=3)
    for name in ("bright", "dark", "other"):
        row = m[f"shoot_a/{name}.jpg"]
        content = Image.open(row["path"]).convert("RGB")
        got = np.asarray(content.filter(pil_lut)).astype(np.float64) / 255
        want = _raw(tmp, method, row["id"]).astype(np.float64) / 255
        rms = float(np.sqrt(((got - want) ** 2).mean()))
        assert rms < 1 / 255, (name, rms)
    # every folder has its LUT, mirrored under luts/, and the top folder's is luts/_folder.cube
    luts = tmp / "results" / "export" / "warm" / method / "luts"
    assert (luts / "shoot b" / "_folder.cube").is_file() and (luts / "_folder.cube").is_file()
    rows = [r for f in (tmp / "results" / "export" / "_index" / "luts").glob("*.csv") for r in read_csv_dicts(f)]
    assert sorted(r["unit"] for r in rows if r["method"] == method) == sorted(unit_id(f) for f in ("shoot_a", "shoot b", ""))


def test_the_report_has_a_shoot_grid_per_folder(graded):
    tmp, *_ = graded
    for folder in ("shoot_a", "shoot b", ""):
        grid = tmp / "results" / "report" / "shoot" / "warm" / f"{unit_id(folder)}.png"
        assert grid.is_file() and Image.open(grid).size[0] > 300, grid


def test_a_lut_size_change_reruns_export_only(graded):
    tmp, _, cfg, _ = graded
    other = tmp / "lut17.yaml"
    other.write_text(yaml.safe_dump({**cfg, "export": {**cfg["export"], "lut_size": 17}}))
    jobs = scheduled_jobs(run_snakemake(tmp, other, "-n", "--until", "export", "report_shoot").stdout)
    assert jobs and {r for r, _ in jobs} == {"export"}, jobs


def test_adding_a_photo_to_a_folder_reruns_that_folder_only(graded):
    tmp, cfg_path, cfg, _ = graded
    save(smooth_photo(40, 56, seed=7), tmp / "photos" / "shoot b" / "three.jpg", quality=97)
    try:
        jobs = scheduled_jobs(run_snakemake(tmp, cfg_path, "-n", "--until", "export", "report_shoot").stdout)
        owners = {w["shard"] for r, w in jobs if r == "grade_fit"}
        samples = [w for r, w in jobs if r == "grade_sample"]
        assert len(samples) <= 2, samples  # the new photo's shard (or the two it splits into)
        # the fit job owning the folder reruns; another only where its folders share the new
        # photo's shard (shards are runs of folder-ordered photos), and their fits come out the same
        lists = tmp / "results" / "ingest" / "lists" / "content"
        unit_shards = {}
        for listing in lists.glob("*.csv"):
            for e in read_listing(listing):
                unit_shards.setdefault(unit_id(folder_of(e.relpath)), set()).add(listing.stem)
        owner = {u: min(s) for u, s in unit_shards.items()}
        sharing = {u for u, s in unit_shards.items() if s & {w["shard"] for w in samples}}
        assert owner[unit_id("shoot b")] in owners, (owners, owner)
        assert owners <= {owner[u] for u in sharing | {unit_id("shoot b")}}, (owners, sharing)
        # the stylize jobs are those of shards holding the folder's photos, not every shard
        shards_b = {r["shard"] for rel, r in _manifest(tmp).items() if folder_of(rel) == "shoot b"}
        stylized = {w["shard"] for r, w in jobs if r == "stylize"}
        all_shards = {r["shard"] for r in _manifest(tmp).values()}
        assert stylized and stylized < all_shards | {w["shard"] for w in samples}, (stylized, all_shards)
        assert stylized <= shards_b | {w["shard"] for w in samples}, (stylized, shards_b)
    finally:
        (tmp / "photos" / "shoot b" / "three.jpg").unlink()
