# Shared set-up: config validation, the collection scan, wildcards, input functions and final
# targets. What each stage's output depends on is stated by the stage module itself
# (photostyle.stages.<stage>.settings); code versions are derived from their import closures;
# methods and trained models come from the method registry's declarations. No rule or
# function here names a method.
import gc
import inspect
import os
import sys
from pathlib import Path

# The DAG of a 100k-photo collection is a few million Python objects (Snakemake's jobs, ours:
# the 100k-entry scan). With CPython's default thresholds the cyclic garbage collector runs a
# full pass over all of them again and again: about 1 s of a 6-7 s dry run (measured with
# gc.callbacks, docs/benchmarks.md). Objects made so far (Snakemake's own modules) are frozen out
# of those passes, and collections run every 50,000 allocations instead of 700: still collected,
# far less often. The Snakefile freezes again once every rule is defined.
gc.freeze()
gc.set_threshold(50_000, 20, 20)

from snakemake.common import overwrite_function_params
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.19")

# The package is pip-installed (`pip install -e .`); this keeps a plain checkout working too.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

import yaml  # noqa: E402
from photostyle.config import canonical_json, default_config_path, validate_config  # noqa: E402
from photostyle.core.collection import sync_listings, sync_training_listing  # noqa: E402
from photostyle.core.provenance import code_version  # noqa: E402
from photostyle.methods import REGISTRY as METHOD_REGISTRY  # noqa: E402
from photostyle.stages import export as export_stage  # noqa: E402
from photostyle.stages import grade as grade_stage  # noqa: E402
from photostyle.stages import ingest as ingest_stage  # noqa: E402
from photostyle.stages import metrics as metrics_stage  # noqa: E402
from photostyle.stages import refine as refine_stage  # noqa: E402
from photostyle.stages import report as report_stage  # noqa: E402
from photostyle.stages import segment as segment_stage  # noqa: E402
from photostyle.stages import stylize as stylize_stage  # noqa: E402
from photostyle.stages import train as train_stage  # noqa: E402
from photostyle.stages.common import segmentation_on  # noqa: E402

if not workflow.overwrite_configfiles:  # no --configfile: the shipped default (sample data), --config on top
    from snakemake.utils import update_config

    with open(default_config_path(), encoding="utf-8") as _fh:
        _default = yaml.safe_load(_fh) or {}
    update_config(_default, dict(config))  # what --config gave (nested keys merge: stylize={scope: folder})
    config.clear()
    config.update(_default)
_validated = validate_config(config)  # stops here, naming every bad key, before any job
config.clear()
config.update(_validated)

RESULTS = "results"
LISTS = f"{RESULTS}/ingest/lists"
TRAIN = f"{RESULTS}/train"


def _python():
    """The interpreter jobs run `python -m photostyle` with: the one that runs this workflow (no
    PATH lookup, so `/path/to/venv/bin/snakemake` works without activating the venv); under
    `--sdm conda` the environment's own python, which has the package (envs/photostyle.yaml).
    Passed to jobs in the environment variable PHOTOSTYLE_PYTHON, not in params: where the
    interpreter lives is not provenance, and moving a venv must not rerun anything."""
    from snakemake.settings.types import DeploymentMethod

    dep = getattr(workflow, "deployment_settings", None)
    if dep is not None and DeploymentMethod.CONDA in dep.deployment_method:
        return "python"
    return sys.executable


os.environ.update(PHOTOSTYLE_PYTHON=_python())  # jobs inherit it (on a cluster node, the job's snakemake sets it)
CONDA_ENV = "../../envs/photostyle.yaml"

for _key in ("content_dir", "style_dir"):  # a mistyped folder must not look like an empty collection
    if not Path(config[_key]).is_dir():
        raise WorkflowError(f"config {_key}: folder '{config[_key]}' does not exist (relative to {Path.cwd()})")

