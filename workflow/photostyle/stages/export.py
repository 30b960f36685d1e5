"""Export stage: the deliverables of one shard, every method and style, through the shard-job engine.

``<out_root>/<style>/<method>/<the photo's path under content_dir>`` mirrors the user's
folder tree (unicode names and equal names in different folders included), in the configured
format, at the photo's full resolution, with its EXIF and ICC profile and the provenance in
the EXIF UserComment (:mod:`photostyle.core.deliver`). ``export.variant`` picks the refined
result (where refinement is on for the method) or the method's raw result, lifted here to
full resolution like refine does. A 16-bit deliverable (``export.format: tiff16``) is made from
the raw result in floating point, lifted and (for the refined variant) refined here as refine
does, since refine's images are 8-bit. A deliverable whose provenance (with the hash of its
method's export settings) is current is reused, so a change that touches one method rewrites
that method's deliverables only.
"""

from __future__ import annotations

from pathlib import Path

from photostyle.core.io import read_csv_dicts
from photostyle.stages.common import ITEM_KEY_PER_METHOD, job_settings, method_section, per_method_job, photo_major
from photostyle.stages.engine import PROV, Item, ShardJob, provenance_text

SIXTEEN_BIT = ("tiff16",)  # formats with 16 bits per channel (photostyle.core.deliver writes them)
EXPORT_COLUMNS = ("photo_id", "style", "method", "variant", "shard", "status", "cached", "output", "error",
                  "width", "height", "source", "runtime_s", "peak_mem_mb", "config_hash", "code_version")


def variant_for(config: dict, refined: bool) -> str:
    """The variant exported for a method: ``refined`` only where the method has a refine step."""
    return "refined" if config["export"]["variant"] == "refined" and refined else "raw"


def source_for(config: dict, variant: str) -> str:
    """The result a deliverable is made from: the refined image (``refined``), or the method's
    raw result (``raw``), which export lifts (and, for 16-bit deliverables, refines) itself in
    floating point: refine's images are 8-bit."""
    return "raw" if variant == "raw" or config["export"]["format"] in SIXTEEN_BIT else "refined"


def variant_settings(config: dict, variant: str, method: str) -> dict:
    """What a deliverable of ``method`` in the given variant depends on (its provenance's config hash)."""
    from photostyle.stages import refine as refine_stage

    ex = config["export"]
    if ex["format"] in SIXTEEN_BIT and ex["icc"] != "keep":
        raise ValueError(f"export.format {ex['format']}: export.icc must be keep (the conversion to sRGB works "
                         "on 8-bit pixels); the original's profile is embedded")
    source = source_for(config, variant)
    s = {"export": {k: v for k, v in ex.items() if k not in ("variant", *LUT_KEYS)}, "variant": variant, "source": source,
         **job_settings(config, seed=False)}
    # raw results are lifted here (refined ones were lifted by refine: whether is all that matters)
    s["lift"] = method_section(config["lift"], method) if source == "raw" else {"enabled": config["lift"]["enabled"]}
    if source == "raw" and variant == "refined":  # refined here, as refine would
        s["refine"] = refine_stage.settings_for(config["refine"], method)
    return s


def settings(config: dict, variants) -> dict:
    """The settings of a shard job: ``variants`` maps each method to the variant it exports (a
    mapping or (method, variant) pairs); ``luts``: what the .cube LUTs of the scoped methods
    depend on (none where no scoped method runs or ``export.luts`` is off)."""
    s = {"methods": {m: variant_settings(config, v, m) for m, v in dict(variants).items()}}
    if luts := lut_settings(config, list(dict(variants))):
        s["luts"] = luts
    return s


LUT_KEYS = ("luts", "lut_size")
LUT_COLUMNS = ("method", "style", "scope", "unit", "photo_id", "status", "output", "note")


def lut_settings(config: dict, methods) -> dict | None:
    """What the LUTs of a shard depend on: their size, the scope, the scoped methods' params."""
    from photostyle.methods import get_method

    ex = config["export"]
    scoped = [m for m in methods if get_method(m).scoped]
    if not (ex["enabled"] and scoped) or ex["luts"] == "none":
        return None
    if ex["luts"] == "fits" and config["stylize"]["scope"] == "photo":
        return None  # per-photo LUTs only when asked for (luts: all): ~1 MB each at 33 points
    return {"size": ex["lut_size"], "scope": config["stylize"]["scope"],
            "params": {m: config["methods"][m] for m in scoped}}


