"""What several stages share, kept light (no torch, numpy or pandas): the config keys they
have in common, and reading the style tables. The Snakefile imports the stage modules to read
their settings, so a stage module imports its heavy modules inside its functions."""

from __future__ import annotations

import re
from pathlib import Path

from photostyle.core.io import file_digest, read_csv_dicts, resolve_repo_path

# the index of an image stage (stylize, refine): one row per photo x style
INDEX_COLUMNS = (
    "photo_id", "style", "method", "variant", "shard", "status", "cached", "output", "error", "warning", "regions",
    "segmenter", "runtime_s", "peak_mem_mb", "device", "weights", "config_hash", "code_version",
)
LIMIT_KEYS = ("work_megapixels", "max_megapixels", "min_side", "max_decode_megapixels")
MATCH_KEYS = ("enabled", "groups_file", "min_pixels", "max_area_ratio", "blur_fraction", "feather_fraction")


# Fallbacks: what ran instead of what was configured. Recorded in the indexes, metrics and the
# outputs' provenance, counted as warnings, and told once per kind on the console at the end of
# the run (metrics.run_summary). Written and read here only, so the texts stay parseable.
FALLBACK_SEGMENTER = re.compile(r"^(?:(?:content|style) )?(?P<used>[^()]+?) \(fallback: (?P<why>[^()]+)\)$")
RANDOM_WEIGHTS = re.compile(r"random weights: (?P<names>[^;]+?) unavailable")


def segmenter_text(name: str, weights: str = "none", fallback: str = "") -> str:
    """The segmenter a label map was made with: ``segformer-ade20k (sha256:...)``, ``kmeans``, or,
    where the configured one could not run, ``kmeans (fallback: segformer-b2-ade20k weights unavailable)``."""
    if fallback:
        return f"{name} (fallback: {fallback})"
    return name if weights in ("", "none") else f"{name} ({weights})"


def pair_segmenter(content: str, style: str) -> str:
    """The segmenters of a content photo and its style photo, once if they are the same."""
    return content if content == style or not style else style if not content else f"content {content}; style {style}"


def segmenter_fallbacks(text: str) -> list[tuple[str, str]]:
    """(segmenter used, why) of each fallback in a ``segmenter`` text."""
    return [(m["used"], m["why"]) for part in text.split("; ") if (m := FALLBACK_SEGMENTER.match(part))]


def fallback_warning(segmenter: str = "", random_weights=()) -> str:
    """The warning of an output made with a fallback: a segmenter other than the configured one,
    or random weights where pretrained ones were unavailable (``weights.mode: auto``)."""
    parts = [f"segmentation fell back to {used} ({why})" for used, why in dict.fromkeys(segmenter_fallbacks(segmenter))]
    if random_weights:
        parts.append(f"random weights: {', '.join(random_weights)} unavailable")
    return "; ".join(parts)


def fallback_lines(rows) -> list[str]:
    """One console line per kind of fallback in the per-image rows (``segmenter``, ``warning``)."""
    seg: dict[tuple[str, str], set] = {}
    rand: dict[str, set] = {}
    for r in rows:
        for used_why in segmenter_fallbacks(r.get("segmenter") or ""):
            seg.setdefault(used_why, set()).add(r.get("photo_id"))
        for m in RANDOM_WEIGHTS.finditer(r.get("warning") or ""):
            rand.setdefault(r.get("method", ""), set()).update(n.strip() for n in m["names"].split(","))
    lines = [f"photostyle: segmentation fell back to {used} for {len(ids)} photo{'s' * (len(ids) != 1)} ({why})"
             for (used, why), ids in sorted(seg.items())]
    lines += [f"photostyle: random weights used by {method} ({', '.join(sorted(names))} unavailable)"
              for method, names in sorted(rand.items())]
    return lines


def limits(config: dict) -> dict:
    """The ``ingest`` keys that decide how a photo decodes (every stage that reads photos)."""
    return {k: config["ingest"][k] for k in LIMIT_KEYS}


def job_settings(config: dict, seed: bool = True) -> dict:
    """Device, photo limits and (optionally) the seed: what every compute job depends on."""
    s = {"device": config["device"], "ingest": limits(config)}
    return {**s, "seed": config["seed"]} if seed else s


ITEM_KEY_PER_METHOD = ("photo_id", "style", "method")  # items of a shard job over every method


def method_section(section: dict, method: str) -> dict:
    """The effective settings of one method in a config section with ``per_method`` overrides
    (``refine``, ``lift``): the section's global keys with the method's override on top.
    (``lift.per_method`` cannot set ``enabled``: it decides every output's size.)"""
    base = {k: v for k, v in section.items() if k != "per_method"}
    return {**base, **section.get("per_method", {}).get(method, {})}


def per_method_job(settings: dict, stage: str) -> tuple[dict, dict, dict]:
    """A shard job over every method (refine, export): ``settings["methods"]`` maps each method
    to what its outputs depend on. Returns that mapping, the settings every method shares (device,
    photo limits: the first's) and each method's config hash, which its outputs' provenance
    carries so that a change to one method leaves the others' outputs current."""
    from photostyle.core.schema import config_hash

    per_method = settings["methods"]
    if not per_method:
        raise ValueError(f"{stage}: no method to {stage}")
    return per_method, next(iter(per_method.values())), {m: config_hash(s) for m, s in per_method.items()}


