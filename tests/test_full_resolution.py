"""Full resolution end to end: methods at a working size, results lifted to each photo's size,
deliverables exported into a mirror of the user's folder tree with EXIF and ICC.

The default suite runs a small case (photos of a few hundred pixels, a working size of a few
thousand pixels); the slow marker runs a 6000x4000 photo through the whole pipeline.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_snakemake, save, scheduled_jobs, smooth_photo
from core.test_deliver import linear_rgb_profile
from photostyle.core import deliver as D
from photostyle.core.io import read_csv_dicts
from photostyle.ops.colour import ColourMap

MODEL = 0x0110


def _exif(orientation=1, gps=True):
    ex = Image.Exif()
    ex[MODEL] = "TestCam X1"
    ex[D.ORIENTATION] = orientation
    ex.get_ifd(D.EXIF_IFD)[0x9003] = "2024:05:06 07:08:09"
    if gps:
        ex.get_ifd(D.GPS_IFD)[1] = "N"
        ex.get_ifd(D.GPS_IFD)[2] = (47.0, 22.0, 1.5)
    return ex.tobytes()


def _collection(tmp, size, work_megapixels):
    h, w = size
    content, styles = tmp / "photos", tmp / "styles"
    # same name in two folders, unicode folders, a rotated photo with EXIF, GPS and a profile
    save(smooth_photo(h, w, seed=1), content / "Reisen" / "Zürich" / "IMG_1.jpg", quality=95,
         exif=_exif(orientation=6), icc_profile=linear_rgb_profile())
    save(smooth_photo(h, w, seed=2), content / "Reisen" / "Köln" / "IMG_1.jpg", quality=95, exif=_exif())
    save(smooth_photo(w // 2, h // 2, seed=3), content / "scan 01.png")
    warm = np.clip(smooth_photo(40, 40, seed=10) * np.array([1.1, 0.9, 0.6]), 0, 255).astype(np.uint8)
    save(warm, styles / "warm.png")
    cfg = {
        "content_dir": str(content), "style_dir": str(styles), "device": "cpu",
        "ingest": {"shard_size": 10, "work_megapixels": work_megapixels},
        "stylize": {"methods": ["reinhard"]},
        "segmentation": {"model": "kmeans"},
        "metrics": {"colour_sample_pixels": 1024, "swd_projections": 8, "style_distance": False},
        "report": {"grid_photos": 2, "thumb_px": 64},
    }
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path, cfg


EXPECTED = {"Reisen/Zürich/IMG_1.jpg": "rotated", "Reisen/Köln/IMG_1.jpg": "upright", "scan 01.jpg": "half"}


def _expected_size(kind, h, w):
    return {"rotated": (w, h), "upright": (h, w), "half": (w // 2, h // 2)}[kind]  # (height, width)


def _check_deliverables(tmp, size):
    h, w = size
    res = tmp / "results"
    style = next(p.name for p in (res / "export").iterdir() if p.name == "warm")
    root = res / "export" / style / "reinhard"
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert found == sorted(EXPECTED), found
    for rel, kind in EXPECTED.items():
        with Image.open(root / rel) as im:
            assert (im.height, im.width) == _expected_size(kind, h, w), rel  # never the working size
            if rel.startswith("Reisen"):
                ex = im.getexif()
                assert ex[MODEL] == "TestCam X1" and ex[D.ORIENTATION] == 1
                assert ex.get_ifd(D.GPS_IFD)[2] == (47.0, 22.0, 1.5)
            if "Zürich" in rel:
                assert im.info["icc_profile"] == linear_rgb_profile()
        prov = D.read_provenance(root / rel)
        assert prov["photostyle:relpath"] == rel.replace("scan 01.jpg", "scan 01.png")
        assert prov["photostyle:variant"] == "refined"
    return root


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fullres")
    cfg_path, cfg = _collection(tmp, (120, 160), 0.004)
    run_snakemake(tmp, cfg_path, "--cores", "2")
    return tmp, cfg_path, cfg


def test_deliverables_mirror_the_tree_at_full_resolution_with_metadata(small_run):
    tmp, _, _ = small_run
    _check_deliverables(tmp, (120, 160))
    res = tmp / "results"
    manifest = {r["relpath"]: r for r in read_csv_dicts(res / "manifest.csv") if r["kind"] == "content"}
    rotated = manifest["Reisen/Zürich/IMG_1.jpg"]
    assert (rotated["full_width"], rotated["full_height"]) == ("120", "160")
    assert int(rotated["width"]) * int(rotated["height"]) <= 4000  # what the methods saw
    # the method's raw result stays at the working size; the refined one is at full size
    for r in read_csv_dicts(next((res / "refined" / "_index").rglob("*.csv"))):
        photo = next(m for m in manifest.values() if m["id"] == r["photo_id"])
        with Image.open(tmp / r["output"]) as im:
            assert (im.width, im.height) == (int(photo["full_width"]), int(photo["full_height"]))
    # reinhard leaves its per-region colour map beside each raw result, for the lift to apply
    for r in read_csv_dicts(next((res / "stylized" / "_index").rglob("*.csv"))):
        cmap = ColourMap.from_png((tmp / r["output"]).read_bytes())
        assert cmap is not None and cmap.space == "lalphabeta" and len(cmap.regions) >= 1
    per_image = read_csv_dicts(res / "metrics" / "per_image.csv")
    assert len(per_image) == 3 * 2 and all(r["status"] == "ok" for r in per_image)
    # lifted outputs keep the photo's full-resolution structure (measured at the working size)
    assert all(float(r["ssim_lum"]) > 0.5 for r in per_image)


def test_export_and_lift_settings_rerun_only_what_they_touch(small_run):
    tmp, _, cfg = small_run
    assert scheduled_jobs(run_snakemake(tmp, tmp / "config.yaml", "-n", "--cores", "1").stdout) == []

    def rules(change, name):
        c = copy.deepcopy(cfg)
        for section, values in change.items():
            c[section] = {**c.get(section, {}), **values}
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(c))
        return {r for r, _ in scheduled_jobs(run_snakemake(tmp, path, "-n", "--cores", "1").stdout)}

    assert rules({"export": {"quality": 80}}, "quality") == {"export", "all"}
    lift = rules({"lift": {"radius": 4}}, "radius")
    assert {"refine", "export", "metrics"} <= lift and "stylize" not in lift and "segment" not in lift
    own = rules({"lift": {"per_method": {"reinhard": {"model": "upsample"}}}}, "per_method")
    assert {"refine", "export", "metrics"} <= own and "stylize" not in own and "segment" not in own


@pytest.mark.slow
def test_a_24_megapixel_photo_end_to_end(tmp_path):
    """6000x4000 photos with EXIF and an ICC profile through the whole pipeline (default
    working size): deliverables at 6000x4000 with their metadata."""
    cfg_path, _ = _collection(tmp_path, (4000, 6000), 1.5)
    run_snakemake(tmp_path, cfg_path, "--cores", "2")
    _check_deliverables(tmp_path, (4000, 6000))


def _export_again(small_run, name: str, export: dict) -> Path:
    """Rerun the small run with other ``export`` settings: only export may run; returns the
    reinhard deliverables' folder."""
    tmp, _, cfg = small_run
    c = copy.deepcopy(cfg)
    c["export"] = export
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(c))
    rules = {r for r, _ in scheduled_jobs(run_snakemake(tmp, path, "-n", "--cores", "1").stdout)}
    assert rules == {"export", "all"}
    run_snakemake(tmp, path, "--cores", "2")
    return next((tmp / "results" / "export").glob("warm")) / "reinhard"


