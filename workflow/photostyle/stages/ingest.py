"""Ingest: validate every listed file; each one ends up accepted or rejected, with a reason."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from photostyle.core.collection import not_a_photo_file, photo_id, read_listing
from photostyle.core.io import read_csv_dicts, write_csv_atomic
from photostyle.core.photo import PhotoLimits, PhotoRejected, load_photo
from photostyle.core.progress import Progress

log = logging.getLogger(__name__)

SHARD_COLUMNS = (
    "id", "kind", "shard", "status", "reason", "path", "relpath", "sha256",
    "width", "height", "orig_width", "orig_height", "full_width", "full_height", "mode", "format", "exif_rotated",
    "resized", "decode_s",
)
MANIFEST_COLUMNS = (
    "id", "kind", "shard", "path", "relpath", "sha256", "width", "height",
    "orig_width", "orig_height", "full_width", "full_height", "mode", "format", "exif_rotated", "resized",
)
REJECTED_COLUMNS = ("kind", "path", "relpath", "reason", "shard")


def ingest_entry(root: Path, relpath: str, kind: str, shard: str, limits: PhotoLimits) -> dict:
    path = root / relpath
    pid = shard if kind == "style" else photo_id(relpath)  # a style's listing is named by its id (style_ids)
    row = {"id": pid, "kind": kind, "shard": shard, "path": str(path), "relpath": relpath}
    why = not_a_photo_file(path)
    if why is not None:  # checked before any open: a FIFO would block, a link could leave the root
        return {**row, "status": "rejected", "reason": why}
    t0 = time.perf_counter()
    try:
        _, info = load_photo(path, limits)
    except PhotoRejected as exc:
        return {**row, "status": "rejected", "reason": str(exc)}
    except MemoryError:
        return {**row, "status": "rejected", "reason": "out of memory while decoding"}
    return {
        **row, "status": "ok", "reason": "", "sha256": info.sha256, "decode_s": f"{time.perf_counter() - t0:.4f}",
        "width": info.width, "height": info.height,
        "orig_width": info.orig_width, "orig_height": info.orig_height,
        "full_width": info.full_width, "full_height": info.full_height,
        "mode": info.mode, "format": info.format,
        "exif_rotated": int(info.exif_rotated), "resized": int(info.resized),
    }


def ingest_listing(listing, root, kind: str, shard: str, limits: PhotoLimits, out) -> list[dict]:
    """Validate every file of a shard listing and write the shard's ingest table."""
    root = Path(root)
    entries = read_listing(listing)
    progress = Progress(len(entries), f"ingest {kind}/{shard}")
    rows = []
    for e in entries:
        rows.append(ingest_entry(root, e.relpath, kind, shard, limits))
        progress.step()
    write_csv_atomic(out, SHARD_COLUMNS, rows)
    n_bad = sum(r["status"] != "ok" for r in rows)
    log.info("ingest %s/%s: %d accepted, %d rejected", kind, shard, len(rows) - n_bad, n_bad)
    return rows


def collect_manifest(shard_tables, manifest_out, rejected_out) -> tuple[int, int]:
    """Concatenate per-shard ingest tables into the manifest and the rejected list."""
    ok, bad, seen = [], [], {}
    for table in sorted(shard_tables):
        for r in read_csv_dicts(table):
            if r["status"] != "ok":
                bad.append(r)
                continue
            key = (r["kind"], r["id"])
            if key in seen:  # astronomically rare (48-bit hash); never silently drop
                bad.append({**r, "reason": f"photo id collides with {seen[key]}"})
                continue
            seen[key] = r["path"]
            ok.append(r)
    write_csv_atomic(manifest_out, MANIFEST_COLUMNS, ok)
    write_csv_atomic(rejected_out, REJECTED_COLUMNS, bad)
    return len(ok), len(bad)


def settings(config: dict) -> dict:
    """Ingest depends on the whole ``ingest`` section (shard size included: it decides the listings)."""
    return {"ingest": config["ingest"]}