def lut_path(out_root, style: str, method: str, scope: str, folder: str = "", relpath: str = "", group: str = "") -> Path:
    """Where a LUT goes: ``<style>/<method>/luts/`` then, mirroring the user's folders, the
    photo's path with ``.cube`` added (scope photo: ``IMG_1.JPG.cube``, so ``a.jpg`` and
    ``a.png`` never share one), ``<folder>/_folder.cube`` (scope folder) or ``_collection.cube``;
    a region's LUT inserts the style region's name (``_folder.sky.cube``)."""
    base = Path(out_root) / style / method / "luts"
    if scope == "photo":
        path = base / relpath
    else:
        path = base / folder / "_folder" if scope == "folder" else base / "_collection"
    name = path.name + (f".{group}" if group else "") + ".cube"
    return path.with_name(name)


def write_luts(shard_table, luts: dict, fit_files, raw_indexes, out_root, lut_index, code_version: str) -> list[dict]:
    """The shard's .cube LUTs (:mod:`photostyle.ops.lut`): the fits this shard owns (scope folder
    or collection: each unit's LUT is written by its first shard), or at scope photo each
    photo's own map where it is global. A region-aware map is one transform per region blended
    by the photo's masks, which a LUT cannot carry: a fit writes one LUT per style region beside
    its global one; a photo's region-aware map gets none (the index says why)."""
    import json

    from photostyle.core.io import write_csv_atomic, write_if_changed
    from photostyle.ops.colour import ColourMap
    from photostyle.ops.lut import colour_map_table, cube_text
    from photostyle.stages.grade import group_names, read_fits

    size, scope = luts["size"], luts["scope"]
    rows = []

    def setting_lines(method, cmap_like) -> list[str]:  # what every LUT of a method says it was made with
        return [f"config params {json.dumps(luts['params'][method], sort_keys=True)}; code {code_version}",
                f"colour space {cmap_like.space}, strength {cmap_like.strength}; no weights (a colour map)"]

    def emit(path, cmap, region, title, comments, row):
        table = colour_map_table(cmap, region, size)
        write_if_changed(path, cube_text(table, size, title, comments))
        rows.append({**row, "status": "ok", "output": str(path)})

    for d in (u for f in sorted(fit_files) for u in read_fits(f)):
        row = {"method": d["method"], "style": d["style"], "scope": d["scope"], "unit": d["unit"], "photo_id": ""}
        fit = d["shared"]
        if fit is None:
            rows.append({**row, "status": "skipped", "note": d.get("error") or "no photos sampled"})
            continue
        base = [f"photostyle {d['method']} look of style {d['style']} ({d['style_sha256'][:16]}), "
                f"scope {d['scope']}" + (f" (folder {d['folder'] or '.'})" if d["scope"] == "folder" else ""),
                f"fitted on {d['photos']} photos, {d['pixels']} sampled pixels; fit sha256:{d['digest']}",
                *setting_lines(d["method"], fit)]
        names = group_names(d)
        emit(lut_path(out_root, d["style"], d["method"], d["scope"], d.get("folder", "")), fit.colour_map(), fit.whole,
             f"{d['style']} {d['method']} {d['unit']}", base + (
                 ["the global map: every pixel to the whole style photo. The pipeline stylised these photos region "
                  "by region (one LUT per style region beside this one, each exact inside its region only)"]
                 if fit.groups else ["exact: the pipeline's raw stylize result of these photos is this map at every "
                                     "pixel (refine's detail transfer is not in it)"]), row)
        for g, rmap in sorted(fit.groups.items()):
            emit(lut_path(out_root, d["style"], d["method"], d["scope"], d.get("folder", ""), group=names.get(g, g)),
                 fit.colour_map(), rmap, f"{d['style']} {d['method']} {d['unit']} region {names.get(g, g)}",
                 base + [f"region {names.get(g, g)}: the map of content regions matched to this style region; "
                         "exact only inside them (the pipeline blends regions with feathered masks)"],
                 {**row, "unit": f"{d['unit']}:{names.get(g, g)}"})
    if scope == "photo":
        photos = {r["id"]: r for r in read_csv_dicts(shard_table) if r["status"] == "ok"}
        for e in photo_major(raw_indexes, lambda e: e["method"] in luts["params"]):
            p = photos.get(e["photo_id"])
            row = {"method": e["method"], "style": e["style"], "scope": "photo", "unit": "", "photo_id": e["photo_id"]}
            if e["status"] != "ok" or p is None:
                continue
            try:
                cmap = ColourMap.from_png(Path(e["output"]).read_bytes())
            except (OSError, ValueError, KeyError) as exc:  # unreadable file, damaged map text
                rows.append({**row, "status": "failed", "note": f"result unreadable: {exc}"})
                continue
            if cmap is None or len(cmap.regions) != 1 or cmap.regions[0].labels is not None:
                rows.append({**row, "status": "skipped", "note": "region-aware map: one transform per region blended "
                             "by this photo's masks, which a LUT cannot carry (stylize.scope folder writes one LUT "
                             "per style region; segmentation.enabled false makes the map global)"})
                continue
            emit(lut_path(out_root, e["style"], e["method"], "photo", relpath=p["relpath"]), cmap, cmap.regions[0],
                 f"{e['style']} {e['method']} {Path(p['relpath']).name}",
                 [f"photostyle {e['method']} look of style {e['style']} for {p['relpath']} "
                  f"(sha256:{p['sha256'][:16]}), scope photo", *setting_lines(e["method"], cmap),
                  "exact: the pipeline's raw stylize result of this photo is this map at every pixel "
                  "(refine's detail transfer is not in it)"], row)
    write_csv_atomic(lut_index, LUT_COLUMNS, rows)
    _forget_stale_luts(lut_index, out_root, {r["output"] for r in rows if r["status"] == "ok"})
    return rows