# Scan the collections (names, sizes, mtimes; no file is read) and refresh the listings of
# the shards that changed. Unchanged listings keep their mtime, so nothing else reruns.
_CONTENT = sync_listings(config["content_dir"], f"{LISTS}/content", config["ingest"]["shard_size"])
CONTENT_SHARDS = sorted(_CONTENT)
STYLES = sorted(sync_listings(config["style_dir"], f"{LISTS}/style", per_file=True))
METHODS = list(config["stylize"]["methods"])
SEGMENT = segmentation_on(config)
COLLECTION_ROOT = {"content": config["content_dir"], "style": config["style_dir"]}
PARAMS = {m: METHOD_REGISTRY[m].parse(config["methods"][m]) for m in METHODS}
ARTIFACTS = {m: METHOD_REGISTRY[m].artifacts(PARAMS[m], STYLES) for m in METHODS}  # trained models per method
ARTIFACT_BY_PATH = {a.path(TRAIN).as_posix(): a for arts in ARTIFACTS.values() for a in arts}
TRAIN_ROOT = config["train"]["dataset"] or config["content_dir"]
TRAIN_LISTING = f"{TRAIN}/lists/photos.csv"
if ARTIFACT_BY_PATH:  # the training subset, rewritten only when it changes
    if not Path(TRAIN_ROOT).is_dir():
        raise WorkflowError(f"config train.dataset: folder '{TRAIN_ROOT}' does not exist")
    sync_training_listing(TRAIN_ROOT, TRAIN_LISTING, config["train"]["max_images"])


def domain_listing(art):
    """The listing of a style domain's photos (trainers that learn from a folder: munit)."""
    return f"{TRAIN}/lists/domain_{art.key}.csv"


for _m, _arts in ARTIFACTS.items():  # style domains: their listings, rewritten only when they change
    for _art in _arts:
        _domain = dict(_art.args).get("domain")
        if _domain is None:
            continue
        if not _domain or not Path(_domain).is_dir():
            raise WorkflowError(f"config methods.{_m}.domain: the style domain's folder '{_domain}' does not exist "
                                "(set it to a folder of the domain's photos)")
        _section = train_stage.TRAINERS[_art.trainer].section
        sync_training_listing(_domain, domain_listing(_art), config[_section]["max_images"])

wildcard_constraints:
    kind="content|style",
    shard="[0-9a-f]{8}",  # content shard (see photostyle.core.collection)
    style="[A-Za-z0-9][A-Za-z0-9_]*(-[0-9a-f]{12})?",  # style id (photostyle.core.collection.style_ids)
    part="[0-9a-f]{8}|[A-Za-z0-9][A-Za-z0-9_]*(-[0-9a-f]{12})?",  # ingest unit: a content shard or a style
    method="|".join(sorted(METHOD_REGISTRY)),
    trainer="|".join(sorted(train_stage.TRAINERS)),
    key="[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*",  # an artifact's folder under results/train/<trainer>/
    unit="collection|[A-Za-z0-9_]+-[0-9a-f]{8}",  # a folder of the collection, or the whole (core.collection.unit_id)
    stage="ingest|segment",  # a style set (rule style_set)


def as_json(obj):
    return canonical_json(obj)


def _cached(fn):
    """Params are evaluated per job: compute each distinct value once per DAG build."""
    memo = {}

    def wrapper(*args):
        if args not in memo:
            memo[args] = fn(*args)
        return memo[args]

    return wrapper


def _resource_signature_once():
    """Snakemake asks for the signature of ``Resource.evaluate`` twice per job (threads, tmpdir) via
    inspect.signature; state it once with Snakemake's own helper, as job_function does for ours."""
    try:
        from snakemake.resources import Resource

        overwrite_function_params(Resource.evaluate, inspect.signature(Resource("_probe", 1).evaluate).parameters)
    except (ImportError, AttributeError, TypeError):  # another Snakemake layout: only slower
        pass


