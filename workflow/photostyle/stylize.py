"""Stylise one shard of the collection with one method, for every style.

One job per method x shard: the DAG stays the same size however many styles there are, the
method's models are loaded once per job, and each style's statistics once per style.

Outputs are reused when valid: every image carries its provenance in PNG text chunks
(sha256 of the content photo and of the style photo, config hash, code version). A job
that finds an image whose provenance matches what it would write keeps it instead of
recomputing it. So adding a style computes only that style, and a job killed halfway
(preempted, out of memory) resumes where it stopped. To force recomputation, run with the
environment variable ``PHOTOSTYLE_RECOMPUTE=1`` (e.g. ``PHOTOSTYLE_RECOMPUTE=1 snakemake
--forcerun stylize``).

A photo that fails (changed file, out of memory, ...) is recorded as failed in the shard
index and the job goes on; images and the index are written atomically.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .device import seed_everything, start_job
from .ingest import read_styles
from .io import read_csv_dicts, read_png_text, write_csv_atomic, write_png_atomic
from .methods import get_method
from .photo import PhotoRejected, derive_seed, load_photo
from .progress import Progress
from .regions import RegionSource
from .tensors import to_tensor, to_uint8

log = logging.getLogger(__name__)

INDEX_COLUMNS = (
    "photo_id", "style", "method", "variant", "shard", "status", "cached", "output", "error", "regions",
    "runtime_s", "peak_mem_mb", "device", "weights", "config_hash", "code_version",
)
_PROV = "photostyle:"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def is_current(path: Path, expected: dict[str, str]) -> bool:
    """Whether ``path`` exists and its provenance chunks equal ``expected`` (pixels are not read)."""
    if os.environ.get("PHOTOSTYLE_RECOMPUTE", "") not in ("", "0") or not path.exists():
        return False
    try:
        text = read_png_text(path)
    except (OSError, SyntaxError, ValueError):
        return False
    return all(text.get(_PROV + k) == v for k, v in expected.items())


def trace_path(image_path: Path) -> Path:
    """Where a method's per-output trace (e.g. loss per iteration) lives: beside the image."""
    return image_path.with_suffix(".trace.csv")


