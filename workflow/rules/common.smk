# Shared set-up: config validation, collection scan, settings per stage, input functions.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.19")

# The package is pip-installed (`pip install -e .`); this keeps a plain checkout working too.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

import yaml  # noqa: E402
from photostyle.config import canonical_json, default_config_path, refine_settings_for, validate_config  # noqa: E402
from photostyle.collection import sync_listings, sync_training_listing  # noqa: E402
from photostyle.methods import REGISTRY as METHOD_REGISTRY  # noqa: E402
from photostyle.provenance import stage_code_version  # noqa: E402
from photostyle.regions import groups_digest  # noqa: E402

if not config:  # no --configfile/--config given: the shipped default (sample data)
    with open(default_config_path(), encoding="utf-8") as _fh:
        config.update(yaml.safe_load(_fh) or {})
_validated = validate_config(config)  # stops here, naming every bad key, before any job
config.clear()
config.update(_validated)

RESULTS = "results"
LISTS = f"{RESULTS}/ingest/lists"

for _key in ("content_dir", "style_dir"):  # a mistyped folder must not look like an empty collection
    if not Path(config[_key]).is_dir():
        raise WorkflowError(f"config {_key}: folder '{config[_key]}' does not exist (relative to {Path.cwd()})")

# Scan the collections (names, sizes, mtimes; no file is read) and refresh the listings of
# the shards that changed. Unchanged listings keep their mtime, so nothing else reruns.
_CONTENT = sync_listings(config["content_dir"], f"{LISTS}/content", config["ingest"]["shard_size"])
CONTENT_SHARDS = sorted(_CONTENT)
STYLES = sorted(sync_listings(config["style_dir"], f"{LISTS}/style", per_file=True))
METHODS = list(config["stylize"]["methods"])
SEG = config["segmentation"]
SEGMENT = SEG["enabled"] and SEG["model"] != "none"
COLLECTION_ROOT = {"content": config["content_dir"], "style": config["style_dir"]}
DECODERS = sorted({(METHOD_REGISTRY[m].decoders, lv) for m in METHODS
                   for lv in METHOD_REGISTRY[m].decoder_levels(config["methods"][m])})  # (family, level)
TRAINS = any(METHOD_REGISTRY[m].per_style_model for m in METHODS) or bool(DECODERS)
TRAIN_ROOT = config["train"]["dataset"] or config["content_dir"]
TRAIN_LISTING = f"{RESULTS}/train/lists/photos.csv"
if TRAINS:  # the training subset, rewritten only when it changes
    if not Path(TRAIN_ROOT).is_dir():
        raise WorkflowError(f"config train.dataset: folder '{TRAIN_ROOT}' does not exist")
    sync_training_listing(TRAIN_ROOT, TRAIN_LISTING, config["train"]["max_images"])

wildcard_constraints:
    kind="content|style",
    shard="[0-9a-f]{8}",  # content shard (see photostyle.collection)
    style="[A-Za-z0-9_]+-[0-9a-f]{12}",  # style photo id
    part="[0-9a-f]{8}|[A-Za-z0-9_]+-[0-9a-f]{12}",  # ingest unit: a content shard or a style
    method="|".join(sorted(METHOD_REGISTRY)),
    family="upsample|unpool",  # decoder family of the universal methods
    level="[1-5]",  # encoder level relu<level>_1


def as_json(obj):
    return canonical_json(obj)


# --- settings carried in params: exactly the config that affects each stage's output ------
def ingest_settings(wildcards):
    return as_json({"ingest": config["ingest"]})


def _limits():
    ing = config["ingest"]
    return {k: ing[k] for k in ("max_megapixels", "min_side", "max_decode_megapixels")}


def segment_settings(wildcards):
    keys = ("model", "segformer_variant", "short_side", "batch_size", "labels_dir", "groups_file", "min_area", "kmeans")
    seg = {k: SEG[k] for k in keys}
    seg["groups_digest"] = groups_digest(SEG["groups_file"])
    s = {"segmentation": seg, "seed": config["seed"], "device": config["device"], "ingest": _limits()}
    if SEG["model"] in ("segformer-ade20k", "deeplabv3"):  # only networks depend on the weights setting
        s["weights"] = config["weights"]
    return as_json(s)


def stylize_settings(wildcards):
    m = METHOD_REGISTRY[wildcards.method]
    s = {"params": config["methods"].get(wildcards.method, {}), "seed": config["seed"],
         "device": config["device"], "ingest": _limits()}
    if m.weights:  # only methods with pretrained networks depend on the weights setting
        s["weights"] = config["weights"]
    if m.per_style_model:  # trained networks: their files are inputs, their digests provenance
        s["models_root"] = f"{RESULTS}/train/{m.name}"
    if m.decoders:  # trained decoders, likewise
        s["decoders_root"] = decoder_root(m.decoders)
    if SEGMENT and m.uses_regions:  # how regions are matched and blended
        keys = ("enabled", "groups_file", "min_pixels", "max_area_ratio", "blur_fraction")
        s["segmentation"] = {k: SEG[k] for k in keys} | {"groups_digest": groups_digest(SEG["groups_file"])}
    return as_json(s)


def decoder_root(family):
    return f"{RESULTS}/train/decoders/{family}"


def decoder_model(family, level):
    return f"{decoder_root(family)}/relu{level}_1/model.pt"