_resource_signature_once()


def job_function(fn):
    """Mark an input, param or resource function. Snakemake asks for the signature of every such
    callable of every job (inspect.signature, a large part of a 100k-photo DAG build: 1868 jobs x
    several callables); stating it once here makes that a lookup. Every callable in a rule is one
    of these (tests/test_architecture.py checks)."""
    overwrite_function_params(fn, inspect.signature(fn).parameters)
    return fn


# --- params: exactly the config (and code) that affects each stage's output -------------
STAGES = {"grade": grade_stage, "ingest": ingest_stage, "segment": segment_stage, "train": train_stage, "stylize": stylize_stage,
          "refine": refine_stage, "metrics": metrics_stage, "report": report_stage, "export": export_stage}
stage_settings = _cached(lambda stage, *a: as_json(STAGES[stage].settings(config, *a)))
stage_code = _cached(lambda *roots: code_version(*roots))


@job_function
def stylize_code(wildcards):
    return stage_code(*stylize_stage.code_roots(wildcards.method))


def method_settings(stage):
    """The param of a per-method stage's settings (stylize)."""
    return job_function(lambda wildcards: stage_settings(stage, wildcards.method))


# --- paths and input functions -----------------------------------------------------------
def ingest_table(kind, shard):
    return f"{RESULTS}/ingest/{kind}/{shard}.csv"


@job_function
def ingest_root(wildcards):
    return COLLECTION_ROOT[wildcards.kind]


def index_path(stage, method, shard):
    """The shard index of a per-method stage (stylize): one row per photo x style, with status
    and provenance. Images go beside it, under results/<stage>/ (the CLI derives that folder)."""
    return f"{RESULTS}/{stage}/_index/{method}/{shard}.csv"


def shard_index(stage, shard):
    """The shard index of a stage that runs one job per shard for every method (refine, export)."""
    return f"{RESULTS}/{stage}/_index/all/{shard}.csv"


@_cached
def refine_enabled(method):
    return refine_stage.settings_for(config["refine"], method)["enabled"]


REFINED = [m for m in METHODS if refine_enabled(m)]  # methods with a refine step
EXPORT_VARIANTS = {m: export_stage.variant_for(config, m in REFINED) for m in METHODS}

# --- resources: a job requests the GPU (resources gpu=1) only where its work runs on one, and
# never with device: cpu. Each job passes its request to the CLI (--gpu), and a job given none
# runs on the CPU, so CPU jobs (reinhard, mkl, quilting, export, k-means) never wait for the GPU
# token nor go to a GPU partition. Decided once per DAG build: the rules read constants and one
# dict lookup per stylize job.
GPU_ON = config["device"] != "cpu"
STYLIZE_GPU = {m: int(GPU_ON and METHOD_REGISTRY[m].uses_gpu) for m in METHODS}  # Method.uses_gpu
SEGMENT_GPU = int(GPU_ON and SEGMENT and config["segmentation"]["model"] in segment_stage.NETWORKS)
REFINE_GPU = int(GPU_ON)  # smoothing (CG), lift and domain transform run in torch on the job's device
EXPORT_GPU = 0  # re-lifts the odd tiff16 result: not worth holding the GPU for
TRAIN_GPU = int(GPU_ON)


@job_function
def stylize_gpu(wildcards):
    return STYLIZE_GPU[wildcards.method]


def outputs_of(shard):
    """Shard indexes measured by metrics: raw for every method, refined where enabled."""
    return [index_path("stylized", m, shard) for m in METHODS] + ([shard_index("refined", shard)] if REFINED else [])


STYLE_TABLES = [ingest_table("style", s) for s in STYLES]
# Per-shard jobs take every style's ingest table and label-map index as one file each (rules
# style_set, style_segment_set): one input per job instead of one per style, so the DAG of a
# collection does not grow with styles x shards (Snakemake resolves each input of each job).
STYLE_SET = f"{RESULTS}/ingest/style_set.csv"
STYLE_SEGMENT_SET = f"{RESULTS}/segment/style_set.csv"


