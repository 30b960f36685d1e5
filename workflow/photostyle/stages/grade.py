"""Grade stage: one colour transform per style and folder of the collection (a shoot), or one for
the whole collection (``stylize.scope: folder | collection``), for the scoped methods (the colour
maps ``reinhard`` and ``mkl``, :attr:`photostyle.methods.base.Method.scoped`).

Two jobs, so that a fit reads only sampled pixels:

* **sample** (one per content shard): a deterministic sample of ``stylize.scope_sample_pixels``
  pixels of each photo at the working size (positions drawn from the seed and the photo id), with
  the photo's label at each sampled pixel where segmentation is on. Written to
  ``results/grade/samples/<shard>.npz``; method- and style-independent.
* **fit** (one per method x style x *owner shard*): for each unit (a folder, or the collection)
  whose first shard is that shard, pools the samples of the unit's photos (every photo weighs
  the same) per matched group and fits the method's map on the pooled statistics
  (:func:`photostyle.ops.colour.fit_shared`). Written to
  ``results/grade/fit/<method>/<style>/<owner shard>.json``, one entry per unit. A large folder
  is one job (its first shard owns it alone); small folders are fitted together, so the DAG
  does not grow with the number of folders (10k folders of 10 photos: 179 owner shards).

The stylize job of a shard takes the fit files of its photos' units and applies them
(:func:`photostyle.ops.colour.apply_shared`); each output's provenance carries its unit's fit
digest, so adding a photo to a folder reruns the fit job that owns the folder and recomputes
that folder's outputs only (other units in the same files come out byte-identical).
Shards are folder-local (:func:`photostyle.core.collection.assign_shards`), so a folder's fit
reads the samples of a few shards.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from photostyle.core.collection import COLLECTION_UNIT, folder_of, unit_id
from photostyle.core.io import atomic_path, read_csv_dicts, write_text_atomic
from photostyle.methods import get_method
from photostyle.stages.common import job_settings, matching_settings, segmentation_on

log = logging.getLogger(__name__)

def scope_of(config: dict, method: str) -> str:
    """The scope ``method`` runs at: ``stylize.scope`` for scoped methods, else ``photo``."""
    return config["stylize"]["scope"] if get_method(method).scoped else "photo"


def uses_labels(config: dict, methods) -> bool:
    """Whether samples carry labels: segmentation on and a method fitted per folder uses regions."""
    return segmentation_on(config) and any(get_method(m).uses_regions and scope_of(config, m) != "photo"
                                           for m in methods)


def sample_settings(config: dict) -> dict:
    """What a shard's pixel sample depends on."""
    return {"pixels": config["stylize"]["scope_sample_pixels"], "labels": uses_labels(config, config["stylize"]["methods"]),
            **job_settings(config)}


def settings(config: dict, what: str, method: str | None = None) -> dict:
    """``what``: ``sample`` (a shard's sample) or ``fit`` (``method``'s fits)."""
    if what == "sample":
        return sample_settings(config)
    m = get_method(method)
    s = {"params": config["methods"][method], "scope": scope_of(config, method), "sample": sample_settings(config),
         **job_settings(config)}
    if segmentation_on(config) and m.uses_regions:
        s["segmentation"] = matching_settings(config)
    return s


def unit_of(relpath: str, scope: str) -> str:
    """The unit a photo's transform is fitted on: its folder's id, or the collection's."""
    return folder_unit(folder_of(relpath), scope)


def folder_unit(folder: str, scope: str) -> str:
    """The unit of a folder's photos (:func:`unit_of`)."""
    return COLLECTION_UNIT if scope == "collection" else unit_id(folder)


# --- sample -------------------------------------------------------------------------------
def sample_positions(shape: tuple[int, int], n: int, seed: int, photo: str):
    """``n`` distinct pixel indexes (row-major, sorted) of a ``shape`` photo, the same at every run."""
    import numpy as np

    from photostyle.core.photo import derive_seed

    total = shape[0] * shape[1]
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng(derive_seed(seed, photo, "scope-sample"))
    return np.sort(rng.choice(total, size=n, replace=False))


