"""Deliverable files: names, EXIF, ICC and provenance (photostyle.core.deliver)."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import smooth_photo
from photostyle.core import deliver as D

MODEL, DATE, GPS_LAT = 0x0110, 0x9003, 2


def _original(path, orientation=6, icc=None, mode="RGB"):
    ex = Image.Exif()
    ex[MODEL] = "TestCam X1"
    ex[D.ORIENTATION] = orientation
    ex.get_ifd(D.EXIF_IFD)[DATE] = "2024:05:06 07:08:09"
    ex.get_ifd(D.GPS_IFD)[1] = "N"
    ex.get_ifd(D.GPS_IFD)[GPS_LAT] = (47.0, 22.0, 1.5)
    im = Image.fromarray(smooth_photo(30, 40))
    if mode != "RGB":
        im = im.convert(mode)
    kw = {"icc_profile": icc} if icc else {}
    im.save(path, exif=ex.tobytes(), quality=95, **kw)
    return path


@pytest.mark.parametrize("relpath,fmt,expected", [
    ("Reisen/Zürich/IMG_1.JPG", "jpeg", "Reisen/Zürich/IMG_1.JPG"),
    ("a/b.jpeg", "jpeg", "a/b.jpeg"),
    ("scan 01.png", "jpeg", "scan 01.jpg"),
    ("x/y.tif", "png", "x/y.png"),
    ("x/y.jpg", "tiff", "x/y.tif"),
])
def test_deliverable_names_keep_the_tree_and_take_the_format_suffix(relpath, fmt, expected):
    assert D.deliverable_name(relpath, fmt) == expected


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_exif_carried_orientation_reset_provenance_readable(tmp_path, fmt):
    src = _original(tmp_path / "orig.jpg")
    meta = D.source_metadata(src)
    out = tmp_path / f"out.{fmt}"
    prov = {"photostyle:photo": "orig-123", "photostyle:config_hash": "abc"}
    D.write_deliverable(out, smooth_photo(30, 40, seed=1), fmt, meta, prov)
    with Image.open(out) as im:
        ex = im.getexif()
        assert ex[MODEL] == "TestCam X1"
        assert ex[D.ORIENTATION] == 1  # the pixels are upright already
        assert ex.get_ifd(D.EXIF_IFD)[DATE] == "2024:05:06 07:08:09"
        assert ex.get_ifd(D.GPS_IFD)[GPS_LAT] == (47.0, 22.0, 1.5)
        assert im.info.get("icc_profile") == D.srgb_profile()  # no profile in the original: sRGB
    assert D.read_provenance(out) == prov


def test_gps_stripped_on_request(tmp_path):
    src = _original(tmp_path / "orig.jpg")
    D.write_deliverable(tmp_path / "out.jpg", smooth_photo(30, 40), "jpeg", D.source_metadata(src), {}, strip_gps=True)
    with Image.open(tmp_path / "out.jpg") as im:
        ex = im.getexif()
        assert not ex.get_ifd(D.GPS_IFD) and D.GPS_IFD not in ex
        assert ex[MODEL] == "TestCam X1"


def test_icc_profile_kept_or_converted(tmp_path):
    """keep: the original's RGB profile goes with the pixels unchanged; srgb: the pixels are
    converted from it and tagged sRGB. CMYK photos were converted at decode: tagged sRGB."""
    prophoto = linear_rgb_profile()
    src = _original(tmp_path / "orig.jpg", icc=prophoto)
    meta = D.source_metadata(src)
    assert meta.icc == prophoto and not meta.converted
    img = smooth_photo(30, 40, seed=2)
    D.write_deliverable(tmp_path / "keep.png", img, "png", meta, {})
    D.write_deliverable(tmp_path / "srgb.png", img, "png", meta, {}, icc="srgb")
    with Image.open(tmp_path / "keep.png") as im:
        assert im.info["icc_profile"] == prophoto and np.array_equal(np.asarray(im.convert("RGB")), img)
    with Image.open(tmp_path / "srgb.png") as im:
        assert im.info["icc_profile"] == D.srgb_profile()
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - img).max() > 3  # converted
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(img).convert("CMYK").save(cmyk, icc_profile=prophoto)
    assert D.source_metadata(cmyk).converted


def linear_rgb_profile() -> bytes:
    """A linear-light sRGB-primaries profile written by hand: header, tags rXYZ gXYZ bXYZ wtpt,
    and identity tone curves (gamma 1.0)."""
    import struct

    def s15(v):
        return struct.pack(">i", int(round(v * 65536)))

    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    curve = b"curv" + bytes(4) + struct.pack(">I", 1) + struct.pack(">H", 256) + bytes(2)  # gamma 1.0
    desc = b"desc" + bytes(4) + struct.pack(">I", 7) + b"linear\0" + bytes(12) + bytes(67)
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve), (b"cprt", b"text" + bytes(4) + b"none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        while (offset + len(body)) % 4:
            body += b"\0"
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + bytes(12) + b"acsp" \
        + b"APPL" + bytes(4) + bytes(4) + bytes(4) + bytes(8) + bytes(4) + s15(0.9642) + s15(1.0) + s15(0.8249) \
        + b"lcms" + bytes(16) + bytes(28)
    assert len(header) == 128, len(header)
    data = header + struct.pack(">I", len(tags)) + table + body
    ImageCms.ImageCmsProfile(io.BytesIO(data))  # valid for LittleCMS
    return data


def test_deliverables_are_byte_identical_on_rerun(tmp_path):
    src = _original(tmp_path / "orig.jpg")
    img = smooth_photo(30, 40, seed=3)
    for name in ("a.jpg", "b.jpg"):
        D.write_deliverable(tmp_path / name, img, "jpeg", D.source_metadata(src), {"photostyle:x": "1"})
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()


@pytest.mark.parametrize("strip_gps", [False, True])
def test_sixteen_bit_tiff_keeps_every_bit_and_carries_camera_date_gps_profile_provenance(tmp_path, strip_gps):
    """tiff16: the 16-bit pixels come back unchanged; camera and date as TIFF tags; capture date,
    GPS (unless stripped) and provenance in its XMP packet; the original's ICC profile embedded;
    the same bytes on a rerun."""
    import tifffile

    profile = linear_rgb_profile()
    src = _original(tmp_path / "orig.jpg", icc=profile)
    img = (np.random.default_rng(0).random((30, 40, 3)) * 65535).astype(np.uint16)
    prov = {"photostyle:photo": "orig-123", "photostyle:variant": "refined"}
    out = tmp_path / "out.tif"
    D.write_deliverable(out, img, "tiff16", D.source_metadata(src), prov, strip_gps=strip_gps)
    with tifffile.TiffFile(out) as tf:
        page = tf.pages[0]
        assert page.dtype == np.uint16 and np.array_equal(page.asarray(), img)
        tags = {t.code: t.value for t in page.tags.values()}
    assert tags[0x0110] == "TestCam X1" and tags[34675] == profile
    xmp = D.read_xmp(tags[D.XMP_TAG])
    assert xmp["tiff:Model"] == "TestCam X1" and xmp["exif:DateTimeOriginal"] == "2024-05-06T07:08:09"
    assert ("exif:GPSLatitude" in xmp) != strip_gps
    if not strip_gps:
        assert xmp["exif:GPSLatitude"] == "47,22.025000N"
    assert D.read_provenance(out) == prov
    D.write_deliverable(tmp_path / "again.tif", img, "tiff16", D.source_metadata(src), prov, strip_gps=strip_gps)
    assert (tmp_path / "again.tif").read_bytes() == out.read_bytes()
    with pytest.raises(ValueError, match="icc must be keep"):
        D.write_deliverable(out, img, "tiff16", D.source_metadata(src), prov, icc="srgb")
    with pytest.raises(ValueError, match="uint16"):
        D.write_deliverable(out, img.astype(np.uint8), "tiff16", D.source_metadata(src), prov)


def test_sixteen_bit_tiff_settings_read_the_raw_result_and_refuse_an_srgb_conversion():
    """tiff16 deliverables are made from the raw result (refine's images are 8-bit), with the
    method's refine and lift settings in their config hash; icc: srgb is refused before any job."""
    from photostyle.config import validate_config
    from photostyle.stages import export

    cfg = validate_config({"export": {"format": "tiff16"}})
    s = export.settings(cfg, {"reinhard": "refined", "mkl": "raw"})["methods"]
    assert s["reinhard"]["source"] == s["mkl"]["source"] == "raw"
    own_lift = {k: v for k, v in cfg["lift"].items() if k != "per_method"}  # the method's lift settings (method_section)
    assert "refine" in s["reinhard"] and "refine" not in s["mkl"] and s["reinhard"]["lift"] == own_lift
    eight = export.settings(validate_config({}), {"reinhard": "refined"})["methods"]["reinhard"]
    assert eight["source"] == "refined" and "refine" not in eight
    with pytest.raises(ValueError, match="icc must be keep"):
        export.settings(validate_config({"export": {"format": "tiff16", "icc": "srgb"}}), {"reinhard": "refined"})