@job_function
def style_set_members(wildcards):
    """The per-style files a style set gathers: ingest tables, or label-map indexes."""
    return STYLE_TABLES if wildcards.stage == "ingest" else [segment_index("style", s) for s in STYLES]


def segment_index(kind, part):
    return f"{RESULTS}/segment/{kind}/_index/{part}.csv"


def segment_indexes_of(shard):
    """Label-map indexes of a content shard and of every style (one file; none when segmentation is off)."""
    if not SEGMENT:
        return []
    return [segment_index("content", shard), STYLE_SEGMENT_SET]


# Inputs of the per-shard rules are patterns in {shard}, not functions: Snakemake evaluates every
# input function of every job, a large part of a 100k-photo DAG build.
SHARD_OUTPUTS = outputs_of("{shard}")  # what metrics measures
SHARD_SEGMENTS = segment_indexes_of("{shard}")
REFINE_SOURCES = [index_path("stylized", m, "{shard}") for m in REFINED]
LIFT_SEGMENTS = [segment_index("content", "{shard}")] if SEGMENT and config["lift"]["enabled"] else []
EXPORT_FROM = {m: export_stage.source_for(config, v) for m, v in EXPORT_VARIANTS.items()}  # refined or raw result
EXPORT_SOURCES = ([shard_index("refined", "{shard}")] if "refined" in EXPORT_FROM.values() else []) \
    + [index_path("stylized", m, "{shard}") for m, v in EXPORT_FROM.items() if v == "raw"]
EXPORT_SEGMENTS = LIFT_SEGMENTS if "raw" in EXPORT_FROM.values() else []  # raw results are lifted by export


# --- stylize.scope folder | collection: one colour map per style x folder (or collection) ----
# (photostyle.stages.grade). Units are known from the scan: a folder's id (core.collection.unit_id)
# or "collection"; shards are folder-local, so a unit's photos sit in a few shards and a shard's
# in a few units. Nothing of this is built at scope photo (the default).
SCOPE = config["stylize"]["scope"]
SCOPED = [m for m in METHODS if grade_stage.scope_of(config, m) != "photo"]  # methods fitted per folder/collection
UNIT_SHARDS: dict[str, list[str]] = {}  # unit -> the content shards holding its files
SHARD_UNITS: dict[str, list[str]] = {}  # content shard -> the units of its files
FOLDER_SHARDS: dict[str, list[str]] = {}  # folder -> the content shards holding its files
if SCOPED:
    from photostyle.core.collection import folder_shards as _folder_shards

    FOLDER_SHARDS = _folder_shards(_CONTENT)
    for _folder, _shards in FOLDER_SHARDS.items():
        UNIT_SHARDS.setdefault(grade_stage.folder_unit(_folder, SCOPE), set()).update(_shards)
    UNIT_SHARDS = {u: sorted(s) for u, s in UNIT_SHARDS.items()}
    for _unit, _shards in UNIT_SHARDS.items():
        for _shard in _shards:
            SHARD_UNITS.setdefault(_shard, []).append(_unit)
# Each unit is fitted by the job of its first shard (its owner): a large folder alone, small
# folders together, so fit jobs are at most shards x methods x styles whatever the folder count.
OWNED_UNITS: dict[str, list[str]] = {}  # owner shard -> the units it fits
for _unit, _shards in UNIT_SHARDS.items():
    OWNED_UNITS.setdefault(_shards[0], []).append(_unit)
