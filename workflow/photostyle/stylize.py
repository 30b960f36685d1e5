"""Stylise one shard of the collection with one method and one style.

One job loads the style photo and the method's models once, then walks the shard's photos.
A photo that fails (changed file, out of memory, ...) is recorded as failed in the shard
index and the job goes on; outputs and the index are written atomically.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import torch

from .config import config_hash
from .device import describe_device, make_deterministic, seed_everything, select_device
from .io import read_csv_dicts, write_csv_atomic, write_png_atomic
from .methods import get_method
from .photo import PhotoLimits, PhotoRejected, derive_seed, load_photo
from .progress import Progress
from .tensors import to_tensor, to_uint8

log = logging.getLogger(__name__)

INDEX_COLUMNS = (
    "photo_id", "style", "method", "variant", "shard", "status", "output", "error",
    "runtime_s", "peak_mem_mb", "device", "weights", "config_hash", "code_version",
)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def find_style(style_table: str | Path, style_id: str) -> dict | None:
    for row in read_csv_dicts(style_table):
        if row["id"] == style_id:
            return row
    return None


def load_style(style_table, style_id: str, limits: PhotoLimits, device) -> tuple[torch.Tensor | None, str]:
    """The style photo as a tensor, or ``None`` and the reason it is unusable."""
    row = find_style(style_table, style_id)
    if row is None:
        return None, f"style '{style_id}' is not in the style table"
    if row["status"] != "ok":
        return None, f"style photo rejected at ingest: {row['reason']}"
    try:
        img, _ = load_photo(row["path"], limits, expect_sha256=row["sha256"])
    except PhotoRejected as exc:
        return None, f"style photo unusable: {exc}"
    return to_tensor(img, device), ""


def run_stylize_shard(shard_table, style_table, style_id: str, method_name: str, settings: dict,
                      out_dir, index_out, code_version: str) -> list[dict]:
    """``settings`` holds exactly what affects the output: method params, seed, device, ingest limits."""
    make_deterministic()
    method = get_method(method_name)
    device = select_device(settings["device"])
    limits = PhotoLimits.from_settings(settings)
    params = settings["params"]
    chash = config_hash(settings)
    dev_desc = describe_device(device)
    weights_prov = settings.get("weights_provenance") or "none"
    out_dir = Path(out_dir)
    photos = [r for r in read_csv_dicts(shard_table) if r["status"] == "ok"]
    shard = Path(shard_table).stem
    style, style_error = load_style(style_table, style_id, limits, device)
    base = {**dict.fromkeys(INDEX_COLUMNS, ""), "style": style_id, "method": method_name, "variant": "raw", "shard": shard,
            "device": dev_desc, "weights": weights_prov, "config_hash": chash, "code_version": code_version}
    state: dict = {}
    rows = []
    progress = Progress(len(photos), f"stylize {style_id}/{method_name}/{shard}")
    log.info("device %s; method %s; weights %s; %d photos", dev_desc, method_name, weights_prov, len(photos))
    for r in photos:
        row = {**base, "photo_id": r["id"]}
        if style is None:
            rows.append({**row, "status": "skipped", "error": style_error})
            progress.step()
            continue
        out_path = out_dir / f"{r['id']}.png"
        t0 = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            img, _ = load_photo(r["path"], limits, expect_sha256=r["sha256"])
            seed_everything(derive_seed(settings["seed"], r["id"], style_id, method_name))
            with torch.no_grad():
                result = method.fn(to_tensor(img, device), style, masks=None, params=params,
                                   device=device, state=state)
            if result.shape[-2:] != img.shape[:2]:
                raise RuntimeError(f"method returned {tuple(result.shape)} for a {img.shape[:2]} photo")
            write_png_atomic(out_path, to_uint8(result), text={
                "photostyle:photo": r["id"], "photostyle:style": style_id, "photostyle:method": method_name,
                "photostyle:config_hash": chash, "photostyle:code_version": code_version,
                "photostyle:weights": weights_prov, "photostyle:device": dev_desc,
                "photostyle:seed": str(settings["seed"]),
            })
            rows.append({**row, "status": "ok", "output": str(out_path),
                         "runtime_s": f"{time.perf_counter() - t0:.4f}",
                         "peak_mem_mb": f"{peak_memory_mb(device):.1f}"})
        except (PhotoRejected, RuntimeError, ValueError, MemoryError) as exc:
            log.error("photo %s failed: %s", r["id"], exc)
            rows.append({**row, "status": "failed", "error": f"{exc.__class__.__name__}: {exc}"})
            if device.type == "cuda":
                torch.cuda.empty_cache()
        progress.step()
    write_csv_atomic(index_out, INDEX_COLUMNS, rows)
    return rows
