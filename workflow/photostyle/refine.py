"""Refine stage: domain-transform detail refinement of every stylised output of a shard.

``refined = DT(stylized; guide=content) + (content - DT(content; guide=content))``: the colour
of the stylisation, the detail of the content photo (seed 000's post-processing).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .config import config_hash
from .device import describe_device, make_deterministic, select_device
from .domain_transform import detail_transfer
from .io import read_csv_dicts, read_rgb, write_csv_atomic, write_png_atomic
from .photo import PhotoLimits, PhotoRejected, load_photo
from .progress import Progress
from .stylize import INDEX_COLUMNS, peak_memory_mb
from .tensors import to_tensor, to_uint8

log = logging.getLogger(__name__)


def refine_settings_for(refine_cfg: dict, method: str) -> dict:
    """The effective refinement settings of one method (global keys + per-method override)."""
    base = {k: v for k, v in refine_cfg.items() if k != "per_method"}
    return {**base, **refine_cfg.get("per_method", {}).get(method, {})}


def run_refine_shard(shard_table, stylize_index, settings: dict, out_dir, index_out, code_version: str) -> list[dict]:
    make_deterministic()
    device = select_device(settings["device"])
    limits = PhotoLimits.from_settings(settings)
    rs = settings["refine"]
    chash = config_hash(settings)
    dev_desc = describe_device(device)
    photos = {r["id"]: r for r in read_csv_dicts(shard_table) if r["status"] == "ok"}
    entries = read_csv_dicts(stylize_index)
    out_dir = Path(out_dir)
    rows = []
    progress = Progress(len(entries), f"refine {out_dir}")
    for e in entries:
        row = {**e, "variant": "refined", "output": "", "error": e.get("error", ""), "runtime_s": "",
               "peak_mem_mb": "", "config_hash": chash, "code_version": code_version, "device": dev_desc}
        if not rs["enabled"]:
            rows.append({**row, "status": "skipped", "error": "refine.enabled is false"})
        elif e["status"] != "ok":
            rows.append(row)  # keep the stylisation's own status and reason
        else:
            t0 = time.perf_counter()
            try:
                p = photos[e["photo_id"]]
                content, _ = load_photo(p["path"], limits, expect_sha256=p["sha256"])
                stylized = read_rgb(e["output"])
                with torch.no_grad():
                    out = detail_transfer(
                        to_tensor(stylized, device), to_tensor(content, device),
                        sigma_spatial=rs["sigma_spatial"], sigma_range=rs["sigma_range"],
                        iterations=rs["iterations"], variant=rs["variant"])
                out_path = out_dir / f"{e['photo_id']}.png"
                write_png_atomic(out_path, to_uint8(out), text={
                    "photostyle:photo": e["photo_id"], "photostyle:style": e["style"],
                    "photostyle:method": e["method"], "photostyle:variant": "refined",
                    "photostyle:config_hash": chash, "photostyle:code_version": code_version,
                    "photostyle:weights": e["weights"], "photostyle:device": dev_desc,
                })
                rows.append({**row, "status": "ok", "output": str(out_path),
                             "runtime_s": f"{time.perf_counter() - t0:.4f}",
                             "peak_mem_mb": f"{peak_memory_mb(device):.1f}"})
            except (KeyError, PhotoRejected, OSError, RuntimeError, ValueError, MemoryError) as exc:
                log.error("refine %s failed: %s", e["photo_id"], exc)
                rows.append({**row, "status": "failed", "error": f"{exc.__class__.__name__}: {exc}"})
        progress.step()
    write_csv_atomic(index_out, INDEX_COLUMNS, rows)
    return rows