def write_trace(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_csv_atomic(path, columns, rows)


def ledger_path(index_out) -> Path:
    """Where a job keeps a copy of its last index (not a Snakemake output, so it survives the
    deletion of outputs before a rerun); reused images take their runtimes from it."""
    index_out = Path(index_out)
    return index_out.parent.parent.parent / "_ledger" / index_out.parent.name / index_out.name


def read_ledger(index_out) -> dict[tuple[str, str], dict]:
    path = ledger_path(index_out)
    if not path.exists():
        return {}
    return {(r["photo_id"], r["style"]): r for r in read_csv_dicts(path) if r.get("status") == "ok"}


def write_index(index_out, rows: list[dict]) -> None:
    write_csv_atomic(ledger_path(index_out), INDEX_COLUMNS, rows)
    write_csv_atomic(index_out, INDEX_COLUMNS, rows)


def process_item(row: dict, out_path: Path, provenance: dict[str, str], ledger: dict,
                 compute: Callable[[], "torch.Tensor"], device: torch.device) -> dict:
    """Reuse ``out_path`` if its provenance is current, else compute and write it; never raise."""
    if is_current(out_path, provenance):
        old = ledger.get((row["photo_id"], row["style"]), {})
        return {**row, "status": "ok", "cached": 1, "output": str(out_path),
                "runtime_s": old.get("runtime_s", ""), "peak_mem_mb": old.get("peak_mem_mb", "")}
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        result = compute()
        write_png_atomic(out_path, to_uint8(result), text={_PROV + k: v for k, v in provenance.items()})
        return {**row, "status": "ok", "cached": 0, "output": str(out_path),
                "runtime_s": f"{time.perf_counter() - t0:.4f}", "peak_mem_mb": f"{peak_memory_mb(device):.1f}"}
    except (PhotoRejected, RuntimeError, ValueError, OSError, MemoryError) as exc:
        log.error("%s / %s failed: %s", row["photo_id"], row["style"], exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {**row, "status": "failed", "error": f"{exc.__class__.__name__}: {exc}"}


def method_batch_size(method, params: dict, device: torch.device) -> int:
    """Photos per batch of a batching method: ``params["batch_photos"]``; 0 = automatic, 8 on
    CUDA and 1 on CPU (where batching measured slower: benchmarks/fast_net.py)."""
    if not method.batches:
        return 1
    n = int(params.get("batch_photos", 0))
    return n if n > 0 else (8 if device.type == "cuda" else 1)


def decoder_files(root, levels: list[int]) -> tuple[dict[int, Path], str]:
    """Decoder files per level under ``root`` (``<root>/relu<k>_1/model.pt``) and their provenance."""
    from .weights import sha256_file

    paths = {lv: Path(root) / f"relu{lv}_1" / "model.pt" for lv in levels}
    parts = [f"relu{lv}_1=sha256:{sha256_file(p)}" for lv, p in paths.items()]
    return paths, f"decoders {Path(root).name} " + ", ".join(parts)


def run_stylize_shard(shard_table, style_tables, method_name: str, settings: dict, out_root,
                      index_out, code_version: str, segment_indexes: list[str] | None = None) -> list[dict]:
    """``settings`` holds exactly what affects the output: method params, seed, device, limits,
    and the matching settings when segmentation is on (``segment_indexes`` then lists the
    segment stage's indexes of this shard and of the styles).

    Images go to ``out_root/<style>/<method>/<photo>.png``.
    """
    job = start_job(settings)
    device, limits, chash, dev_desc = job.device, job.limits, job.config_hash, job.device_desc
    method = get_method(method_name)
    fn = method.fn
    params = settings["params"]
    # Pretrained weights a method declares are resolved once per job, before any photo, so
    # their provenance is part of every output's reuse key; the method finds them in
    # state["job"]["weights"] (name -> photostyle.weights.Resolved).
    resolved = {}
    if method.weights:
        from .weights import resolve

        w = settings["weights"]
        resolved = {name: resolve(name, w["mode"], w["dir"], settings["seed"], w["download"]) for name in method.weights}
    weights_prov = "; ".join(f"{name}={r.provenance}" for name, r in resolved.items()) or "none"
    job_state: dict = {"weights": resolved, "seed": settings["seed"]}  # models shared by all styles of this job
    if settings.get("decoders_root"):  # trained decoders (universal methods): digests into the provenance
        job_state["decoder_paths"], decoders_prov = decoder_files(settings["decoders_root"], method.decoder_levels(params))
        weights_prov += "; " + decoders_prov
    photos = [r for r in read_csv_dicts(shard_table) if r["status"] == "ok"]
    styles = read_styles(style_tables)
    shard = Path(shard_table).stem
    ledger = read_ledger(index_out)
    seg = settings.get("segmentation")
    regions = RegionSource(seg, segment_indexes or []) if seg and seg.get("enabled") else None
    style_state = {s["id"]: {"job": job_state} for s in styles}  # per style: its statistics
    models_root = settings.get("models_root")
    style_weights: dict[str, str] = {}  # per-style trained model (fast method): digest + loss network

    def style_weights_of(sid: str) -> str:
        if not models_root:
            return weights_prov
        if sid not in style_weights:
            from .fastnet import model_provenance

            path = Path(models_root) / sid / "model.pt"
            style_state[sid]["model_path"] = path
            style_weights[sid] = model_provenance(path)
        return style_weights[sid]

    style_tensor: dict[str, torch.Tensor] = {}  # loaded on first use: a cached style costs nothing
    base = {**dict.fromkeys(INDEX_COLUMNS, ""), "method": method_name, "variant": "raw", "shard": shard,
            "device": dev_desc, "weights": weights_prov, "config_hash": chash, "code_version": code_version}
    rows = []
    progress = Progress(len(photos) * len(styles), f"stylize {method_name}/{shard}")
    log.info("device %s; method %s; weights %s; %d photos x %d styles",
             dev_desc, method_name, weights_prov, len(photos), len(styles))
    style_arrays: dict[str, np.ndarray] = {}

    def style_array(srow):
        if srow["id"] not in style_arrays:
            style_arrays[srow["id"]] = load_photo(srow["path"], limits, expect_sha256=srow["sha256"])[0]
        return style_arrays[srow["id"]]

    def out_path_of(pid: str, sid: str) -> Path:
        return Path(out_root) / sid / method_name / f"{pid}.png"

    def provenance_of(r, srow, labels_digest: str) -> dict[str, str]:
        return {"photo": r["id"], "style": srow["id"], "method": method_name,
                "source_sha256": r["sha256"], "style_sha256": srow["sha256"],
                "labels_sha256": labels_digest, "config_hash": chash, "code_version": code_version,
                "weights": style_weights_of(srow["id"]), "device": dev_desc, "seed": str(settings["seed"])}

    def style_input(srow) -> torch.Tensor:
        if srow["id"] not in style_tensor:
            style_tensor[srow["id"]] = to_tensor(style_array(srow), device)
        return style_tensor[srow["id"]]

    # Photos go in chunks of `batch` (1 unless the method batches: fast), each chunk style by
    # style: a photo is decoded once per chunk, and for a batching method the chunk's photos
    # that share a size go through the style's network together (precompute), their results
    # waiting in `ready` for the per-item code below, which writes them and computes singly
    # whatever a batch could not do. With batch 1 this is photo-major, styles inner.
    batch = method_batch_size(method, params, device)
    ready: dict[tuple[str, str], tuple[torch.Tensor, float]] = {}
    decoded: dict[str, np.ndarray] = {}  # the current chunk's photos

    def content_array(r) -> np.ndarray:
        if r["id"] not in decoded:
            decoded[r["id"]] = load_photo(r["path"], limits, expect_sha256=r["sha256"])[0]
        return decoded[r["id"]]

    def precompute(chunk, srow) -> None:
        todo = [r for r in chunk if not is_current(out_path_of(r["id"], srow["id"]), provenance_of(r, srow, "none"))]
        groups: dict[tuple, list] = {}
        for r in todo:
            try:
                groups.setdefault(content_array(r).shape, []).append(r)
            except (PhotoRejected, OSError, ValueError):
                continue  # the per-item code records the failure
        for group in (g for g in groups.values() if len(g) > 1):
            try:
                x = torch.cat([to_tensor(content_array(r), device) for r in group])
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = fn(x, style_input(srow), masks=None, params=params, device=device,
                             state=style_state[srow["id"]])
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                share = (time.perf_counter() - t0) / len(group)
            except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. out of memory: one at a time
                log.warning("batch of %d photos failed (%s); computing them one by one", len(group), exc)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            for i, r in enumerate(group):
                ready[(r["id"], srow["id"])] = (out[i:i + 1], share)

    for start in range(0, len(photos), batch):
        chunk = photos[start:start + batch]
        decoded.clear()
        for srow in styles:
            if batch > 1 and srow["status"] == "ok":
                precompute(chunk, srow)
            for r in chunk:
                sid = srow["id"]
                row = {**base, "photo_id": r["id"], "style": sid}
                if srow["status"] != "ok":
                    rows.append({**row, "status": "skipped", "error": f"style photo rejected at ingest: {srow['reason']}"})
                    progress.step()
                    continue
                try:
                    labels_digest = regions.digest(r["id"], sid) if regions is not None else "none"
                except OSError as exc:
                    rows.append({**row, "status": "failed", "error": f"label map unreadable: {exc}"})
                    progress.step()
                    continue
                summary: list[str] = []
                provenance = provenance_of(r, srow, labels_digest)
                row["weights"] = provenance["weights"]
                batched: list[float] = []  # the item's share of its batch's time, when it came from one

                def compute(r=r, srow=srow, sid=sid, summary=summary, batched=batched):
                    if (r["id"], sid) in ready:
                        out, share = ready.pop((r["id"], sid))
                        batched.append(share)
                        return out
                    x = to_tensor(content_array(r), device)
                    style_input(srow)
                    masks = None
                    if regions is not None:
                        masks = regions.masks(r["id"], sid, content_array(r), style_array(srow), device)
                        summary.append(masks.summary if masks is not None else (regions.usable(r["id"], sid) or "whole"))
                    seed_everything(derive_seed(settings["seed"], r["id"], sid, method_name))
                    with torch.no_grad():
                        out = fn(x, style_tensor[sid], masks=masks, params=params, device=device, state=style_state[sid])
                    if out.shape != x.shape:
                        raise RuntimeError(f"method returned {tuple(out.shape)} for a {tuple(x.shape)} photo")
                    trace = style_state[sid].pop("trace", None)
                    if trace:  # written before the image: an image never lacks its trace
                        write_trace(trace_path(out_path), trace)
                    return out

                out_path = out_path_of(r["id"], sid)
                done = process_item(row, out_path, provenance, ledger, compute, device)
                if batched and done.get("cached") == 0:  # its share of the batch, not the write alone
                    done["runtime_s"] = f"{batched[0] + float(done['runtime_s']):.4f}"
                if not method.uses_regions:
                    done["regions"] = "global (method does not use regions)"
                elif regions is None:
                    done["regions"] = "global (segmentation off)"
                elif summary:
                    done["regions"] = summary[0]
                else:  # reused: the matching it was made with
                    done["regions"] = ledger.get((r["id"], sid), {}).get("regions", "")
                rows.append(done)
                progress.step()
    n_cached = sum(r.get("cached") == 1 for r in rows)
    log.info("done: %d computed, %d reused, %d failed, %d skipped",
             sum(r.get("cached") == 0 for r in rows), n_cached,
             sum(r["status"] == "failed" for r in rows), sum(r["status"] == "skipped" for r in rows))
    write_index(index_out, rows)
    return rows
