"""Deliverable files: a result written in the user's format with the original photo's metadata.

* **Name**: the photo's path under ``content_dir`` with the format's suffix (the original
  suffix kept when it already is one of the format's, e.g. ``IMG_1.JPG`` stays ``IMG_1.JPG``).
* **EXIF** of the original is carried over (capture date, camera, lens, GPS unless
  ``strip_gps``), with the orientation tag reset to 1 since the pixels are upright.
* **ICC**: ``keep`` embeds the original's RGB profile (the pixels never left its space: the
  pipeline works on the file's RGB values); photos converted at decode (CMYK with a profile)
  and photos without a profile get sRGB. ``srgb`` converts an RGB profile's pixels to sRGB.
* **Provenance** goes in the EXIF UserComment as JSON (and in PNG text chunks for PNG), so
  reuse and audit work the same on every format (:func:`read_provenance`).
* **16-bit TIFF** (``tiff16``, written by tifffile: Pillow writes no 48-bit RGB): the pixels
  are the pipeline's floating-point result at 16 bits; the camera (Make, Model) and the date
  are TIFF tags, and the capture date, GPS (unless ``strip_gps``) and the provenance go in an
  XMP packet (tifffile writes no EXIF sub-IFDs); the ICC profile is embedded (``keep`` only).

JPEG encoding is deterministic for equal pixels and metadata, so reruns give equal bytes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, ImageCms, PngImagePlugin

from photostyle.core.io import read_png_text, write_bytes_atomic

FORMATS = {"jpeg": (".jpg", (".jpg", ".jpeg")), "png": (".png", (".png",)), "tiff": (".tif", (".tif", ".tiff")),
           "tiff16": (".tif", (".tif", ".tiff"))}
XMP_TAG, MAKE, MODEL, DATETIME, DATETIME_ORIGINAL = 700, 0x010F, 0x0110, 0x0132, 0x9003
_NS = {"x": "adobe:ns:meta/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "tiff": "http://ns.adobe.com/tiff/1.0/",
       "exif": "http://ns.adobe.com/exif/1.0/", "photostyle": "https://github.com/photostyle/ns/1.0/"}
ORIENTATION, EXIF_IFD, GPS_IFD, USER_COMMENT = 0x0112, 0x8769, 0x8825, 0x9286
_ASCII = b"ASCII\0\0\0"  # the UserComment character-code prefix (EXIF 2.3, 4.6.5)


def deliverable_name(relpath: str, fmt: str) -> str:
    """The deliverable's path relative to its style/method folder (POSIX separators)."""
    default, accepted = FORMATS[fmt]
    p = PurePosixPath(relpath)
    return str(p) if p.suffix.lower() in accepted else str(p.with_suffix(default))


@lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """An sRGB ICC profile with its creation date zeroed (LittleCMS stamps the current time,
    which would make reruns differ by bytes)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = bytes(12)  # dateTimeNumber
    data[84:100] = bytes(16)  # profile ID (an MD5 over the header, date included): "not computed"
    return bytes(data)


@dataclass
class SourceMeta:
    exif: Image.Exif
    icc: bytes | None  # the original's profile, where its pixels are RGB in that profile
    converted: bool  # decoded through a colour conversion (CMYK...): pixels are sRGB


def source_metadata(path) -> SourceMeta:
    """EXIF and colour profile of the original photo (headers only; pixels are not decoded)."""
    with Image.open(path) as im:
        exif = im.getexif()
        icc = im.info.get("icc_profile") or None
        rgb = im.mode in ("RGB", "RGBA", "RGBX", "P", "L", "LA", "I;16", "I", "F")
    return SourceMeta(exif, icc if rgb else None, converted=not rgb and icc is not None)


def _exif_bytes(exif: Image.Exif, strip_gps: bool, provenance: dict[str, str]) -> bytes:
    out = Image.Exif()
    for tag, value in exif.items():
        if tag not in (EXIF_IFD, GPS_IFD, 0xA005):  # sub-IFD pointers are rebuilt below
            out[tag] = value
    if ORIENTATION in out or exif:
        out[ORIENTATION] = 1  # the pixels are upright: a reader must not rotate them again
    sub = dict(exif.get_ifd(EXIF_IFD))
    sub.pop(0xA005, None)  # interoperability pointer: not carried
    sub[USER_COMMENT] = _ASCII + json.dumps(provenance, sort_keys=True, ensure_ascii=True).encode("ascii")
    out.get_ifd(EXIF_IFD).update(sub)
    if not strip_gps:
        gps = exif.get_ifd(GPS_IFD)
        if gps:
            out.get_ifd(GPS_IFD).update(gps)
    return out.tobytes()


def _xmp_gps(value, ref) -> str | None:
    """An EXIF GPS coordinate (degrees, minutes, seconds) as XMP's ``DDD,MM.mmmmmmR``."""
    try:
        d, m, sec = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return f"{int(d)},{m + sec / 60 + (d - int(d)) * 60:.6f}{ref or ''}"


