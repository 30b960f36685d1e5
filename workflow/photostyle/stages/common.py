"""What several stages share, kept light (no torch, numpy or pandas): the config keys they
have in common, and reading the style tables. The Snakefile imports the stage modules to read
their settings, so a stage module imports its heavy modules inside its functions."""

from __future__ import annotations

from pathlib import Path

from photostyle.core.io import file_digest, read_csv_dicts, resolve_repo_path

# the index of an image stage (stylize, refine): one row per photo x style
INDEX_COLUMNS = (
    "photo_id", "style", "method", "variant", "shard", "status", "cached", "output", "error", "warning", "regions",
    "runtime_s", "peak_mem_mb", "device", "weights", "config_hash", "code_version",
)
LIMIT_KEYS = ("max_megapixels", "min_side", "max_decode_megapixels")
MATCH_KEYS = ("enabled", "groups_file", "min_pixels", "max_area_ratio", "blur_fraction")


def limits(config: dict) -> dict:
    """The ``ingest`` keys that decide how a photo decodes (every stage that reads photos)."""
    return {k: config["ingest"][k] for k in LIMIT_KEYS}


def job_settings(config: dict, seed: bool = True) -> dict:
    """Device, photo limits and (optionally) the seed: what every compute job depends on."""
    s = {"device": config["device"], "ingest": limits(config)}
    return {**s, "seed": config["seed"]} if seed else s


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
