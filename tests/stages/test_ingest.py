"""Ingest on a hostile corpus the test generates; every file is accounted for."""

import io
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import save, smooth_photo
from photostyle.core.collection import sync_listings
from photostyle.stages.ingest import collect_manifest, ingest_listing
from photostyle.core.io import read_csv_dicts
from photostyle.core.photo import PhotoLimits, PhotoRejected, decode_photo

LIMITS = PhotoLimits(max_megapixels=0.01, min_side=8, max_decode_megapixels=0.05)


def _jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    good = smooth_photo(30, 40)
    data = _jpeg_bytes(good, quality=90)
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("just some text, not a picture")
    Image.fromarray(good).convert("CMYK").save(root / "cmyk.jpg")
    ramp16 = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    Image.fromarray(ramp16).save(root / "sixteen.png")
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :20, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    Image.fromarray(good).convert("L").save(root / "grey.png")
    Image.fromarray(good).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(smooth_photo(20, 50)).save(root / "rotated.jpg", exif=exif)
    Image.new("RGB", (1, 1)).save(root / "one_pixel.png")
    Image.fromarray(smooth_photo(150, 200)).save(root / "large.png")  # 0.03 MP > cap 0.01 MP
    Image.new("L", (400, 300)).save(root / "bomb.png")  # 0.12 MP > decode limit 0.05 MP
    (root / "sub dir").mkdir()
    save(good, root / "sub dir" / "ünïcödé name.jpg")
    save(good, root / "other" / "ünïcödé name.jpg")  # same stem, other folder
    # entries that are not regular files: each must be accounted, none opened
    (root / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "outside").mkdir()
    save(good, tmp_path / "outside" / "x.jpg")
    (root / "link_to_folder").symlink_to(tmp_path / "outside")  # not followed out of the collection
    save(good, tmp_path / "target.jpg")
    (root / "link_to_photo.jpg").symlink_to(tmp_path / "target.jpg")  # a link to a photo is a photo
    os.mkfifo(root / "pipe.jpg")  # opening it would block the job for ever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.jpg"))
    sock.close()
    save(good, root / "locked.jpg")
    (root / "locked.jpg").chmod(0)
    return root


def test_every_input_accepted_or_rejected_with_reason(hostile, tmp_path, monkeypatch):
    real_read = Path.read_bytes

    def read_bytes(self):  # root reads anything: refuse the locked file as a normal user's run would
        if self.name == "locked.jpg":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    lists = tmp_path / "lists"
    shards = sync_listings(hostile, lists, 3)
    tables = []
    for shard in shards:
        out = tmp_path / "tables" / f"{shard}.csv"
        ingest_listing(lists / f"{shard}.csv", hostile, "content", shard, LIMITS, out)
        tables.append(out)
    n_ok, n_bad = collect_manifest(tables, tmp_path / "manifest.csv", tmp_path / "rejected.csv")
    manifest = read_csv_dicts(tmp_path / "manifest.csv")
    rejected = read_csv_dicts(tmp_path / "rejected.csv")
    all_files = sorted(str(p.relative_to(hostile)) for p in hostile.rglob("*") if p.is_symlink() or not p.is_dir())
    accounted = sorted([r["relpath"] for r in manifest] + [r["relpath"] for r in rejected])
    assert accounted == all_files  # each input exactly once
    assert {"dangling.jpg", "link_to_folder", "pipe.jpg", "sock.jpg", "locked.jpg"} <= set(all_files)
    reasons = {r["relpath"]: r["reason"] for r in rejected}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "notes.jpg", "one_pixel.png", "bomb.png", "dangling.jpg",
                            "link_to_folder", "pipe.jpg", "sock.jpg", "locked.jpg"}
    assert "broken symbolic link" in reasons["dangling.jpg"]
    assert "link to a folder" in reasons["link_to_folder"]
    assert "FIFO" in reasons["pipe.jpg"] and "never opened" in reasons["pipe.jpg"]
    assert "socket" in reasons["sock.jpg"]
    assert "Permission denied" in reasons["locked.jpg"]
    assert "outside" not in "".join(all_files)  # nothing was read through the folder link
    assert "link_to_photo.jpg" in {r["relpath"] for r in manifest}
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.jpg"]
    assert "too small" in reasons["one_pixel.png"]
    assert "decompression bomb" in reasons["bomb.png"]
    by = {r["relpath"]: r for r in manifest}
    assert by["rotated.jpg"]["width"] == "20" and by["rotated.jpg"]["height"] == "50"
    assert by["rotated.jpg"]["exif_rotated"] == "1"
    large = by["large.png"]
    assert (large["orig_width"], large["orig_height"], large["resized"]) == ("200", "150", "1")
    assert int(large["width"]) * int(large["height"]) <= 0.01e6
    assert by["cmyk.jpg"]["mode"] == "CMYK"
    ids = {r["id"] for r in manifest}
    assert len(ids) == len(manifest)
    assert len([r for r in manifest if r["id"].startswith("unicode_name-")]) == 2