def _xmp(meta: SourceMeta, strip_gps: bool, provenance: dict[str, str]) -> bytes:
    """An XMP packet with the camera, capture date, GPS (unless ``strip_gps``) and provenance."""
    from xml.sax.saxutils import quoteattr

    exif = meta.exif
    sub = exif.get_ifd(EXIF_IFD)
    attrs = {"tiff:Make": exif.get(MAKE), "tiff:Model": exif.get(MODEL), "tiff:Orientation": "1"}
    date = sub.get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if isinstance(date, str) and len(date) >= 19:  # "YYYY:MM:DD HH:MM:SS" -> ISO 8601
        attrs["exif:DateTimeOriginal"] = date[:10].replace(":", "-") + "T" + date[11:19]
    gps = {} if strip_gps else exif.get_ifd(GPS_IFD)
    if gps:
        attrs["exif:GPSLatitude"] = _xmp_gps(gps.get(2), gps.get(1))
        attrs["exif:GPSLongitude"] = _xmp_gps(gps.get(4), gps.get(3))
        if gps.get(6) is not None:
            attrs["exif:GPSAltitude"] = f"{float(gps[6]):.3f}"
    attrs["photostyle:provenance"] = json.dumps(provenance, sort_keys=True, ensure_ascii=True)
    body = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items() if v is not None)
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in _NS.items() if k not in ("x", "rdf"))
    return (f'<x:xmpmeta xmlns:x="{_NS["x"]}"><rdf:RDF xmlns:rdf="{_NS["rdf"]}">'
            f'<rdf:Description rdf:about="" {ns} {body}/></rdf:RDF></x:xmpmeta>').encode("utf-8")


def read_xmp(data: bytes) -> dict[str, str]:
    """The attributes of an XMP packet's description, as ``prefix:name`` -> value (our own packets)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return {}
    prefix = {v: k for k, v in _NS.items()}
    out = {}
    for desc in root.iter(f"{{{_NS['rdf']}}}Description"):
        for key, value in desc.attrib.items():
            uri, _, name = key[1:].partition("}")
            if uri in prefix:
                out[f"{prefix[uri]}:{name}"] = value
    return out


def _write_tiff16(image: np.ndarray, meta: SourceMeta, provenance: dict[str, str], strip_gps: bool,
                  profile: bytes) -> bytes:
    import tifffile

    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"tiff16: expected (H, W, 3) uint16, got {image.shape} {image.dtype}")
    exif = meta.exif
    tags = [(code, "s", 0, str(exif[code]), True) for code in (MAKE, MODEL, DATETIME) if isinstance(exif.get(code), str)]
    xmp = _xmp(meta, strip_gps, provenance)
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, photometric="rgb", compression="zlib", iccprofile=profile, software="photostyle",
                     metadata=None, extratags=tags + [(XMP_TAG, "B", len(xmp), xmp, True)])
    return buf.getvalue()


def write_deliverable(dest, image: np.ndarray, fmt: str, meta: SourceMeta, provenance: dict[str, str], *,
                      quality: int = 95, strip_gps: bool = False, icc: str = "keep") -> None:
    """Write ``image`` ((H, W, 3) uint8; uint16 for ``tiff16``) to ``dest`` atomically, with the
    original's metadata."""
    if fmt == "tiff16":
        if icc != "keep":
            raise ValueError("export.format tiff16: export.icc must be keep")
        profile = meta.icc if meta.icc is not None and not meta.converted else srgb_profile()
        write_bytes_atomic(dest, _write_tiff16(image, meta, provenance, strip_gps, profile))
        return
    im = Image.fromarray(image, "RGB")
    profile = srgb_profile()
    if meta.icc is not None and not meta.converted:
        if icc == "keep":
            profile = meta.icc
        else:  # srgb: the pixels are in the original's profile; convert them
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc))
                im = ImageCms.profileToProfile(im, src, ImageCms.ImageCmsProfile(io.BytesIO(profile)), outputMode="RGB")
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass  # an unreadable profile: the values are taken as sRGB, as at decode
    exif = _exif_bytes(meta.exif, strip_gps, provenance)
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, format="JPEG", quality=quality, exif=exif, icc_profile=profile, optimize=False, subsampling=0)
    elif fmt == "png":
        info = PngImagePlugin.PngInfo()
        for k, v in provenance.items():
            info.add_text(k, str(v))
        im.save(buf, format="PNG", exif=exif, icc_profile=profile, pnginfo=info, compress_level=6)
    elif fmt == "tiff":
        im.save(buf, format="TIFF", exif=exif, icc_profile=profile)  # libtiff compression drops the EXIF IFD
    else:
        raise ValueError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    write_bytes_atomic(dest, buf.getvalue())  # makes the folder


def read_provenance(path) -> dict[str, str]:
    """The provenance a file carries: PNG text chunks, else the EXIF UserComment's JSON, else
    (16-bit TIFF) the XMP packet's."""
    text = read_png_text(path)
    if text:
        return text
    with Image.open(path) as im:
        comment = im.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
        xmp = im.tag_v2.get(XMP_TAG) if hasattr(im, "tag_v2") else None
    if not comment and xmp:  # a 16-bit TIFF: the provenance is in its XMP packet
        comment = _ASCII + read_xmp(bytes(xmp)).get("photostyle:provenance", "").encode("ascii", "replace")
    if isinstance(comment, str):
        comment = comment.encode("latin-1", "replace")
    if not comment or not comment.startswith(_ASCII):
        return {}
    try:
        value = json.loads(comment[len(_ASCII):].rstrip(b"\0").decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
