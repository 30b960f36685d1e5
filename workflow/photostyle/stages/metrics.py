"""Metrics stage: per-image measures (:mod:`photostyle.ops.measures`) of every output of a
content shard (every style and method, raw and refined), through the shard-job engine, and
their aggregation.

Columns of ``per_image.csv``: ``ssim_lum`` (structure kept), ``grad_corr`` (edges kept),
``colour_dist`` (sliced Wasserstein distance in CIELAB to the style photo) and its baseline
``colour_dist_content``, ``colour_dist_regions`` (per matched region pair), ``style_dist``
(VGG-16 Gram distance at relu1_1..relu5_1, relative so that it does not depend on the
network file's activation scale; ``style_dist_weights`` says which weights computed it), runtimes,
peak memory and provenance. See :mod:`photostyle.ops.measures` for the definitions.
"""

from __future__ import annotations

import logging
from pathlib import Path

from photostyle.core.io import read_csv_dicts, write_csv_atomic
from photostyle.stages.common import fallback_lines, job_settings, matching_settings, read_styles, segmentation_on
from photostyle.stages.engine import Item, ShardJob

log = logging.getLogger(__name__)

STYLE_NETWORK = "vgg16"  # the Oxford ImageNet VGG-16 where present, else torchvision's (core.weights.NETWORK_WEIGHTS)

METRIC_COLUMNS = ("ssim_lum", "grad_corr", "colour_dist", "colour_dist_content", "colour_dist_regions", "style_dist")
PER_IMAGE_COLUMNS = (
    "photo_id", "style", "method", "variant", "shard", "status", "error", "warning", *METRIC_COLUMNS,
    "runtime_s", "metrics_s", "peak_mem_mb", "device", "weights", "style_dist_weights", "regions", "segmenter",
    "config_hash", "code_version", "output",
)


def settings(config: dict) -> dict:
    s = {"metrics": config["metrics"], **job_settings(config)}
    if config["metrics"]["style_distance"] is not False:  # auto and true depend on the weights
        s["weights"] = config["weights"]
    if segmentation_on(config):
        s["segmentation"] = matching_settings(config, ("enabled", "groups_file", "min_pixels", "max_area_ratio"))
    return s


def run_metrics_shard(shard_table, style_tables: list[str], indexes: list[str], settings: dict, out,
                      segment_indexes: list[str] | None = None) -> list[dict]:
    """Measure every output listed in ``indexes`` (every style and method, raw and refined)."""
    import numpy as np

    from photostyle.core.io import read_rgb
    from photostyle.core.photo import PhotoLimits, PhotoRejected, derive_seed, load_photo, working_size
    from photostyle.ops.measures import (image_metrics, lab_sample, projected_quantiles, projections,
                                         region_colour_distance, swd_from_quantiles)

    limits, m, seed = PhotoLimits.from_settings(settings), settings["metrics"], settings["seed"]
    n_sample, dirs = m["colour_sample_pixels"], projections(m["swd_projections"], seed)
    photos = {r["id"]: r for r in read_csv_dicts(shard_table) if r["status"] == "ok"}

    def load(row, what):
        try:
            return load_photo(row["path"], limits, expect_sha256=row["sha256"])[0]
        except PhotoRejected as exc:
            log.error("%s %s unusable: %s", what, row["id"], exc)

    style_img = {r["id"]: load(r, "style") if r["status"] == "ok" else None for r in read_styles(style_tables)}
    style_q = {sid: None if img is None else projected_quantiles(
        lab_sample(img, n_sample, np.random.default_rng(seed)), dirs) for sid, img in style_img.items()}
    regions = None
    if settings.get("segmentation") and segment_indexes:
        from photostyle.ops.regions import RegionSource

        regions = RegionSource(settings["segmentation"], segment_indexes)
    gram = _gram_distance(settings, style_img)
    by_photo: dict[str, list[dict]] = {}
    for idx in sorted(indexes):
        for e in read_csv_dicts(idx):
            by_photo.setdefault(e["photo_id"], []).append(e)
    region_cache: dict = {}
    current: dict = {}  # the current photo: its pixels and colour-distance baselines

    def chunk(pid: str) -> list[Item]:
        content = load(photos[pid], "photo") if pid in photos else None
        current.update(content=content, baseline={})
        if content is not None:
            qc = projected_quantiles(lab_sample(content, n_sample, np.random.default_rng(derive_seed(seed, pid))), dirs)
            current["baseline"] = {s: swd_from_quantiles(qc, q) for s, q in style_q.items() if q is not None}
        items = []
        for e in by_photo[pid]:
            row = {k: e.get(k, "") for k in PER_IMAGE_COLUMNS if k in e}
            measurable = e["status"] == "ok" and content is not None and style_q.get(e["style"]) is not None
            items.append(Item((pid, e["style"], e["method"], e["variant"]), {**row, "status": "" if measurable
                                                                            else row.get("status", "")}, data=e))
        return items

    def compute(it: Item) -> dict:
        e, content = it.data, current["content"]
        out_img = read_rgb(e["output"])
        if out_img.shape != content.shape:  # a lifted (full-resolution) output: measured at the working size
            out_img = working_size(out_img, limits)
            if out_img.shape != content.shape:
                raise ValueError(f"output {out_img.shape} does not downscale to the photo's working size {content.shape}")
        vals = image_metrics(out_img, content, style_q[e["style"]], dirs, n_sample, derive_seed(seed, e["photo_id"]))
        vals["colour_dist_regions"] = region_colour_distance(
            out_img, content, style_img[e["style"]], e["photo_id"], e["style"], regions, dirs, n_sample,
            derive_seed(seed, "regions"), region_cache)
        if isinstance(gram, str):  # why it is not computed
            vals["style_dist_weights"] = gram
        elif gram is not None:
            vals.update(style_dist=gram.distance(out_img, gram.style_grams[e["style"]]),
                        style_dist_weights=gram.provenance)
        return {**vals, "colour_dist_content": current["baseline"][e["style"]]}

    engine = ShardJob(f"metrics {Path(shard_table).stem}", out, PER_IMAGE_COLUMNS, time_column="metrics_s",
                      memory_column=None, ledger=False)
    return engine.run((chunk(pid) for pid in sorted(by_photo)), compute, lambda it, vals: vals,
                      total=sum(map(len, by_photo.values())))


