"""Decoding and normalising input photos.

:func:`load_photo` turns whatever a user drops into a collection into an 8-bit sRGB
``(H, W, 3)`` array, or raises :class:`PhotoRejected` with a reason a person can act on.
Ingest uses it to validate; later stages use it again to read the same photo the same way
(no normalised copy of a 100k-photo collection is kept).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError


class PhotoRejected(Exception):
    """A file that cannot be used as a photo; ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class PhotoLimits:
    max_megapixels: float = 100.0  # the full-resolution size: larger photos are downscaled to this
    min_side: int = 16  # smaller photos are rejected
    max_decode_megapixels: float = 250.0  # larger declared sizes are decompression bombs
    work_megapixels: float | None = None  # what methods see (None: max_megapixels); never above it

    @classmethod
    def from_settings(cls, settings: dict) -> "PhotoLimits":
        """From a stage's settings object (its ``ingest`` sub-tree)."""
        ing = settings["ingest"]
        return cls(ing["max_megapixels"], ing["min_side"], ing["max_decode_megapixels"], ing.get("work_megapixels"))

    @property
    def work_cap(self) -> float:
        """Pixels of the working size."""
        work = self.max_megapixels if self.work_megapixels is None else min(self.work_megapixels, self.max_megapixels)
        return work * 1e6


@dataclass(frozen=True)
class PhotoInfo:
    width: int
    height: int
    orig_width: int  # as the file is, after EXIF rotation
    orig_height: int
    full_width: int  # the full-resolution size (the original's, up to ingest.max_megapixels)
    full_height: int
    mode: str
    format: str
    exif_rotated: bool
    resized: bool
    sha256: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def derive_seed(seed: int, *parts: str) -> int:
    """A per-item seed that does not depend on which other items share the job."""
    digest = hashlib.sha256("/".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _composite_on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, scaling high bit depths instead of clipping."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        return _composite_on_white(im)
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                dst = ImageCms.createProfile("sRGB")
                return ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass  # a broken profile: fall back to the naive conversion below
        return im.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im).astype(np.float64)
        peak = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        gray = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(im).astype(np.float64)
        scale = 255.0 if np.nanmax(arr, initial=0) <= 1.0 else 1.0
        gray = np.clip(np.round(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return im.convert("RGB")


def _cap(im: Image.Image, pixels: float) -> Image.Image:
    """``im`` downscaled (Lanczos) to at most ``pixels``, aspect kept; as is when it fits."""
    w, h = im.size
    if w * h <= pixels:
        return im
    scale = (pixels / (w * h)) ** 0.5
    return im.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.LANCZOS, reducing_gap=3.0)


def working_size(full: np.ndarray, limits: PhotoLimits) -> np.ndarray:
    """The working-size image of a full-resolution one: the pixels every method sees."""
    h, w = full.shape[:2]
    if w * h <= limits.work_cap:
        return full
    return np.ascontiguousarray(np.asarray(_cap(Image.fromarray(full), limits.work_cap), dtype=np.uint8))


def decode_photo(data: bytes, limits: PhotoLimits = PhotoLimits(), full: bool = False) -> tuple[np.ndarray, PhotoInfo]:
    """Decode image bytes into an 8-bit RGB array, applying EXIF orientation; at the working
    size (``limits.work_cap``), or with ``full`` at the full-resolution size
    (``max_megapixels``). The working image is always derived from the full one
    (:func:`working_size`), so every stage sees the same working pixels."""
    if len(data) == 0:
        raise PhotoRejected("empty file (0 bytes)")
    max_pixels = int(limits.max_decode_megapixels * 1e6)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w0, h0 = im.size
            if w0 * h0 > max_pixels:
                raise PhotoRejected(
                    f"decompression bomb: declared size {w0}x{h0} exceeds "
                    f"ingest.max_decode_megapixels={limits.max_decode_megapixels:g}"
                )
            fmt = im.format or "unknown"
            im.seek(0)
            im.load()
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRejected(f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise PhotoRejected("not an image (Pillow cannot identify the format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PhotoRejected(f"corrupt or truncated image: {exc}") from None

    mode = im.mode
    rotated = _orientation(im) not in (None, 1)
    try:
        oriented = ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF must not sink an otherwise good photo
        oriented, rotated = im, False
    w, h = oriented.size  # size after EXIF rotation, before the megapixel cap
    if min(w, h) < limits.min_side:
        raise PhotoRejected(f"too small: {w}x{h} (ingest.min_side={limits.min_side} px)")
    try:
        rgb = _to_rgb(oriented)
    except (OSError, ValueError) as exc:
        raise PhotoRejected(f"cannot convert mode {mode} to RGB: {exc}") from None
    full_arr = np.ascontiguousarray(np.asarray(_cap(rgb, limits.max_megapixels * 1e6), dtype=np.uint8))
    arr = full_arr if full else working_size(full_arr, limits)
    info = PhotoInfo(
        width=arr.shape[1],
        height=arr.shape[0],
        orig_width=w,
        orig_height=h,
        full_width=full_arr.shape[1],
        full_height=full_arr.shape[0],
        mode=mode,
        format=fmt,
        exif_rotated=bool(rotated),
        resized=arr.shape[:2] != (h, w),
        sha256=sha256_bytes(data),
    )
    return arr, info


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:
        return None


def load_photo(path: str | Path, limits: PhotoLimits = PhotoLimits(), expect_sha256: str | None = None,
               full: bool = False):
    """Read and decode a photo file (working size; with ``full`` the full-resolution size);
    optionally check it is the file ingest saw."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PhotoRejected(f"unreadable: {exc.strerror or exc}") from None
    arr, info = decode_photo(data, limits, full)
    if expect_sha256 is not None and info.sha256 != expect_sha256:
        raise PhotoRejected("file changed since ingest (sha256 differs); rerun the workflow")
    return arr, info