OWNED_SAMPLES = {o: sorted({s for u in us for s in UNIT_SHARDS[u]}) for o, us in OWNED_UNITS.items()}
SHARD_FIT_OWNERS = {s: sorted({UNIT_SHARDS[u][0] for u in us}) for s, us in SHARD_UNITS.items()}
GRADE_LABELS = grade_stage.uses_labels(config, METHODS)
# the report's shoot grids: the first report.grid_folders folders (by path), each with its shards
SHOOT_FOLDERS = {grade_stage.folder_unit(f, "folder"): f for f in list(FOLDER_SHARDS)[:config["report"]["grid_folders"]]}


def grade_sample_path(shard):
    return f"{RESULTS}/grade/samples/{shard}.npz"


def grade_fit_path(method, style, owner):
    """The fits of the units whose first shard is ``owner``."""
    return f"{RESULTS}/grade/fit/{method}/{style}/{owner}.json"


GRADE_SAMPLE_SEGMENTS = [segment_index("content", "{shard}")] if GRADE_LABELS else []


@job_function
def grade_fit_inputs(wildcards):
    """An owner shard's fits read the samples of the shards holding its units' photos, and the style."""
    if wildcards.shard not in OWNED_SAMPLES:
        raise WorkflowError(f"stylize.scope {SCOPE}: shard {wildcards.shard} is the first shard of no folder")
    inputs = {"samples": [grade_sample_path(s) for s in OWNED_SAMPLES[wildcards.shard]],
              "style": ingest_table("style", wildcards.style), "segments": []}
    if GRADE_LABELS and METHOD_REGISTRY[wildcards.method].uses_regions:
        inputs["segments"] = segment_index("style", wildcards.style)
    return inputs


@job_function
def grade_fit_units(wildcards):
    return " ".join(OWNED_UNITS[wildcards.shard])  # ids: letters, digits, _ and -


@job_function
def grade_fit_settings(wildcards):
    return stage_settings("grade", "fit", wildcards.method)


@job_function
def grade_fit_code(wildcards):
    return stage_code("stages.grade", METHOD_REGISTRY[wildcards.method].module())


@job_function
def _stylize_fits(wildcards):
    """Scoped methods: the fit files holding the shard's units, every style."""
    if wildcards.method not in SCOPED:
        return []
    return [grade_fit_path(wildcards.method, style, owner) for owner in SHARD_FIT_OWNERS.get(wildcards.shard, ())
            for style in STYLES]


STYLIZE_FITS = _stylize_fits if SCOPED else []  # no input function per stylize job at scope photo


# export.luts: the scoped methods' LUTs, written by the export job of a shard: a unit's LUTs by
# its owner (first) shard, a photo's (scope photo) by its own shard.
LUT_SETTINGS = export_stage.lut_settings(config, METHODS)
LUT_OUTPUT = [f"{RESULTS}/export/_index/luts/{{shard}}.csv"] if LUT_SETTINGS else []
LUT_RAW_INDEXES = [index_path("stylized", m, "{shard}") for m in METHODS
                   if LUT_SETTINGS and SCOPE == "photo" and METHOD_REGISTRY[m].scoped]


@job_function
def _export_lut_fits(wildcards):
    """The fits whose LUTs this shard's export job writes (those of the units it owns)."""
    if wildcards.shard not in OWNED_UNITS:
        return []
    return [grade_fit_path(m, style, wildcards.shard) for m in SCOPED for style in STYLES]


EXPORT_LUT_FITS = _export_lut_fits if LUT_SETTINGS and SCOPED else []  # no input function per job otherwise


@job_function
def shoot_grid_inputs(wildcards):
    """A folder's shoot grid reads the raw results of its shards (and their label maps)."""
    shards = FOLDER_SHARDS[SHOOT_FOLDERS[wildcards.unit]]
    inputs = {"manifest": f"{RESULTS}/manifest.csv", "style": ingest_table("style", wildcards.style),
              "indexes": [index_path("stylized", m, s) for s in shards for m in SCOPED], "segments": []}
    if SEGMENT and any(METHOD_REGISTRY[m].uses_regions for m in SCOPED):
        inputs["segments"] = [segment_index("content", s) for s in shards] + [segment_index("style", wildcards.style)]
    return inputs


