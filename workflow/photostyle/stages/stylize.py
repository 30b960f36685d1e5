"""Stylize stage: one method x one shard, every style (models load once per job, style
statistics once per style), through the shard-job engine (:mod:`photostyle.stages.engine`).

Images go to ``<out_root>/<style>/<method>/<photo>.png`` with their provenance in PNG text
chunks; an image whose provenance is current is reused, so adding a style computes only it.
Photos go in chunks of the method's batch size, style by style: a photo is decoded once per
chunk, and a batching method's same-size photos go through the network together.
"""

from __future__ import annotations

import logging
from pathlib import Path

from photostyle.core.io import read_csv_dicts, write_csv_atomic, write_png_atomic
from photostyle.methods import get_method
from photostyle.stages.common import (INDEX_COLUMNS, fallback_warning, job_settings, matching_settings, pair_segmenter,
                                      read_styles, segmentation_on, trace_path)
from photostyle.stages.engine import Item, ShardJob, batched, provenance_text

log = logging.getLogger(__name__)

def settings(config: dict, method: str) -> dict:
    """Exactly the config that affects ``method``'s outputs."""
    m = get_method(method)
    s = {"params": config["methods"][method], **job_settings(config)}
    if m.weights:  # only methods with pretrained networks depend on the weights setting
        s["weights"] = config["weights"]
    if segmentation_on(config) and m.uses_regions:
        s["segmentation"] = matching_settings(config)
    if m.scoped:  # colour maps: per photo, or one fit per folder/collection (the grade stage)
        s["scope"] = config["stylize"]["scope"]
    return s


def code_roots(method: str) -> tuple[str, ...]:
    return ("stages.stylize", get_method(method).module())


