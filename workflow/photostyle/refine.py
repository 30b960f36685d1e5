"""Refine stage: optional photorealistic smoothing, then domain-transform detail refinement,
of every stylised output of a shard.

Smoothing (``refine.smoothing``, FastPhotoStyle's step, see :mod:`photostyle.smoothing`) runs
first when its mode is not ``none``; the detail transfer (``detail_transfer``) follows:

``refined = DT(stylized; guide=content) + (content - DT(content; guide=content))``: the colour
of the stylisation, the detail of the content photo (seed 000's post-processing). Refined
images are reused when their provenance (sha256 of the stylised image and of the content
photo, refine settings, code version) is current, as in the stylize stage.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch

from .device import start_job
from .domain_transform import detail_layer, detail_transfer
from .io import read_csv_dicts, read_rgb
from .photo import load_photo, sha256_bytes
from .progress import Progress
from .smoothing import smooth
from .stylize import INDEX_COLUMNS, process_item, read_ledger, write_index
from .tensors import to_tensor

log = logging.getLogger(__name__)


def run_refine_shard(shard_table, stylize_index, settings: dict, out_root, index_out, code_version: str) -> list[dict]:
    """Images go to ``out_root/<style>/<method>/<photo>.png``."""
    job = start_job(settings)
    device, limits, chash, dev_desc = job.device, job.limits, job.config_hash, job.device_desc
    rs = settings["refine"]
    photos = {r["id"]: r for r in read_csv_dicts(shard_table) if r["status"] == "ok"}
    entries = sorted(read_csv_dicts(stylize_index), key=lambda e: (e["photo_id"], e["style"]))
    ledger = read_ledger(index_out)
    dt = {"sigma_spatial": rs["sigma_spatial"], "sigma_range": rs["sigma_range"],
          "iterations": rs["iterations"], "variant": rs["variant"]}
    smoothing = rs["smoothing"]
    cache: dict[str, tuple] = {}  # photo id -> (content, its detail layer): computed once per photo
    rows = []
    progress = Progress(len(entries), f"refine {Path(index_out).parent.name}/{Path(index_out).stem}")
    for e in entries:
        row = {**dict.fromkeys(INDEX_COLUMNS, ""), **e, "variant": "refined", "output": "", "cached": "",
               "runtime_s": "", "peak_mem_mb": "", "config_hash": chash, "code_version": code_version,
               "device": dev_desc}
        if e["status"] != "ok" or e["photo_id"] not in photos:
            rows.append(row)  # keeps the stylisation's own status and reason
            progress.step()
            continue
        p = photos[e["photo_id"]]
        stylized_path = Path(e["output"])
        try:
            stylized_bytes = stylized_path.read_bytes()
            stylized_sha = sha256_bytes(stylized_bytes)
        except OSError as exc:
            rows.append({**row, "status": "failed", "error": f"stylised image unreadable: {exc}"})
            progress.step()
            continue
        provenance = {"photo": e["photo_id"], "style": e["style"], "method": e["method"], "variant": "refined",
                      "source_sha256": p["sha256"], "input_sha256": stylized_sha, "config_hash": chash,
                      "code_version": code_version, "weights": e["weights"], "device": dev_desc}

        def compute(p=p, stylized_bytes=stylized_bytes):
            if p["id"] not in cache:
                cache.clear()  # entries are photo-major: keep one photo's buffers at a time
                img, _ = load_photo(p["path"], limits, expect_sha256=p["sha256"])
                content = to_tensor(img, device)
                with torch.no_grad():
                    cache[p["id"]] = (content, detail_layer(content, **dt) if rs["detail_transfer"] else None)
            content, detail = cache[p["id"]]
            with torch.no_grad():
                stylized = to_tensor(read_rgb(io.BytesIO(stylized_bytes)), device)  # from the bytes already read
                if smoothing["mode"] != "none":
                    stylized = smooth(stylized, content, smoothing)
                if not rs["detail_transfer"]:
                    return stylized
                return detail_transfer(stylized, content, detail=detail, **dt)

        out_path = Path(out_root) / e["style"] / e["method"] / f"{e['photo_id']}.png"
        rows.append(process_item(row, out_path, provenance, ledger, compute, device))
        progress.step()
    write_index(index_out, rows)
    return rows