def test_raw_variant_is_lifted_by_the_export_itself(small_run):
    """export.variant raw: the method's working-size result, lifted to full resolution by the
    export job (same model as refine's), written as PNG with the same tree."""
    root = _export_again(small_run, "raw", {"variant": "raw", "format": "png"})
    with Image.open(root / "Reisen" / "Köln" / "IMG_1.png") as im:
        assert (im.height, im.width) == (120, 160)
        assert D.read_provenance(root / "Reisen" / "Köln" / "IMG_1.png")["photostyle:variant"] == "raw"


def test_sixteen_bit_tiff_deliverables_hold_more_than_eight_bits(small_run):
    """export.format tiff16: export alone reruns; it lifts and refines the method's raw result
    itself in floating point (refine's images are 8-bit), so the 16-bit deliverables hold
    values between 8-bit levels; full size, the tree, camera and GPS in XMP, provenance read back."""
    import tifffile

    tmp = small_run[0]
    root = _export_again(small_run, "tiff16", {"format": "tiff16"})
    for rel, kind in EXPECTED.items():
        out = root / str(Path(rel).with_suffix(".tif"))
        with tifffile.TiffFile(out) as tf:
            img = tf.pages[0].asarray()
            xmp = D.read_xmp(tf.pages[0].tags[D.XMP_TAG].value)
        assert img.dtype == np.uint16 and img.shape[:2] == _expected_size(kind, 120, 160), rel
        assert (img % 257 != 0).mean() > 0.5  # not 8-bit values scaled up
        prov = D.read_provenance(out)
        assert prov["photostyle:variant"] == "refined" and prov["photostyle:relpath"] == rel.replace("scan 01.jpg", "scan 01.png")
        if rel.startswith("Reisen"):
            assert xmp["tiff:Model"] == "TestCam X1" and xmp["exif:GPSLatitude"].startswith("47,")
    # refined the same way as refine's 8-bit image: equal to it up to that image's rounding
    refined = read_csv_dicts(next((tmp / "results" / "refined" / "_index").rglob("*.csv")))
    r = next(r for r in refined if r["photo_id"].startswith("IMG_1"))
    with Image.open(tmp / r["output"]) as im:
        eight = np.asarray(im).astype(int)
    photo = next(m for m in read_csv_dicts(tmp / "results" / "manifest.csv") if m["id"] == r["photo_id"])
    with tifffile.TiffFile(root / str(Path(photo["relpath"]).with_suffix(".tif"))) as tf:
        sixteen = tf.pages[0].asarray().astype(float) / 257
    assert np.abs(sixteen - eight).max() <= 0.51