def run_sample_shard(shard_table, segment_index: str | None, settings: dict, out) -> int:
    """Write the pixel samples of a shard's photos (see the module docstring). Photos that fail
    to decode are left out with a log line (stylize reports them)."""
    import numpy as np

    from photostyle.core.photo import PhotoLimits, load_photo
    from photostyle.ops.regions import RegionSource

    limits = PhotoLimits.from_settings(settings)
    rows = sorted((r for r in read_csv_dicts(shard_table) if r["status"] == "ok"), key=lambda r: r["id"])
    seg = {r["photo_id"]: r for r in read_csv_dicts(segment_index)} if settings["labels"] and segment_index else {}
    ids, rels, offsets, rgb, labels, spaces, texts, sizes = [], [], [0], [], [], [], [], []
    for r in rows:
        try:
            img = load_photo(r["path"], limits, expect_sha256=r["sha256"])[0]
        except Exception as exc:  # noqa: BLE001 - a photo's failure is logged; stylize records it
            log.warning("%s: not sampled: %s", r["relpath"], exc)
            continue
        pos = sample_positions(img.shape[:2], settings["pixels"], settings["seed"], r["id"])
        rgb.append(img.reshape(-1, 3)[pos])
        lab, space, text = np.full(len(pos), -1, np.int32), "", ""
        srow = seg.get(r["id"])
        if srow is not None and srow["status"] == "ok":
            try:
                arr, _, meta = RegionSource._read(srow["labels"])
            except OSError as exc:  # sampled without labels: its pixels pool into the global map only
                log.warning("%s: label map unreadable (%s): sampled without labels", r["relpath"], exc)
                arr = meta = None
            if arr is not None and arr.shape[:2] == img.shape[:2]:
                lab, space = arr.reshape(-1)[pos].astype(np.int32), srow["label_space"]
                text = json.dumps(meta, sort_keys=True)
        labels.append(lab)
        ids.append(r["id"])
        rels.append(r["relpath"])
        spaces.append(space)
        texts.append(text)
        sizes.append(img.shape[0] * img.shape[1])
        offsets.append(offsets[-1] + len(pos))
    arrays = {"ids": np.array(ids, dtype=str), "relpaths": np.array(rels, dtype=str),
              "offsets": np.array(offsets, np.int64), "spaces": np.array(spaces, dtype=str),
              "texts": np.array(texts, dtype=str), "sizes": np.array(sizes, np.int64),
              "rgb": np.concatenate(rgb) if rgb else np.zeros((0, 3), np.uint8),
              "labels": np.concatenate(labels) if labels else np.zeros(0, np.int32)}
    with atomic_path(out, ".npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    log.info("sampled %d photos x %d pixels", len(ids), settings["pixels"])
    return len(ids)


def read_samples(path):
    """Each photo of a sample file: ``(id, relpath, rgb (N, 3) uint8, labels (N,) int32 or None,
    label space, label-map text, the photo's pixel count at the working size)``."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    off = d["offsets"]
    for i, pid in enumerate(d["ids"].tolist()):
        lab = d["labels"][off[i]:off[i + 1]]
        yield (pid, str(d["relpaths"][i]), d["rgb"][off[i]:off[i + 1]], None if (lab < 0).all() else lab,
               str(d["spaces"][i]), json.loads(str(d["texts"][i])) if str(d["texts"][i]) else None,
               int(d["sizes"][i]))


# --- fit ----------------------------------------------------------------------------------
def run_fit(sample_files, style_table, style_segment_index: str | None, method_name: str, settings: dict, units,
            out, code_version: str = "") -> dict:
    """Fit ``method_name``'s shared map of one style for each of ``units`` (the units a shard
    owns: those it is the first shard of) from the samples, and write them to one file (JSON:
    per unit the fit, the photos it pooled and their digest; see :func:`read_fits`)."""
    import numpy as np
    import torch

    from photostyle.core.photo import PhotoLimits, load_photo, sha256_bytes
    from photostyle.ops.colour import GLOBAL, SPACES, PooledStats, fit_shared
    from photostyle.ops.regions import WHOLE, RegionSource, load_groups, match_labels

    cls = get_method(method_name)
    opts = cls.fit_options(cls.parse(settings["params"]))
    to_space = SPACES[opts["space"]][0]
    scope, units = settings["scope"], sorted(units)
    style = read_csv_dicts(style_table)[0]
    result = {"method": method_name, "style": style["id"], "scope": scope, "code_version": code_version, "units": {}}

    def write() -> dict:
        write_text_atomic(out, json.dumps(result, indent=1, sort_keys=True) + "\n")
        return result

    def failed(why: str) -> dict:  # the units' outputs of this style fail with the reason; nothing else stops
        result["units"] = {u: {"error": why} for u in units}
        log.error("%s %s: %s", method_name, style["id"], why)
        return write()

    if style["status"] != "ok":  # stylize skips this style's outputs with the ingest's reason
        return failed(f"style photo rejected at ingest: {style['reason']}")
    try:
        style_img = load_photo(style["path"], PhotoLimits.from_settings(settings), expect_sha256=style["sha256"])[0]
    except Exception as exc:  # noqa: BLE001 - e.g. the style file changed or vanished since ingest
        return failed(f"style photo unreadable: {exc}")
    s_pix = to_space(torch.from_numpy(style_img.reshape(-1, 3).astype(np.float64) / 255.0))
    s_stats = PooledStats()
    s_stats.add(GLOBAL, s_pix)
    seg = settings.get("segmentation")
    s_labels = s_space = s_text = table = None
    if seg and seg.get("enabled") and style_segment_index:
        srow = next((r for r in read_csv_dicts(style_segment_index) if r["photo_id"] == style["id"]), None)
        if srow is not None and srow["status"] == "ok":
            try:
                s_labels, _, s_text = RegionSource._read(srow["labels"])
            except OSError as exc:  # the fit goes global for this style, as stylize does without labels
                log.warning("style %s: label map unreadable (%s): global fit", style["id"], exc)
            else:
                s_space, table = srow["label_space"], load_groups(seg["groups_file"])
                if s_labels.shape[:2] != style_img.shape[:2]:
                    s_labels = None
    if s_labels is not None:
        flat = s_labels.reshape(-1)
        s_stats.add(str(WHOLE), s_pix)
        for label in np.unique(flat).tolist():
            s_stats.add(str(label), s_pix[torch.from_numpy(flat == label)])
    # Each photo's statistics apart, summed per unit in photo-id order: a unit's fit does not
    # depend on which sample files (shards) hold its photos, so a neighbouring folder's shard
    # splitting leaves it byte-identical.
    wanted, per_photo, name_table = set(units), {u: {} for u in units}, None
    for path in sorted(sample_files):
        for pid, rel, rgb, labels, space, text, size in read_samples(path):
            unit = unit_of(rel, scope)
            if unit not in wanted:
                continue
            stats = PooledStats()
            c = to_space(torch.from_numpy(rgb.astype(np.float64) / 255.0))
            stats.add(GLOBAL, c)
            groups = "global"
            if labels is not None and s_labels is not None and space == s_space:
                # the sample matches as its photo does: the size rule's pixel count scaled to the sample
                seg_s = {**seg, "min_pixels": max(1, round(seg["min_pixels"] * len(labels) / max(size, 1)))}
                matches, name_table = match_labels(space, labels[:, None], rgb[:, None, :], text, s_labels, style_img,
                                                   s_text, seg_s, table)
                for m in matches:
                    stats.add(str(m.style), c[torch.from_numpy(labels == m.content)])
                groups = ";".join(f"{m.content}>{m.style}" for m in matches)
            per_photo[unit][pid] = (rel, groups, stats)
    for unit in units:
        photos = per_photo[unit]
        c_stats = PooledStats()
        for pid in sorted(photos):
            c_stats.merge(photos[pid][2])
        pooled = [(pid, photos[pid][0], photos[pid][1]) for pid in sorted(photos)]
        if not pooled:
            result["units"][unit] = {"error": "no photo of the unit was sampled"}
            continue
        fit = fit_shared(opts["kind"], c_stats, s_stats, space=opts["space"], strength=opts["strength"],
                         eps=opts.get("eps", 1e-6), photos=len(pooled))
        result["units"][unit] = {
            "style_sha256": style["sha256"], "photos": len(pooled), "pixels": fit.pixels,
            "photos_sha256": sha256_bytes("\n".join(f"{p}\t{g}" for p, _, g in pooled).encode()),
            # the folder as the files spell it (the deliverables' tree), not NFC-normalised
            "folder": pooled[0][1].rpartition("/")[0] if scope == "folder" else "",
            "fit": fit.to_dict(), "group_names": {g: group_name(g, name_table) for g in fit.groups}}
        log.info("%s %s %s: fitted on %d photos (%d sampled pixels)", method_name, style["id"], unit, len(pooled),
                 fit.pixels)
    return write()


def group_name(group: str, table=None) -> str:
    """A style region's name for file names: its group's name (``sky``), ``whole`` for regions
    matched to the whole style photo, ``region<k>`` for clusters."""
    from photostyle.core.collection import slug_of
    from photostyle.ops.regions import WHOLE

    if group == str(WHOLE):
        return "whole"
    k = int(group)
    name = table.groups[k] if table is not None and k < len(table.groups) else f"region{k}"
    return slug_of(name + ".x")


def group_names(fit_file: dict) -> dict[str, str]:
    """The group names a fit file recorded (:func:`group_name`)."""
    return fit_file.get("group_names") or {}


def read_fits(path) -> list[dict]:
    """The units of a fit file, each a dict with ``method``, ``style``, ``scope``, ``unit``,
    ``digest`` (sha256 of the unit's entry and the file's method, style and scope: what an
    output's provenance records), ``error`` and, where fitted, ``fit``, ``photos``, ``pixels``,
    ``folder``, ``style_sha256``, ``photos_sha256``, ``group_names``, and ``shared``: the
    :class:`photostyle.ops.colour.SharedFit` (None where not fitted)."""
    from photostyle.core.photo import sha256_bytes
    from photostyle.ops.colour import SharedFit

    d = json.loads(Path(path).read_bytes())
    out = []
    for unit, entry in sorted(d["units"].items()):
        head = {"method": d["method"], "style": d["style"], "scope": d["scope"], "unit": unit}
        digest = sha256_bytes(json.dumps({**head, **entry}, sort_keys=True).encode())
        out.append({**head, "code_version": d.get("code_version", ""), "error": "", **entry, "digest": digest,
                    "shared": SharedFit.from_dict(entry["fit"]) if entry.get("fit") else None})
    return out


def load_fits(paths) -> dict:
    """``(style, unit) -> (SharedFit or None, digest, error)`` of fit files (:func:`read_fits`)."""
    return {(u["style"], u["unit"]): (u["shared"], u["digest"], u["error"]) for p in paths for u in read_fits(p)}