def test_conversions_to_8bit_rgb():
    ramp16 = np.array([[0, 32768, 65535] * 6] * 18, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp16).save(buf, format="PNG")
    arr, info = decode_photo(buf.getvalue(), LIMITS)
    assert arr.dtype == np.uint8 and arr.shape[2] == 3
    assert arr[0, :3, 0].tolist() == [0, 128, 255]  # scaled, not clipped
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = 10  # dark but fully transparent -> white
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    arr, _ = decode_photo(buf.getvalue(), LIMITS)
    assert (arr == 255).all()
    for mode in ("L", "P", "CMYK", "1", "LA"):
        buf = io.BytesIO()
        Image.fromarray(smooth_photo(20, 20)).convert(mode).save(buf, format="TIFF")
        arr, info = decode_photo(buf.getvalue(), LIMITS)
        assert arr.shape == (20, 20, 3) and info.mode == mode


def test_exif_orientation_applied():
    img = smooth_photo(20, 50)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", exif=exif, quality=95)
    arr, info = decode_photo(buf.getvalue(), LIMITS)
    assert arr.shape[:2] == (50, 20) and info.exif_rotated
    # orientation 6: the displayed image is the stored one rotated 90 degrees clockwise
    expected = np.rot90(img, k=-1).astype(int)
    assert np.abs(arr.astype(int) - expected).mean() < 6


def test_rejections_raise_clear_reasons():
    with pytest.raises(PhotoRejected, match="empty"):
        decode_photo(b"", LIMITS)
    with pytest.raises(PhotoRejected, match="not an image"):
        decode_photo(b"GIF89a but not really", LIMITS)


def test_full_resolution_and_working_size_come_from_one_decode():
    """A photo above work_megapixels: the working image every stage sees is the full-resolution
    image downscaled (the same pixels whichever stage asks), and the full one keeps the size
    the file has (after EXIF rotation); max_megapixels caps the full size."""
    img = smooth_photo(300, 400, seed=4)
    data = _jpeg_bytes(img, quality=95)
    limits = PhotoLimits(max_megapixels=1.0, min_side=8, max_decode_megapixels=1.0, work_megapixels=0.03)
    work, info = decode_photo(data, limits)
    full, info_full = decode_photo(data, limits, full=True)
    assert full.shape == (300, 400, 3) and (info.full_width, info.full_height) == (400, 300)
    assert work.shape[0] * work.shape[1] <= 0.03e6 and work.shape[0] < 300 and info.resized
    from photostyle.core.photo import working_size

    assert np.array_equal(working_size(full, limits), work)
    capped, info_capped = decode_photo(data, PhotoLimits(max_megapixels=0.05, min_side=8, work_megapixels=1.0))
    assert capped.shape[0] * capped.shape[1] <= 0.05e6  # work never above max_megapixels
    assert (info_capped.full_width, info_capped.full_height) == (capped.shape[1], capped.shape[0])
