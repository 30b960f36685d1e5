"""The ``photostyle`` command line: what the Snakemake rules call.

Every subcommand takes its settings as one JSON object (``--settings``), the same object the
rule passes in ``params`` so that a change of it reruns the rule.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from photostyle.core.photo import PhotoLimits


def _settings(text: str) -> dict:
    return json.loads(text) if text else {}


OUT_ROOT_HELP = "where images go (default: the stage's results folder, two levels above the index's folder)"


def _out_root(a) -> str:
    """Where a stage's images go: ``--out-root``, else the stage's folder that holds the index, as
    the rules lay it out: ``results/<stage>/_index/<method or all>/<shard>.csv`` and
    ``results/segment/<kind>/_index/<part>.csv`` give ``results/<stage>``."""
    if a.out_root:
        return a.out_root
    from pathlib import Path

    parents = Path(a.index).parents  # relative stays relative: indexes record the paths as given
    if len(parents) < 3:
        raise SystemExit(f"--index {a.index}: give --out-root (the index is not inside a stage's folder)")
    return str(parents[2])


def cmd_ingest(a):
    from photostyle.stages.ingest import ingest_listing

    s = _settings(a.settings)
    ingest_listing(a.listing, a.root, a.kind, a.shard, PhotoLimits.from_settings(s), a.out)


def cmd_manifest(a):
    from photostyle.stages.ingest import collect_manifest

    n_ok, n_bad = collect_manifest(a.tables, a.manifest, a.rejected)
    logging.info("manifest: %d photos accepted, %d rejected", n_ok, n_bad)


def cmd_concat(a):
    from photostyle.core.io import concat_csv

    n = concat_csv(a.tables, a.out)
    logging.info("%s: %d rows from %d tables", a.out, n, len(a.tables))


def cmd_stylize(a):
    from photostyle.stages.stylize import run_stylize_shard

    run_stylize_shard(a.shard_table, a.style_tables, a.method, _settings(a.settings),
                      _out_root(a), a.index, a.code_version, a.segment_indexes, a.train_root, a.fits)


def cmd_grade_sample(a):
    from photostyle.stages.grade import run_sample_shard

    run_sample_shard(a.shard_table, a.segment_index, _settings(a.settings), a.out)


def cmd_grade_fit(a):
    from photostyle.stages.grade import run_fit

    run_fit(a.samples, a.style_table, a.segment_index, a.method, _settings(a.settings), a.units, a.out, a.code_version)


def cmd_segment(a):
    from photostyle.stages.segment import run_segment_part

    run_segment_part(a.table, a.kind, _settings(a.settings), _out_root(a), a.index, a.code_version)


def cmd_segmentation_sheet(a):
    from photostyle.stages.report import segmentation_sheet

    s = _settings(a.settings)
    segmentation_sheet(a.indexes, a.out, s["grid_photos"])


def cmd_refine(a):
    from photostyle.stages.refine import run_refine_shard

    run_refine_shard(a.shard_table, a.stylize_indexes, _settings(a.settings), _out_root(a), a.index, a.code_version,
                     a.segment_index or None)


def cmd_export(a):
    from photostyle.stages.export import run_export_shard

    run_export_shard(a.shard_table, a.source_indexes, _settings(a.settings), _out_root(a), a.index, a.code_version,
                     a.segment_index or None, a.fits, a.raw_indexes, a.lut_index or None)


def cmd_metrics(a):
    from photostyle.stages.metrics import run_metrics_shard

    run_metrics_shard(a.shard_table, a.style_tables, a.indexes, _settings(a.settings), a.out, a.segment_indexes)


def cmd_aggregate(a):
    from photostyle.stages.metrics import aggregate

    aggregate(a.tables, a.per_image, a.summary, a.issues)


def cmd_grid(a):
    from photostyle.stages.report import image_grid

    s = _settings(a.settings)
    image_grid(a.style, a.manifest, a.style_table, a.indexes, a.out, s["grid_photos"], s["thumb_px"])


def cmd_shoot_grid(a):
    from photostyle.stages.report import shoot_grid

    shoot_grid(a.style, a.folder, a.manifest, a.style_table, a.indexes, _settings(a.settings), a.out, a.segment_indexes)


def cmd_plots(a):
    from photostyle.stages.report import metrics_scatter, runtime_bars

    metrics_scatter(a.per_image, a.scatter)
    runtime_bars(a.benchmarks, a.runtimes)


def cmd_tables(a):
    from photostyle.stages.report import table_html

    if len(a.csv) != len(a.html):
        raise SystemExit("tables: give as many --html pages as --csv tables")
    for csv_path, page in zip(a.csv, a.html):
        table_html(csv_path, page, a.rows)


def cmd_train(a):
    from photostyle.stages.train import run_train

    run_train(a.trainer, a.key, json.loads(a.args), a.listing, a.root, json.loads(a.settings), a.model, a.losses,
              a.code_version, a.style_table, a.domain_listing)


def cmd_losses(a):
    from photostyle.stages.report import loss_curves

    loss_curves(a.out, a.indexes, a.training_logs, a.photos)


def cmd_fetch_weights(a):
    from photostyle.core.weights import REGISTRY, fetch_all

    names = sorted(n for n, s in REGISTRY.items() if s.url) if a.names == ["all"] else a.names
    for name, digest in fetch_all(names, a.weights_dir):
        print(f"{digest}  {name}")


def cmd_weights_status(a):
    from photostyle.core.weights import REGISTRY, WeightsUnavailable, locate

    for name, spec in sorted(REGISTRY.items()):
        try:
            where = str(locate(spec, a.weights_dir, download=False))
        except WeightsUnavailable:
            where = "missing"
        print(f"{name:28s} {where}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photostyle", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--gpu", type=int, default=None,
                   help="GPUs the job was given (the rule's gpu resource); 0: torch runs on the CPU whatever "
                        "the config's device says, so a job without the GPU token never uses the GPU")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch and the Numba kernels (the rule's threads; 0: their defaults)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("ingest", help="validate the files of one shard listing")
    s.add_argument("--listing", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--kind", required=True, choices=["content", "style"])
    s.add_argument("--shard", required=True)
    s.add_argument("--settings", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_ingest)

    s = sub.add_parser("manifest", help="collect shard ingest tables into manifest.csv and rejected.csv")
    s.add_argument("--manifest", required=True)
    s.add_argument("--rejected", required=True)
    s.add_argument("tables", nargs="*")
    s.set_defaults(fn=cmd_manifest)

    s = sub.add_parser("concat", help="one CSV of tables with the same columns (every style's table, for per-shard jobs)")
    s.add_argument("--out", required=True)
    s.add_argument("tables", nargs="*")
    s.set_defaults(fn=cmd_concat)

    s = sub.add_parser("stylize", help="stylise one shard with one method, every style")
    for opt in ("--shard-table", "--method", "--settings", "--index", "--code-version"):
        s.add_argument(opt, required=True)
    s.add_argument("--out-root", default="", help=OUT_ROOT_HELP)
    s.add_argument("--style-tables", nargs="+", required=True)
    s.add_argument("--segment-indexes", nargs="*", default=[])
    s.add_argument("--train-root", default="results/train", help="where trained artifacts are")
    s.add_argument("--fits", nargs="*", default=[], help="stylize.scope folder|collection: the fits of the shard's units")
    s.set_defaults(fn=cmd_stylize)

    s = sub.add_parser("grade-sample", help="stylize.scope folder|collection: pixel samples of one shard's photos")
    for opt in ("--shard-table", "--settings", "--out"):
        s.add_argument(opt, required=True)
    s.add_argument("--segment-index", nargs="?", const="", default="", help="the shard's label maps (where samples carry labels)")
    s.set_defaults(fn=cmd_grade_sample)

    s = sub.add_parser("grade-fit", help="stylize.scope folder|collection: one method's maps for one style, per unit")
    for opt in ("--style-table", "--method", "--settings", "--out", "--code-version"):
        s.add_argument(opt, required=True)
    s.add_argument("--units", nargs="+", required=True, help="the units (folder ids, or collection) to fit")
    s.add_argument("--samples", nargs="*", default=[], help="the sample files of the shards holding the unit's photos")
    s.add_argument("--segment-index", nargs="?", const="", default="", help="the style's label map index (region-aware fits)")
    s.set_defaults(fn=cmd_grade_fit)

    s = sub.add_parser("segment", help="semantic label maps of one ingest table")
    for opt in ("--table", "--kind", "--settings", "--index", "--code-version"):
        s.add_argument(opt, required=True)
    s.add_argument("--out-root", default="", help=OUT_ROOT_HELP)
    s.set_defaults(fn=cmd_segment)

    s = sub.add_parser("segmentation-sheet", help="report figure of segmentation overlays")
    for opt in ("--settings", "--out"):
        s.add_argument(opt, required=True)
    s.add_argument("indexes", nargs="+")
    s.set_defaults(fn=cmd_segmentation_sheet)

    s = sub.add_parser("refine", help="smoothing, lift to full resolution, detail refinement of one shard, every method")
    for opt in ("--shard-table", "--settings", "--index", "--code-version"):
        s.add_argument(opt, required=True)
    s.add_argument("--stylize-indexes", nargs="+", required=True, help="the shard's stylize index of each method")
    s.add_argument("--out-root", default="", help=OUT_ROOT_HELP)
    s.add_argument("--segment-index", nargs="?", default="", help="the shard's content label maps (region-aware lift)")
    s.set_defaults(fn=cmd_refine)

    s = sub.add_parser("export", help="deliverables of one shard, every method: full resolution, EXIF/ICC, the user's tree")
    for opt in ("--shard-table", "--settings", "--index", "--code-version"):
        s.add_argument(opt, required=True)
    s.add_argument("--source-indexes", nargs="+", required=True, help="refined and raw indexes to export from")
    s.add_argument("--out-root", default="", help=OUT_ROOT_HELP)
    s.add_argument("--segment-index", nargs="?", default="", help="the shard's content label maps (region-aware lift)")
    s.add_argument("--lut-index", nargs="?", const="", default="", help="export.luts: the shard's LUT index (the LUTs go under <style>/<method>/luts/)")
    s.add_argument("--fits", nargs="*", default=[], help="the folder/collection fits whose LUTs this shard writes")
    s.add_argument("--raw-indexes", nargs="*", default=[], help="scope photo: the raw stylize indexes of the colour-map methods")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("metrics", help="per-image metrics of one shard (all styles and methods)")
    for opt in ("--shard-table", "--settings", "--out"):
        s.add_argument(opt, required=True)
    s.add_argument("--style-tables", nargs="+", required=True)
    s.add_argument("--indexes", nargs="+", required=True)
    s.add_argument("--segment-indexes", nargs="*", default=[])
    s.set_defaults(fn=cmd_metrics)

    s = sub.add_parser("aggregate", help="per_image.csv and summary.csv from shard metrics")
    s.add_argument("--per-image", required=True)
    s.add_argument("--summary", required=True)
    s.add_argument("--issues", default=None, help="failed, skipped and degraded outputs")
    s.add_argument("tables", nargs="*")
    s.set_defaults(fn=cmd_aggregate)

    s = sub.add_parser("grid", help="report image grid for one style")
    for opt in ("--style", "--manifest", "--style-table", "--settings", "--out"):
        s.add_argument(opt, required=True)
    s.add_argument("indexes", nargs="*")
    s.set_defaults(fn=cmd_grid)

    s = sub.add_parser("shoot-grid", help="report grid of one folder: scope photo vs the configured scope")
    for opt in ("--style", "--folder", "--manifest", "--style-table", "--settings", "--out"):
        s.add_argument(opt, required=True)
    s.add_argument("--segment-indexes", nargs="*", default=[])
    s.add_argument("--indexes", nargs="*", default=[], help="the raw stylize indexes of the folder's shards")
    s.set_defaults(fn=cmd_shoot_grid)

    s = sub.add_parser("plots", help="report plots")
    for opt in ("--per-image", "--scatter", "--runtimes"):
        s.add_argument(opt, required=True)
    s.add_argument("benchmarks", nargs="*")
    s.set_defaults(fn=cmd_plots)

    s = sub.add_parser("tables", help="report tables: each CSV as an HTML page the report shows inside itself")
    s.add_argument("--csv", nargs="+", required=True)
    s.add_argument("--html", nargs="+", required=True)
    s.add_argument("--rows", type=int, default=1000, help="rows shown per table (the CSV keeps them all)")
    s.set_defaults(fn=cmd_tables)

    s = sub.add_parser("train", help="train one artifact a method needs (a trainer's model)")
    for opt in ("--trainer", "--key", "--listing", "--root", "--settings", "--model", "--losses", "--code-version"):
        s.add_argument(opt, required=True)
    s.add_argument("--args", default="{}", help="JSON: the artifact's arguments (e.g. decoder family, level)")
    s.add_argument("--style-table", default=None, help="per-style trainers: the style's ingest table")
    s.add_argument("--domain-listing", default=None, help="munit: the listing of the style domain's photos")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("losses", help="report figure: training losses and optimisation traces")
    s.add_argument("--out", required=True)
    s.add_argument("--indexes", nargs="*", default=[])
    s.add_argument("--training-logs", nargs="*", default=[])
    s.add_argument("--photos", type=int, default=6)
    s.set_defaults(fn=cmd_losses)

    s = sub.add_parser("fetch-weights", help="download and verify pretrained weights (login node)")
    s.add_argument("--weights-dir", default="weights")
    s.add_argument("names", nargs="*", default=["all"])
    s.set_defaults(fn=cmd_fetch_weights)

    s = sub.add_parser("weights-status", help="where each registered weight file is found")
    s.add_argument("--weights-dir", default="weights")
    s.set_defaults(fn=cmd_weights_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.gpu == 0:  # read by each job's set-up (photostyle.core.device.start_job)
        os.environ["PHOTOSTYLE_CPU_ONLY"] = "1"
    if args.threads > 0:  # applied by each job's set-up (photostyle.core.device.apply_threads)
        os.environ["PHOTOSTYLE_THREADS"] = str(args.threads)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
