"""Segment stage: label maps of one content shard or one style photo, through the shard-job
engine; the segmenter (:mod:`photostyle.nets.segmenters`) loads once per job and photos go
through it in batches of ``segmentation.batch_size`` (one by one if a batch fails).

Label maps (palette PNGs with their provenance) go to ``<out_root>/<kind>/<photo>.png``,
previews to ``<out_root>/overlay/<photo>.jpg``; a label map whose provenance is current is reused.
"""

from __future__ import annotations

from pathlib import Path

from photostyle.core.io import read_csv_dicts, write_bytes_atomic
from photostyle.stages.common import groups_digest, job_settings, segmenter_text
from photostyle.stages.engine import Item, ShardJob, batched, provenance_text

SEGMENT_COLUMNS = ("photo_id", "kind", "status", "error", "labels", "overlay", "model", "label_space",
                   "weights", "segmenter", "areas", "segment_s", "device", "config_hash", "code_version", "warning")
NETWORKS = ("segformer-ade20k", "deeplabv3")  # segmenters with pretrained weights
KEYS = ("model", "segformer_variant", "short_side", "batch_size", "labels_dir", "labels_format", "groups_file",
        "min_area", "kmeans", "features")


def settings(config: dict) -> dict:
    seg = config["segmentation"]
    s = {"segmentation": {k: seg[k] for k in KEYS} | {"groups_digest": groups_digest(seg["groups_file"])},
         **job_settings(config)}
    if seg["model"] in NETWORKS:  # only networks depend on the weights setting
        s["weights"] = config["weights"]
    return s


def run_segment_part(table_csv, kind: str, settings: dict, out_root, index_out, code_version: str) -> list[dict]:
    """Segment every accepted photo of an ingest table (a content shard or one style)."""
    import logging

    from photostyle.core.device import start_job
    from photostyle.core.photo import load_photo
    from photostyle.nets.segmenters import REGION_FEATURES_KEY, areas_text, build_segmenter, overlay, palette_png
    from photostyle.ops.regions import COLOUR_TABLE, load_groups, merge_small_regions

    job = start_job(settings)
    cfg = settings["segmentation"]
    segmenter = build_segmenter(cfg, settings.get("weights", {}), settings["seed"], job.device)
    groups = load_groups(cfg["groups_file"])
    tables = {"groups": groups, "colours": COLOUR_TABLE, "clusters": None, "features": None}  # label space -> names and relations
    used = segmenter_text(segmenter.name, segmenter.provenance, segmenter.fallback)
    logging.getLogger(__name__).info("segmenter %s (%s), weights %s, device %s", used,
                                     segmenter.label_space, segmenter.provenance, job.device_desc)
    out_root, decoded = Path(out_root), {}
    base = {"kind": kind, "model": segmenter.name, "label_space": segmenter.label_space,
            "weights": segmenter.provenance, "segmenter": used, "device": job.device_desc,
            "config_hash": job.config_hash, "code_version": code_version}

    def item(r) -> Item:
        lpath, opath = out_root / kind / f"{r['id']}.png", out_root / "overlay" / f"{r['id']}.jpg"
        prov = {"photo": r["id"], "source_sha256": r["sha256"], "config_hash": job.config_hash,
                "code_version": code_version, "weights": segmenter.provenance, "segmenter": used,
                "device": job.device_desc}
        return Item((r["id"],), {**base, "photo_id": r["id"], "labels": str(lpath), "overlay": str(opath)},
                    lpath, prov, r)

    def image(r):
        if r["id"] not in decoded:
            decoded[r["id"]] = load_photo(r["path"], job.limits, expect_sha256=r["sha256"])[0]
        return decoded[r["id"]]

    def write(it: Item, labels) -> dict:
        space = getattr(segmenter, "spaces", {}).get(it.data["id"], segmenter.label_space)  # user maps: per file
        table = tables[space]
        labels = merge_small_regions(labels, table, cfg["min_area"])
        text = provenance_text(it.provenance)
        if it.data["id"] in getattr(segmenter, "region_features", {}):  # features: each cluster's mean feature
            text[REGION_FEATURES_KEY] = segmenter.region_features.pop(it.data["id"])
        write_bytes_atomic(it.out, palette_png(labels, text))
        write_bytes_atomic(it.row["overlay"], overlay(image(it.data), labels))
        return {"areas": areas_text(labels, table.groups if table else None), "label_space": space,
                "warning": getattr(segmenter, "warnings", {}).get(it.data["id"], "")}

    def segment_batch(group: list[Item]):  # a chunk through the network in one pass
        return segmenter.segment_many([image(it.data) for it in group], [it.data for it in group])

    photos = [r for r in read_csv_dicts(table_csv) if r["status"] == "ok"]
    batch = max(1, int(cfg.get("batch_size", 1)))
    chunks = ([item(r) for r in photos[i:i + batch]] for i in range(0, len(photos), batch))
    engine = ShardJob(f"segment {kind}/{Path(table_csv).stem}", index_out, SEGMENT_COLUMNS, device=job.device,
                      time_column="segment_s", memory_column=None, keep_columns=("areas", "label_space", "warning"))
    return engine.run(_clearing(chunks, decoded), lambda it: segmenter.segment(image(it.data), it.data), write,
                      precompute=lambda todo: batched(todo, lambda it: image(it.data).ndim, segment_batch),
                      key_columns=("photo_id",), total=len(photos))


def _clearing(chunks, cache: dict):
    """Yield the chunks, emptying ``cache`` (decoded photos) before each."""
    for chunk in chunks:
        cache.clear()
        yield chunk