def run_stylize_shard(shard_table, style_tables, method_name: str, settings: dict, out_root, index_out,
                      code_version: str, segment_indexes: list[str] | None = None,
                      train_root="results/train", fits: list[str] | None = None) -> list[dict]:
    import torch

    from photostyle.core.device import seed_everything, start_job
    from photostyle.core.photo import derive_seed, load_photo
    from photostyle.core.tensors import to_tensor, to_uint8
    from photostyle.ops.colour import COLOUR_MAP_KEY
    from photostyle.ops.regions import RegionSource

    job = start_job(settings)
    cls, seed = get_method(method_name), settings["seed"]
    photos = [r for r in read_csv_dicts(shard_table) if r["status"] == "ok"]
    styles = read_styles(style_tables)
    method = cls.for_job(settings, job.device, [s["id"] for s in styles], train_root)
    seg = settings.get("segmentation")
    regions = RegionSource(seg, segment_indexes or []) if seg and seg.get("enabled") else None
    base = {"method": method_name, "variant": "raw", "shard": Path(shard_table).stem, "device": job.device_desc,
            "config_hash": job.config_hash, "code_version": code_version}
    decoded, styles_decoded, style_state = {}, {}, {}
    random_weights = [n for n, r in method.resolved.items() if getattr(r, "fallback", "")]  # auto: none found
    scope = settings.get("scope", "photo")
    shared = {}  # (style, unit) -> the folder's or collection's fit (stylize.scope; stages.grade)
    if cls.scoped and scope != "photo":
        from photostyle.stages.grade import load_fits, unit_of

        shared = load_fits(fits or [])

    def image(r, cache=decoded):  # the current chunk's photos (and every style photo) decoded once
        if r["id"] not in cache:
            cache[r["id"]] = load_photo(r["path"], job.limits, expect_sha256=r["sha256"])[0]
        return cache[r["id"]]

    def style_of(srow):
        if srow["id"] not in style_state:
            style_state[srow["id"]] = method.prepare_style(to_tensor(image(srow, styles_decoded), job.device),
                                                           srow["id"])
        return style_state[srow["id"]]

    def item(r, srow) -> Item:
        row = {**base, "photo_id": r["id"], "style": srow["id"]}
        out = Path(out_root) / srow["id"] / method_name / f"{r['id']}.png"
        if srow["status"] != "ok":
            return Item((r["id"], srow["id"]), {**row, "status": "skipped",
                                                "error": f"style photo rejected at ingest: {srow['reason']}"})
        try:
            labels = regions.digest(r["id"], srow["id"]) if regions and cls.uses_regions else "none"
            row["weights"] = method.provenance(srow["id"])
        except OSError as exc:
            return Item((r["id"], srow["id"]), {**row, "status": "failed", "error": f"unreadable: {exc}"})
        uses = regions is not None and cls.uses_regions
        row["segmenter"] = pair_segmenter(*regions.segmenters(r["id"], srow["id"])) if uses else "none"
        warnings = []
        global_why = regions.usable(r["id"], srow["id"]) if uses else None
        if global_why:
            missing = regions.missing(r["id"], srow["id"])
            why = missing or global_why
            if seg.get("on_error") == "fail" and missing:
                return Item((r["id"], srow["id"]), {**row, "status": "failed", "error": f"segmentation: {why} "
                            "(segmentation.on_error: global stylises such photos globally, with a warning)"})
            warnings.append(f"stylised globally: {why}")
        elif uses and (seg_warning := regions.warnings(r["id"], srow["id"])):
            warnings.append(seg_warning)  # e.g. a label map resized from a size a pixel off
        # made with a stand-in: a fallback segmenter, random weights (both counted as warnings)
        warnings.append(fallback_warning(row["segmenter"], random_weights))
        row["warning"] = "; ".join(w for w in warnings if w)
        row["regions"] = ("global (method does not use regions)" if not cls.uses_regions else
                          "global (segmentation off)" if regions is None else "")
        prov = {"photo": r["id"], "style": srow["id"], "method": method_name, "source_sha256": r["sha256"],
                "style_sha256": srow["sha256"], "labels_sha256": labels, "segmenter": row["segmenter"] or "none",
                "config_hash": job.config_hash, "code_version": code_version, "weights": row["weights"],
                "device": job.device_desc, "seed": str(seed)}
        data = {"photo": r, "style": srow}
        if cls.scoped and scope != "photo":  # the folder's (collection's) fit, named by its digest
            unit = unit_of(r["relpath"], scope)
            fit, digest, error = shared.get((srow["id"], unit), (None, "", f"no {scope} fit {unit} was given"))
            if fit is None:
                return Item((r["id"], srow["id"]), {**row, "status": "failed",
                                                    "error": f"{scope} fit {unit}: {error or 'no photos sampled'}"})
            prov.update(scope=f"{scope} {unit}", fit_sha256=digest)
            data["shared"] = fit
        return Item((r["id"], srow["id"]), row, out, prov, data)

    def chunks():
        step = method.batch_size() if cls.batches else 1
        for start in range(0, len(photos), step):
            decoded.clear()  # keep only the current chunk's photos decoded
            for s in styles:
                yield [item(r, s) for r in photos[start:start + step]]

    def compute(it: Item):
        r, srow = it.data["photo"], it.data["style"]
        x = to_tensor(image(r), job.device)
        masks = regions.masks(r["id"], srow["id"], image(r), image(srow, styles_decoded), job.device) \
            if regions is not None and cls.uses_regions else None
        if regions is not None and cls.uses_regions:
            it.data["regions"] = masks.summary if masks is not None else (regions.usable(r["id"], srow["id"]) or "whole")
        seed_everything(derive_seed(seed, r["id"], srow["id"], method_name))
        st = style_of(srow)
        st.colour_map, st.shared = None, it.data.get("shared")
        with torch.no_grad():
            out = method(x, st, masks)
        if st.colour_map is not None:  # stored beside the image for the lift
            it.data["colour_map"] = st.colour_map.to_json()
        if out.shape != x.shape:
            raise RuntimeError(f"method returned {tuple(out.shape)} for a {tuple(x.shape)} photo")
        if st.trace:  # written before the image: an image never lacks its trace
            write_csv_atomic(trace_path(it.out), list(dict.fromkeys(k for t in st.trace for k in t)), st.trace)
            st.trace = None
        return out

    def run_batch(group: list[Item]):  # a batching method: same-size photos through it together
        x = torch.cat([to_tensor(image(it.data["photo"]), job.device) for it in group])
        with torch.no_grad():
            out = method(x, style_of(group[0].data["style"]))
        if job.device.type == "cuda":
            torch.cuda.synchronize(job.device)
        return [out[i:i + 1] for i in range(len(group))]

    def write(it: Item, out) -> dict:
        text = provenance_text(it.provenance)
        if "colour_map" in it.data:
            text[COLOUR_MAP_KEY] = it.data["colour_map"]
        write_png_atomic(it.out, to_uint8(out), text=text)
        return {"regions": it.data["regions"]} if "regions" in it.data else {}

    log.info("device %s; method %s; weights %s; %d photos x %d styles", job.device_desc, method_name,
             "; ".join(f"{n}={r.provenance}" for n, r in method.resolved.items()) or "none", len(photos), len(styles))
    engine = ShardJob(f"stylize {method_name}/{base['shard']}", index_out, INDEX_COLUMNS, device=job.device,
                      keep_columns=("regions",))
    precompute = (lambda todo: batched(todo, lambda it: image(it.data["photo"]).shape, run_batch)) \
        if cls.batches else None
    return engine.run(chunks(), compute, write, precompute=precompute, total=len(photos) * len(styles))