@job_function
def shoot_folder(wildcards):
    return SHOOT_FOLDERS[wildcards.unit]


@job_function
def stylize_segment_indexes(wildcards):
    """The label maps stylize uses: none for methods that do not use regions."""
    if not METHOD_REGISTRY[wildcards.method].uses_regions:
        return []
    return segment_indexes_of(wildcards.shard)


@job_function
def stylize_models(wildcards):
    """The trained models the method declares (per style, or shared such as decoders)."""
    return [a.path(TRAIN).as_posix() for a in ARTIFACTS[wildcards.method]]


def artifact_of(wildcards):
    path = f"{TRAIN}/{wildcards.trainer}/{wildcards.key}/model.pt"
    if path not in ARTIFACT_BY_PATH:
        raise WorkflowError(f"{path}: no selected method declares this model")
    return ARTIFACT_BY_PATH[path]


@job_function
def train_inputs(wildcards):
    """The training listing, and the style's ingest table for per-style trainers."""
    art = artifact_of(wildcards)
    inputs = {"listing": TRAIN_LISTING}
    if art.style is not None:
        inputs["style"] = ingest_table("style", art.style)
    if "domain" in dict(art.args):
        inputs["domain"] = domain_listing(art)
    return inputs


@job_function
def train_settings(wildcards):
    return stage_settings("train", wildcards.trainer)


@job_function
def train_args(wildcards):
    art = artifact_of(wildcards)
    args = f"--args {as_json(dict(art.args))!r}"
    if "domain" in dict(art.args):
        args += f" --domain-listing {domain_listing(art)!r}"
    return args + (f" --style-table {ingest_table('style', art.style)}" if art.style is not None else "")


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


@job_function
def segmentation_sheet_indexes(wildcards):
    return [segment_index("content", s) for s in grid_shards()] + [segment_index("style", s) for s in STYLES]


@job_function
def grid_indexes(wildcards):
    return [p for shard in grid_shards() for p in outputs_of(shard)]


@job_function
def loss_indexes(wildcards):
    """Stylize indexes of the grid sample, for methods that leave loss traces."""
    return [index_path("stylized", m, shard) for shard in grid_shards() for m in METHODS
            if METHOD_REGISTRY[m].traces]


@job_function
def training_logs(wildcards):
    """Loss logs of the training runs the selected methods need."""
    return sorted(p.replace("model.pt", "losses.csv") for p in ARTIFACT_BY_PATH)


def wants_loss_report():
    return any(METHOD_REGISTRY[m].traces for m in METHODS) or bool(ARTIFACT_BY_PATH)


@job_function
def all_ingest_tables(wildcards):
    return [ingest_table("content", s) for s in CONTENT_SHARDS] + STYLE_TABLES


@job_function
def all_metric_tables(wildcards):
    return [f"{RESULTS}/metrics/shards/{shard}.csv" for shard in CONTENT_SHARDS]


def final_targets():
    targets = [f"{RESULTS}/manifest.csv", f"{RESULTS}/metrics/per_image.csv",
               f"{RESULTS}/report/metrics_scatter.png", f"{RESULTS}/report/runtimes.png"]
    targets += [f"{RESULTS}/report/tables/{name}.html" for name in ("summary", "issues", "per_image", "rejected")]
    targets += [f"{RESULTS}/report/grid_{style}.png" for style in STYLES]
    if SEGMENT:
        targets.append(f"{RESULTS}/report/segmentation.png")
    targets += [f"{RESULTS}/report/shoot/{style}/{unit}.png" for style in STYLES for unit in SHOOT_FOLDERS]
    if wants_loss_report():
        targets.append(f"{RESULTS}/report/losses.png")
    if config["export"]["enabled"]:
        targets += [shard_index("export", shard) for shard in CONTENT_SHARDS]
    return targets
