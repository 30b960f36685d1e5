"""Atomic file writes and image files.

Every file the pipeline produces goes through :func:`atomic_path`: it is written to a
temporary name in the destination folder and renamed into place only when complete, so
an interrupted job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, PngImagePlugin


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` on success.

    On any exception the temporary file is removed and ``dest`` is left untouched. The file
    gets the permissions any new file would (0644 under umask 022), not mkstemp's 0600, so the
    rest of a group can read the results on a shared cluster.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{suffix}", dir=dest.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask like any file
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def resolve_repo_path(path: str | os.PathLike) -> Path:
    """``path`` as given (relative to the working directory) if it exists or is absolute, else
    relative to the repository, so shipped files (``config/...``) are found from any run folder."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    repo = Path(__file__).resolve().parents[3] / p
    return repo if repo.exists() else p


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_if_changed(dest: str | os.PathLike, text: str) -> bool:
    """Write ``text`` atomically unless ``dest`` already holds exactly it.

    Leaving an unchanged file alone keeps its modification time, so Snakemake does not
    rerun what depends on it. Returns whether the file was written.
    """
    dest = Path(dest)
    data = text.encode("utf-8")
    try:
        if dest.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_bytes_atomic(dest, data)
    return True


def csv_text(header: Sequence[str], rows: Iterable[Mapping | Sequence]) -> str:
    """Render rows (dicts keyed by ``header`` or sequences) as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        if isinstance(row, Mapping):
            writer.writerow(["" if row.get(k) is None else row.get(k) for k in header])
        else:
            writer.writerow(row)
    return buf.getvalue()


def write_csv_atomic(dest: str | os.PathLike, header: Sequence[str], rows: Iterable) -> None:
    write_text_atomic(dest, csv_text(header, rows))


def read_csv_dicts(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def concat_csv(tables: Sequence[str | os.PathLike], dest: str | os.PathLike) -> int:
    """The rows of ``tables`` (CSV files with a header) in one CSV, in order, with the union of
    their columns (first seen first); written atomically. Returns the number of rows."""
    rows, header = [], {}
    for t in tables:
        part = read_csv_dicts(t)
        rows += part
        header.update(dict.fromkeys(k for r in part for k in r))
    write_csv_atomic(dest, list(header), rows)
    return len(rows)


LARGE_PNG_PIXELS = 4_000_000


def write_png_atomic(
    dest: str | os.PathLike, image: np.ndarray, text: Mapping[str, str] | None = None
) -> None:
    """Write an ``(H, W, 3)`` uint8 image as PNG, with provenance in tEXt chunks.

    PNG encoding is deterministic for equal pixels and equal text, so reruns of the same
    configuration give byte-identical files.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, str(value))
    buf = io.BytesIO()
    # full-resolution images (refine's output of a 12-50 MP photo) take zlib's fastest level:
    # about half the time of level 6, about 10 % larger
    level = 1 if image.shape[0] * image.shape[1] > LARGE_PNG_PIXELS else 6
    Image.fromarray(image, "RGB").save(buf, format="PNG", pnginfo=info, compress_level=level)
    write_bytes_atomic(dest, buf.getvalue())


def read_png_text(path: str | os.PathLike) -> dict[str, str]:
    """Return the tEXt chunks of a PNG written by :func:`write_png_atomic`."""
    with Image.open(path) as im:
        return dict(getattr(im, "text", {}) or {})


def read_rgb(path: str | os.PathLike | io.BytesIO) -> np.ndarray:
    """Read an image the pipeline wrote itself (already 8-bit RGB), from a path or bytes."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