def photo_major(indexes, keep) -> list[dict]:
    """The rows of ``indexes`` that ``keep(row)`` accepts, photo by photo (then method, style), so
    that a job over every method prepares each photo once."""
    return sorted((e for path in indexes for e in read_csv_dicts(path) if keep(e)),
                  key=lambda e: (e["photo_id"], e["method"], e["style"]))


def segmentation_on(config: dict) -> bool:
    seg = config["segmentation"]
    return bool(seg["enabled"]) and seg["model"] != "none"


def groups_digest(path: str) -> str:
    return file_digest(resolve_repo_path(path))[:12]


def matching_settings(config: dict, keys=MATCH_KEYS) -> dict:
    """How content and style regions are matched (and blended): stylize and metrics."""
    seg = config["segmentation"]
    return {k: seg[k] for k in keys} | {"groups_digest": groups_digest(seg["groups_file"]),
                                        "on_error": on_segmentation_error(seg)}


def on_segmentation_error(config_seg: dict) -> str:
    """``fail`` or ``global``: what happens to a region-aware output whose label map is missing."""
    mode = config_seg.get("on_error", "auto")
    return mode if mode != "auto" else ("fail" if config_seg.get("model") == "labels" else "global")


def read_styles(style_tables) -> list[dict]:
    """Rows of the style ingest tables (one per style photo), sorted by style id."""
    return sorted((r for t in style_tables for r in read_csv_dicts(t)), key=lambda r: r["id"])


def trace_path(image_path) -> Path:
    """Where a method's per-output trace (loss per evaluation) lives: beside the image."""
    return Path(image_path).with_suffix(".trace.csv")


class ContentPhotos:
    """The content photos of a job at both sizes, their label maps, and the lift of a result
    computed at the working size (refine and export). Keeps the current photo only (the
    stages' loops are photo-major), so a job holds one full-resolution photo at a time."""

    def __init__(self, limits, lift_settings: dict, segment_index: str | None = None):
        self.limits, self.lift_settings = limits, lift_settings
        self.labels_rows = {r["photo_id"]: r for r in read_csv_dicts(segment_index) if r["status"] == "ok"} \
            if segment_index else {}
        self._current: tuple[str, tuple] | None = None
        self._labels: tuple[str, tuple] | None = None  # the current photo's (label map, digest)
        self._lift_out = None  # the lift's output buffer, reused while the photo size stays

    def _label_map(self, pid: str):
        """(integer label map, digest of its file) of ``pid``, read once per photo (items are
        photo-major; refine and export ask once per style), or None without a label map."""
        import io

        import numpy as np
        from PIL import Image

        from photostyle.core.photo import sha256_bytes

        row = self.labels_rows.get(pid)
        if row is None:
            return None
        if self._labels is None or self._labels[0] != pid:
            data = Path(row["labels"]).read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                lab = np.asarray(im)
            if lab.ndim == 3:  # colour-coded masks: one integer per colour
                lab = (lab[..., 0].astype(np.int64) << 16) | (lab[..., 1].astype(np.int64) << 8) | lab[..., 2]
            self._labels = (pid, (lab, sha256_bytes(data)[:16]))
        return self._labels[1]

    def labels_digest(self, photo: dict) -> str:
        """Identifies the label map the lift of ``photo`` (its ingest row) uses ("none": one
        region, or no lift: the photo is at its working size already)."""
        lifted = self.lift_settings["enabled"] and (photo["width"], photo["height"]) != (photo["full_width"], photo["full_height"])
        found = self._label_map(photo["id"]) if lifted else None
        return found[1] if found else "none"

    def images(self, row: dict):
        """(the output-size image, the working-size image) of a content photo: full resolution
        with the lift on, else the working size twice."""
        from photostyle.core.photo import load_photo, working_size

        if self._current is None or self._current[0] != row["id"]:
            self._current = None  # release the previous photo before decoding the next
            if self.lift_settings["enabled"]:
                full = load_photo(row["path"], self.limits, expect_sha256=row["sha256"], full=True)[0]
                pair = (full, working_size(full, self.limits))
            else:
                work = load_photo(row["path"], self.limits, expect_sha256=row["sha256"])[0]
                pair = (work, work)
            self._current = (row["id"], pair)
        return self._current[1]

    def lift(self, row: dict, stylised, png: bytes | None = None, settings: dict | None = None):
        """``stylised`` ``(1, 3, h, w)`` at the working size, lifted to the output size (as is
        when the photo is at its working size already, or the lift is off); ``png`` the stylised
        file's bytes, for the colour map a method may have stored in it; ``settings`` the
        method's own lift settings (:func:`method_section`; default: the job's). The lifted tensor is
        this object's buffer, valid until its next lift (refine and export use it before:
        their items run one after the other); each result of a photo reuses it."""
        from photostyle.ops import lift as lift_ops
        from photostyle.ops.colour import ColourMap

        full, work = self.images(row)
        if full.shape == work.shape:
            return stylised
        s = {k: v for k, v in (settings or self.lift_settings).items() if k != "enabled"}
        found = self._label_map(row["id"])
        cmap = ColourMap.from_png(png) if png is not None else None
        model = lift_ops.fit(work, stylised, found[0] if found else None, colour_map=cmap, **s)
        if self._lift_out is None or tuple(self._lift_out.shape[2:]) != full.shape[:2]:
            import torch

            self._lift_out = None  # release the previous size's buffer first
            self._lift_out = torch.empty(1, 3, *full.shape[:2])
        return lift_ops.apply(model, full, out=self._lift_out)