def _gram_distance(settings: dict, style_img: dict):
    """The VGG-16 Gram distance with every style's Gram matrices; None when it is off; a note
    saying why when ``auto`` finds no pretrained weights (random weights measure nothing)."""
    m = settings["metrics"]
    if m.get("style_distance") is False:
        return None
    if m.get("style_distance") == "auto":  # decided without importing torch
        from photostyle.core.weights import resolve_network

        w = settings["weights"]
        if resolve_network(STYLE_NETWORK, w, settings["seed"]).is_random:
            log.warning("style distance not computed: no pretrained VGG-16 weights")
            return ("not computed: no pretrained VGG-16 (random weights measure nothing; "
                    "metrics.style_distance: true computes it anyway)")

    import torch

    from photostyle.core.device import apply_threads, select_device
    from photostyle.nets.style_distance import GramDistance

    apply_threads()
    torch.set_grad_enabled(False)
    gram = GramDistance(settings["weights"], settings["seed"], m["style_short_side"], select_device(settings["device"]),
                        network=STYLE_NETWORK)
    gram.style_grams = {sid: gram.grams(img) for sid, img in style_img.items() if img is not None}
    return gram


def summarise(per_image):
    """Mean, median and 95th percentile of every metric per method x style x variant."""
    import pandas as pd

    ok = per_image[per_image["status"] == "ok"].copy()
    cols = [c for c in (*METRIC_COLUMNS, "runtime_s", "peak_mem_mb") if c in ok]
    for c in cols:
        ok[c] = pd.to_numeric(ok[c], errors="coerce")
    keys = ["method", "style", "variant"]
    g = ok.groupby(keys, sort=True)[cols]
    parts = {"mean": g.mean(), "median": g.median(), "p95": g.quantile(0.95)}
    out = pd.concat({k: v for k, v in parts.items()}, axis=1)
    out.columns = [f"{col}_{stat}" for stat, col in out.columns]
    counts = per_image.groupby(keys, sort=True)["status"].agg(
        n_ok=lambda s: int((s == "ok").sum()), n_failed=lambda s: int((s == "failed").sum()),
        n_skipped=lambda s: int((s == "skipped").sum()))
    if "warning" in per_image:
        counts = counts.join(per_image.groupby(keys, sort=True)["warning"].agg(
            n_warnings=lambda s: int(s.fillna("").astype(str).str.len().gt(0).sum())))
    prov_cols = [c for c in ("weights", "segmenter", "style_dist_weights", "device", "code_version") if c in per_image]
    prov = per_image.groupby(keys, sort=True)[prov_cols].agg(
        lambda s: ";".join(sorted(set(map(str, s.dropna())))))
    return counts.join(out, how="left").join(prov).reset_index()


ISSUE_COLUMNS = ("photo_id", "style", "method", "variant", "status", "error", "warning", "output")


def issues(per_image) -> list[dict]:
    """The outputs that are not plainly fine: failed, skipped, or made with a warning
    (e.g. stylised globally because a label map is missing)."""
    rows = per_image.fillna("").to_dict("records")
    return [r for r in rows if r.get("status") != "ok" or str(r.get("warning", ""))]


def run_summary(per_image_csv, issues_csv) -> str:
    """The end of a run, from the per-image table (csv module only: the Snakefile calls it): one
    line per kind of fallback (a segmenter or random weights standing in for the configured ones),
    then the last line, which counts outputs ok (with warnings: fallbacks included), failed and skipped."""
    rows = read_csv_dicts(per_image_csv)
    n = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "skipped")}
    n_warn = sum(bool(r.get("warning")) for r in rows)
    more = f"; listed in {issues_csv}" if n["failed"] + n["skipped"] + n_warn else ""
    return "\n".join([*fallback_lines(rows), f"photostyle: {n['ok']} outputs ok ({n_warn} with warnings), "
                                               f"{n['failed']} failed, {n['skipped']} skipped{more}"])


def aggregate(shard_files, per_image_out, summary_out, issues_out=None):
    import numpy as np
    import pandas as pd

    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in sorted(shard_files)]
    per_image = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PER_IMAGE_COLUMNS)
    per_image = per_image.sort_values(["style", "method", "variant", "photo_id"], kind="stable")
    write_csv_atomic(per_image_out, list(per_image.columns), per_image.itertuples(index=False))
    summary = summarise(per_image.replace("", np.nan)) if len(per_image) else pd.DataFrame()
    write_csv_atomic(summary_out, list(summary.columns), summary.itertuples(index=False))
    if issues_out is not None:
        write_csv_atomic(issues_out, ISSUE_COLUMNS, issues(per_image))
        for line in run_summary(per_image_out, issues_out).splitlines():
            log.info("%s", line)
    return summary