def _forget_stale_luts(lut_index, out_root, written: set[str]) -> None:
    """Delete the LUTs this shard wrote last time and not now (a folder that moved to another
    shard or is gone, an earlier scope, a region no longer matched), from a ledger beside the
    index (Snakemake removes the index itself before the job runs). Only ``.cube`` files under
    ``out_root`` that the ledger names are ever deleted."""
    from photostyle.core.io import write_text_atomic

    ledger = Path(f"{lut_index}.written")
    root = Path(out_root).resolve()
    if ledger.exists():
        for line in ledger.read_text(encoding="utf-8").splitlines():
            path = Path(line)
            if line and line not in written and path.suffix == ".cube" and root in path.resolve().parents:
                path.unlink(missing_ok=True)
    write_text_atomic(ledger, "".join(f"{p}\n" for p in sorted(written)))


def run_export_shard(shard_table, source_indexes, settings: dict, out_root, index_out, code_version: str,
                     segment_index: str | None = None, fit_files=(), raw_indexes=(), lut_index=None) -> list[dict]:
    """Export every output listed in ``source_indexes`` (refined and raw indexes) whose method is in
    ``settings["methods"]`` with the variant that method exports; with ``settings["luts"]`` and
    ``lut_index``, the shard's LUTs too (:func:`write_luts`: from ``fit_files``, or at scope photo
    from the maps in the raw results of ``raw_indexes``)."""
    if settings.get("luts") and lut_index:
        write_luts(shard_table, settings["luts"], fit_files, raw_indexes, out_root, lut_index, code_version)
    import numpy as np

    from photostyle.core.deliver import deliverable_name, source_metadata, write_deliverable
    from photostyle.core.device import start_job
    from photostyle.core.io import read_rgb
    from photostyle.core.photo import sha256_bytes
    from photostyle.core.tensors import to_tensor, to_uint8, to_uint16
    from photostyle.stages.common import ContentPhotos
    from photostyle.stages.refine import refine_result

    per_method, shared, hashes = per_method_job(settings, "export")  # export settings are global too
    raw = next((s for s in per_method.values() if s["source"] == "raw"), shared)
    job = start_job(shared)
    ex = shared["export"]
    photos = {r["id"]: r for r in read_csv_dicts(shard_table) if r["status"] == "ok"}
    lift = raw["lift"]  # the full lift settings where a method exports raw results (lifted here)
    content = ContentPhotos(job.limits, lift, segment_index)
    sixteen = ex["format"] in SIXTEEN_BIT
    tensors: dict[str, dict] = {}  # refine_result's cache: the current photo's full-size tensor and detail layers

    def item(e) -> Item:
        variant = per_method[e["method"]]["variant"]
        row = {"photo_id": e["photo_id"], "style": e["style"], "method": e["method"], "variant": variant,
               "shard": e.get("shard", ""), "source": e["output"], "config_hash": hashes[e["method"]],
               "code_version": code_version}
        key = tuple(e[k] for k in ITEM_KEY_PER_METHOD)
        p = photos.get(e["photo_id"])
        if e["status"] != "ok" or p is None:
            return Item(key, {**row, "status": e["status"] or "failed", "error": e.get("error", "")})
        try:
            data = Path(e["output"]).read_bytes()
        except OSError as exc:
            return Item(key, {**row, "status": "failed", "error": f"result unreadable: {exc}"})
        out = Path(out_root) / e["style"] / e["method"] / deliverable_name(p["relpath"], ex["format"])
        prov = {"photo": p["id"], "relpath": p["relpath"], "style": e["style"], "method": e["method"],
                "variant": variant, "source_sha256": p["sha256"], "input_sha256": sha256_bytes(data),
                "labels_sha256": content.labels_digest(p), "segmenter": e.get("segmenter") or "none",
                "config_hash": hashes[e["method"]], "code_version": code_version, "weights": e.get("weights", ""),
                "device": job.device_desc}
        return Item(key, row, out, prov, (p, data))

    def compute(it: Item):
        import io

        p, data = it.data
        m = per_method[it.row["method"]]
        if m["source"] == "refined":  # refine's image as it is
            img = read_rgb(io.BytesIO(data))
        else:  # the raw result, lifted (and refined, for a 16-bit refined deliverable) here in floating point
            if m["variant"] == "refined":
                out = refine_result(content, p, data, m["refine"], job.device, tensors, m["lift"])
            elif lift["enabled"]:
                out = content.lift(p, to_tensor(read_rgb(io.BytesIO(data))), data, m["lift"])
            else:
                out = to_tensor(read_rgb(io.BytesIO(data)))
            img = to_uint16(out) if sixteen else to_uint8(out)
        full = (int(p["full_height"]), int(p["full_width"]))
        if lift["enabled"] and img.shape[:2] != full:  # never deliver a photo smaller than it came
            raise ValueError(f"result is {img.shape[1]}x{img.shape[0]}, the photo {full[1]}x{full[0]}")
        return np.ascontiguousarray(img)

    meta: dict[str, object] = {}  # the current photo's EXIF and profile (items are photo-major)

    def write(it: Item, img) -> dict:
        p, _ = it.data
        if p["path"] not in meta:
            meta.clear()
            meta[p["path"]] = source_metadata(p["path"])
        if it.out.exists():  # never replace another photo's deliverable (a.png and a.jpg both become a.jpg)
            from photostyle.core.deliver import read_provenance

            owner = read_provenance(it.out).get(PROV + "relpath", p["relpath"])
            if owner != p["relpath"]:
                raise ValueError(f"{it.out} is the deliverable of {owner!r} already: {p['relpath']!r} has the same "
                                 f"name in export.format {ex['format']}; rename one of them")
        write_deliverable(it.out, img, ex["format"], meta[p["path"]], provenance_text(it.provenance),
                          quality=ex["quality"], strip_gps=ex["strip_gps"], icc=ex["icc"])
        return {"width": img.shape[1], "height": img.shape[0]}

    entries = photo_major(source_indexes, lambda e: e["method"] in per_method
                          and e["variant"] == per_method[e["method"]]["source"])
    index_out = Path(index_out)
    engine = ShardJob(f"export {index_out.stem}", index_out, EXPORT_COLUMNS,
                      device=job.device, keep_columns=("width", "height"))
    return engine.run(([item(e)] for e in entries), compute, write, total=len(entries),
                      key_columns=ITEM_KEY_PER_METHOD)