def stylize_models(wildcards):
    """Trained networks the method needs: per style (fast), or decoders (universal methods)."""
    m = METHOD_REGISTRY[wildcards.method]
    if m.per_style_model:
        return [f"{RESULTS}/train/{m.name}/{s}/model.pt" for s in STYLES]
    return [decoder_model(m.decoders, lv) for lv in m.decoder_levels(config["methods"][m.name])]


def train_settings(wildcards):
    return as_json({"train": config["train"], "seed": config["seed"], "device": config["device"],
                    "weights": config["weights"], "ingest": _limits()})


def train_decoder_settings(wildcards):
    return as_json({"decoders": config["decoders"], "seed": config["seed"], "device": config["device"],
                    "weights": config["weights"], "ingest": _limits()})


def stylize_code(wildcards):
    return stage_code_version("stylize", METHOD_REGISTRY[wildcards.method].modules)


def refine_settings(wildcards):
    return as_json({"refine": refine_settings_for(config["refine"], wildcards.method),
                    "device": config["device"], "ingest": _limits()})


def metrics_settings(wildcards):
    s = {"metrics": config["metrics"], "seed": config["seed"], "ingest": _limits(), "device": config["device"]}
    if config["metrics"]["style_distance"]:
        s["weights"] = config["weights"]
    if SEGMENT:
        keys = ("enabled", "groups_file", "min_pixels", "max_area_ratio")
        s["segmentation"] = {k: SEG[k] for k in keys} | {"groups_digest": groups_digest(SEG["groups_file"])}
    return as_json(s)


def metrics_segment_indexes(wildcards):
    return segment_indexes_of(wildcards.shard)


def report_settings(wildcards):
    return as_json(config["report"])


# --- paths and input functions -----------------------------------------------------------
def ingest_table(kind, shard):
    return f"{RESULTS}/ingest/{kind}/{shard}.csv"


def ingest_root(wildcards):
    return COLLECTION_ROOT[wildcards.kind]


def index_path(stage, method, shard):
    """The shard index of a stage: one row per photo x style, with status and provenance."""
    return f"{RESULTS}/{stage}/_index/{method}/{shard}.csv"


def refine_enabled(method):
    return refine_settings_for(config["refine"], method)["enabled"]


def outputs_of(shard):
    """Shard indexes measured by metrics: raw for every method, refined where enabled."""
    paths = [index_path("stylized", m, shard) for m in METHODS]
    paths += [index_path("refined", m, shard) for m in METHODS if refine_enabled(m)]
    return paths


def metrics_indexes(wildcards):
    return outputs_of(wildcards.shard)


def style_tables(wildcards):
    return [ingest_table("style", s) for s in STYLES]


def segment_index(kind, part):
    return f"{RESULTS}/segment/{kind}/_index/{part}.csv"


def segment_indexes_of(shard):
    """Label-map indexes of a content shard and of every style (none when segmentation is off)."""
    if not SEGMENT:
        return []
    return [segment_index("content", shard)] + [segment_index("style", s) for s in STYLES]


def stylize_segment_indexes(wildcards):
    """The label maps stylize uses: none for methods that do not use regions."""
    if not METHOD_REGISTRY[wildcards.method].uses_regions:
        return []
    return segment_indexes_of(wildcards.shard)


def grid_shards():
    """The first shards (in name order) that together list at least report.grid_photos files:
    the report grid samples from these, so it does not depend on all of a large collection."""
    chosen, n = [], 0
    for shard in CONTENT_SHARDS:
        if n >= config["report"]["grid_photos"] + 5:  # a margin for rejected files
            break
        chosen.append(shard)
        n += len(_CONTENT[shard])
    return chosen


def segmentation_sheet_indexes(wildcards):
    return [segment_index("content", s) for s in grid_shards()] + [segment_index("style", s) for s in STYLES]


def grid_indexes(wildcards):
    return [p for shard in grid_shards() for p in outputs_of(shard)]


def loss_indexes(wildcards):
    """Stylize indexes of the grid sample, for methods that leave loss traces."""
    return [index_path("stylized", m, shard) for shard in grid_shards() for m in METHODS
            if METHOD_REGISTRY[m].traces]


def training_logs(wildcards):
    """Loss logs of the training runs the selected methods need."""
    logs = [f"{RESULTS}/train/fast/{s}/losses.csv" for s in STYLES] if "fast" in METHODS else []
    return logs + [decoder_model(f, lv).replace("model.pt", "losses.csv") for f, lv in DECODERS]


def wants_loss_report():
    return any(METHOD_REGISTRY[m].traces for m in METHODS) or bool(training_logs(None))


def all_ingest_tables(wildcards):
    return [ingest_table("content", s) for s in CONTENT_SHARDS] + [ingest_table("style", s) for s in STYLES]


def all_metric_tables(wildcards):
    return [f"{RESULTS}/metrics/shards/{shard}.csv" for shard in CONTENT_SHARDS]


def final_targets():
    targets = [f"{RESULTS}/manifest.csv", f"{RESULTS}/metrics/per_image.csv",
               f"{RESULTS}/report/metrics_scatter.png", f"{RESULTS}/report/runtimes.png"]
    targets += [f"{RESULTS}/report/grid_{style}.png" for style in STYLES]
    if SEGMENT:
        targets.append(f"{RESULTS}/report/segmentation.png")
    if wants_loss_report():
        targets.append(f"{RESULTS}/report/losses.png")
    return targets
