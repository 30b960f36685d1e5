"""Refine stage: what follows a method's result, through the shard-job engine, for every
stylised output of a shard, every method with refinement on (one job per shard: a 100k-photo
DAG stays small, and each photo is read and prepared once for all its methods):

1. optional photorealistic smoothing (``refine.smoothing``, FastPhotoStyle's step,
   :mod:`photostyle.ops.smoothing`) at the working size (``smoothing.at: work``, default);
2. the lift to the full-resolution photo (``lift``, :mod:`photostyle.ops.lift`), region-aware
   with the content's label map; photos at their working size already are not lifted;
3. smoothing here instead when ``smoothing.at: full``;
4. domain-transform detail refinement at full resolution (``detail_transfer``):
   ``refined = DT(lifted; guide=content) + (content - DT(content; guide=content))``: the colour
   of the stylisation, the detail of the content photo (seed 000's post-processing).

A refined image is reused when its provenance (sha256 of the stylised image, of the content
photo and of its label map, the hash of its method's refine and lift settings, code version) is
current: changing one method's ``refine.per_method`` settings reruns the shard jobs, which
recompute that method's images and reuse the others'.
"""

from __future__ import annotations

import io
from pathlib import Path

from photostyle.core.io import read_csv_dicts, write_png_atomic
from photostyle.stages.common import INDEX_COLUMNS, ITEM_KEY_PER_METHOD, job_settings, method_section, per_method_job, photo_major
from photostyle.stages.engine import Item, ShardJob, provenance_text


def settings_for(refine_cfg: dict, method: str) -> dict:
    """The effective refinement settings of one method (global keys + per-method override)."""
    merged = method_section(refine_cfg, method)
    override = refine_cfg.get("per_method", {}).get(method, {})
    if "smoothing" in override:  # a partial smoothing override keeps the global keys it leaves out
        merged["smoothing"] = {**refine_cfg.get("smoothing", {}), **override["smoothing"]}
    return merged


def method_settings(config: dict, method: str) -> dict:
    """What one method's refined images depend on (their provenance's config hash)."""
    return {"refine": settings_for(config["refine"], method), "lift": method_section(config["lift"], method),
            **job_settings(config, seed=False)}


def settings(config: dict, methods) -> dict:
    """The settings of a shard job: each method's :func:`method_settings`."""
    return {"methods": {m: method_settings(config, m) for m in methods}}


def refine_result(content, photo: dict, data: bytes, rs: dict, device, cache: dict, lift_settings: dict | None = None):
    """The refined result of one stylised image (``data``: its PNG bytes) of ``photo`` with
    refine settings ``rs`` (and the method's ``lift_settings``, default the job's), as a
    ``(1, 3, H, W)`` float tensor at the output size: smoothing,
    the lift, detail transfer (the module docstring's steps). ``content``: the job's
    :class:`photostyle.stages.common.ContentPhotos`; ``cache`` keeps the current photo's
    full-size tensor and detail layers (entries are photo-major: once per photo, not per style
    or method). Export calls it too, for 16-bit deliverables (refine's PNGs are 8-bit)."""
    import torch

    from photostyle.core.io import read_rgb
    from photostyle.core.tensors import to_tensor
    from photostyle.ops.domain_transform import detail_layer, detail_transfer
    from photostyle.ops.smoothing import smooth

    dt = {k: rs[k] for k in ("sigma_spatial", "sigma_range", "iterations", "variant")}
    smooth_at = rs["smoothing"]["mode"] != "none" and rs["smoothing"].get("at", "work")
    full, work = content.images(photo)  # full: the output's size (the working size with the lift off)
    with torch.no_grad():
        if photo["id"] not in cache:
            cache.clear()  # keep one photo's buffers at a time
            cache[photo["id"]] = {"full": to_tensor(full, device)}
        cached = cache[photo["id"]]
        full_t = cached["full"]
        detail = None
        if rs["detail_transfer"]:
            dt_key = tuple(sorted(dt.items()))  # methods with equal settings share the content's detail layer
            if dt_key not in cached:
                cached[dt_key] = detail_layer(full_t, **dt)
            detail = cached[dt_key]
        stylized = to_tensor(read_rgb(io.BytesIO(data)), device)  # from the bytes already read
        if smooth_at == "work":
            stylized = smooth(stylized, to_tensor(work, device), rs["smoothing"])
        out = content.lift(photo, stylized, data, lift_settings).to(device)
        if smooth_at == "full":
            out = smooth(out, full_t, rs["smoothing"])
        return detail_transfer(out, full_t, detail=detail, **dt) if rs["detail_transfer"] else out


def run_refine_shard(shard_table, stylize_indexes, settings: dict, out_root, index_out, code_version: str,
                     segment_index: str | None = None) -> list[dict]:
    """Every output listed in ``stylize_indexes`` (one per method) whose method is in
    ``settings["methods"]``; images go to ``out_root/<style>/<method>/<photo>.png``, at the
    full-resolution size."""
    from photostyle.core.device import start_job
    from photostyle.core.photo import sha256_bytes
    from photostyle.core.tensors import to_uint8
    from photostyle.stages.common import ContentPhotos

    per_method, shared, hashes = per_method_job(settings, "refine")  # lift.enabled is global
    job = start_job(shared)
    photos = {r["id"]: r for r in read_csv_dicts(shard_table) if r["status"] == "ok"}
    content = ContentPhotos(job.limits, shared["lift"], segment_index)
    tensors: dict[str, dict] = {}  # the current photo: its full-size tensor and detail layers

    def item(e) -> Item:
        row = {**e, "variant": "refined", "output": "", "cached": "", "runtime_s": "", "peak_mem_mb": "",
               "config_hash": hashes[e["method"]], "code_version": code_version, "device": job.device_desc}
        key = tuple(e[k] for k in ITEM_KEY_PER_METHOD)
        if e["status"] != "ok" or e["photo_id"] not in photos:
            return Item(key, {**row, "status": e["status"] or "failed"})  # the stylisation's own status and reason
        try:
            data = Path(e["output"]).read_bytes()
        except OSError as exc:
            return Item(key, {**row, "status": "failed", "error": f"stylised image unreadable: {exc}"})
        p = photos[e["photo_id"]]
        prov = {"photo": e["photo_id"], "style": e["style"], "method": e["method"], "variant": "refined",
                "source_sha256": p["sha256"], "input_sha256": sha256_bytes(data), "labels_sha256": content.labels_digest(p),
                "segmenter": e.get("segmenter") or "none", "config_hash": hashes[e["method"]],
                "code_version": code_version, "weights": e["weights"], "device": job.device_desc}
        out = Path(out_root) / e["style"] / e["method"] / f"{e['photo_id']}.png"
        return Item(key, {**row, "status": ""}, out, prov, (p, data))

    def compute(it: Item):
        p, data = it.data
        m = per_method[it.row["method"]]
        return refine_result(content, p, data, m["refine"], job.device, tensors, m["lift"])

    def write(it: Item, out) -> None:
        write_png_atomic(it.out, to_uint8(out), text=provenance_text(it.provenance))

    entries = photo_major(stylize_indexes, lambda e: e["method"] in per_method)
    index_out = Path(index_out)
    engine = ShardJob(f"refine {index_out.stem}", index_out, INDEX_COLUMNS, device=job.device)
    return engine.run(([item(e)] for e in entries), compute, write, total=len(entries),
                      key_columns=ITEM_KEY_PER_METHOD)