def test_two_photos_with_one_deliverable_name_never_overwrite_each_other(tmp_path):
    """``a.png`` and ``a.jpg`` in one folder both export as ``a.jpg``: the second is failed with
    a message naming the first, whose deliverable stays."""
    import numpy as np

    from photostyle.stages.export import run_export_shard
    from photostyle.core.photo import PhotoLimits, decode_photo
    from photostyle.core.io import write_csv_atomic, write_png_atomic

    rows, entries = [], []
    for i, name in enumerate(("a.jpg", "a.png")):
        img = smooth_photo(30, 40, seed=i)
        src = save(img, tmp_path / "photos" / name, **({"quality": 95} if name.endswith("jpg") else {}))
        _, info = decode_photo(src.read_bytes(), PhotoLimits())
        rows.append({"id": f"a{i}", "status": "ok", "path": str(src), "relpath": name, "sha256": info.sha256,
                     "width": 40, "height": 30, "full_width": 40, "full_height": 30})
        out = tmp_path / "stylized" / f"a{i}.png"
        write_png_atomic(out, img)
        entries.append({"photo_id": f"a{i}", "style": "s", "method": "reinhard", "variant": "raw", "status": "ok",
                        "output": str(out)})
    write_csv_atomic(tmp_path / "shard.csv", list(rows[0]), rows)
    write_csv_atomic(tmp_path / "index.csv", list(entries[0]), entries)
    settings = {"methods": {"reinhard": {
        "export": {"format": "jpeg", "quality": 90, "strip_gps": False, "icc": "keep", "enabled": True},
        "variant": "raw", "source": "raw", "lift": {"enabled": False}, "device": "cpu",
        "ingest": {"work_megapixels": 1.5, "max_megapixels": 100, "min_side": 16, "max_decode_megapixels": 250}}}}
    out = run_export_shard(tmp_path / "shard.csv", [tmp_path / "index.csv"], settings, tmp_path / "export",
                           tmp_path / "export" / "_index" / "reinhard" / "x.csv", "test")
    assert [r["status"] for r in out] == ["ok", "failed"]
    assert "deliverable of 'a.jpg'" in out[1]["error"]
    assert D.read_provenance(tmp_path / "export" / "s" / "reinhard" / "a.jpg")["photostyle:relpath"] == "a.jpg"
