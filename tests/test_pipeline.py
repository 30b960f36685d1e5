"""Full Snakemake runs on tiny data in a temporary directory (the README test command runs these).

One real run of the whole chain (ingest -> stylize -> refine -> metrics -> report), then
dry runs that check what a change reruns.
"""

import copy
import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake, save, scheduled_jobs, smooth_photo
from photostyle.core.collection import assign_shards
from photostyle.core.io import read_csv_dicts, read_png_text


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    content, styles = tmp / "photos", tmp / "styles"
    for i, (h, w) in enumerate([(40, 56), (48, 40), (36, 60)]):
        save(smooth_photo(h, w, seed=i), content / f"photo {i}.jpg", quality=95)
    (content / "broken.jpg").write_bytes(b"this is not a jpeg")
    warm = np.clip(smooth_photo(40, 40, seed=10) * np.array([1.1, 0.9, 0.6]), 0, 255).astype(np.uint8)
    cool = np.clip(smooth_photo(40, 40, seed=11) * np.array([0.6, 0.9, 1.1]), 0, 255).astype(np.uint8)
    save(warm, styles / "warm.png")
    save(cool, styles / "cool.png")
    cfg = {
        "content_dir": str(content), "style_dir": str(styles), "device": "cpu",
        "ingest": {"shard_size": 2},
        "metrics": {"colour_sample_pixels": 1024, "swd_projections": 16, "style_distance": True},
        "report": {"grid_photos": 2, "thumb_px": 64},
        "export": {"enabled": False},  # deliverables: tests/test_full_resolution.py
    }
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    # Snakemake called by its interpreter without the venv on PATH (as `/path/to/venv/bin/snakemake`
    # without activating it): jobs must not look the package's CLI up on PATH
    bare = "/usr/bin:/bin"
    assert shutil.which("photostyle", path=bare) is None
    proc = run_snakemake(tmp, cfg_path, "--cores", "2", env={"PATH": bare})
    (tmp / "run.log").write_text(proc.stdout + proc.stderr)
    return tmp, cfg_path, cfg


def _dry_run(tmp, cfg, name):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return scheduled_jobs(run_snakemake(tmp, path, "-n", "--cores", "1").stdout)


def _digests(results):
    """sha256 of every stylised and refined image, keyed by its path under results/."""
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
            for stage in ("stylized", "refined") for p in sorted((results / stage).rglob("*.png"))}


def test_every_input_accounted_for(pipeline):
    tmp, _, cfg = pipeline
    manifest = read_csv_dicts(tmp / "results" / "manifest.csv")
    rejected = read_csv_dicts(tmp / "results" / "rejected.csv")
    assert sorted(r["relpath"] for r in manifest if r["kind"] == "content") == [f"photo {i}.jpg" for i in range(3)]
    assert [(r["relpath"], r["kind"]) for r in rejected] == [("broken.jpg", "content")]
    assert "not an image" in rejected[0]["reason"]
    assert len({r["shard"] for r in manifest if r["kind"] == "content"}) == 2


def test_results_land_where_the_readme_says_and_the_run_ends_with_a_summary(pipeline):
    tmp, _, _ = pipeline
    res = tmp / "results"
    seg = [r for p in (res / "segment").glob("*/_index/*.csv") for r in read_csv_dicts(p)]
    assert seg and all(r["labels"].startswith(f"results/segment/{r['kind']}/") for r in seg)
    assert all(r["overlay"].startswith("results/segment/overlay/") and (tmp / r["labels"]).exists() for r in seg)
    assert sorted(p.name for p in res.iterdir() if p.is_dir()) == [
        "benchmarks", "ingest", "logs", "metrics", "refined", "report", "segment", "stylized"]
    # 3 photos x 2 styles x 2 methods x {raw, refined}, all made, all with the k-means fallback (no
    # Segformer weights here): the console says so, and one line counts them at the end
    log = (tmp / "run.log").read_text()
    assert ("photostyle: segmentation fell back to features for 3 photos (segformer-b2-ade20k weights unavailable)\n"
            "photostyle: 24 outputs ok (24 with warnings), 0 failed, 0 skipped; listed in results/metrics/issues.csv"
            ) in log
    issues = read_csv_dicts(res / "metrics" / "issues.csv")
    assert len(issues) == 24 and all(r["warning"].startswith("segmentation fell back to features") for r in issues)
    # CPU-heavy rules declare threads and the jobs use them (--cores 2 here): recorded in every output
    devices = {r["device"] for r in read_csv_dicts(res / "metrics" / "per_image.csv")}
    assert devices == {"cpu (2 threads)"}, devices
    assert all("cpu (2 threads)" in r["device"] for r in seg)


def test_metrics_tables_cover_every_output(pipeline):
    tmp, _, _ = pipeline
    per_image = pd.read_csv(tmp / "results" / "metrics" / "per_image.csv")
    assert len(per_image) == 3 * 2 * 2 * 2  # photos x styles x methods x {raw, refined}
    assert (per_image["status"] == "ok").all()
    assert per_image["ssim_lum"].between(0, 1).all()
    # every method (raw and refined) moved every photo's colours towards every style
    moved = per_image["colour_dist"] < per_image["colour_dist_content"]
    assert moved.all(), per_image.loc[~moved, ["method", "variant", "photo_id", "style"]]
    assert set(per_image["weights"]) == {"none"} and per_image["device"].str.startswith("cpu").all()
    # no pretrained VGG here: the style distance is computed but flagged as random-weight
    assert per_image["style_dist"].notna().all() and (per_image["style_dist_weights"] == "random, seed 0").all()
    # segmentation ran with the pretrained-feature fallback (no Segformer weights here; the distilled
    # encoder ships with the package), recorded as such
    seg = [r for p in (tmp / "results" / "segment").glob("*/_index/*.csv") for r in read_csv_dicts(p)]
    why = "segformer-b2-ade20k weights unavailable"
    assert seg and {(r["model"], r["label_space"], r["weights"], r["segmenter"]) for r in seg} == {
        ("features", "features", "sha256:d2f059cbcd6669556a43aadef58d20c8b280462c18b60a9e7424a14dd271cd6b "
                                 f"(features cd16x relu4_1; fallback: {why})", f"features (fallback: {why})")}
    assert (per_image["segmenter"] == f"features (fallback: {why})").all()
    # so the per-region distance exists
    assert per_image["colour_dist_regions"].notna().all()
    assert per_image["regions"].str.contains(">").all()
    summary = pd.read_csv(tmp / "results" / "metrics" / "summary.csv")
    assert len(summary) == 2 * 2 * 2 and (summary["n_ok"] == 3).all() and (summary["n_warnings"] == 3).all()


def test_outputs_browsable_with_provenance(pipeline):
    tmp, _, _ = pipeline
    pngs = sorted(p for style in ("warm", "cool") for p in (tmp / "results" / "stylized" / style).glob("*/*.png"))
    assert len(pngs) == 3 * 2 * 2
    text = read_png_text(pngs[0])
    assert {"photostyle:config_hash", "photostyle:code_version", "photostyle:weights", "photostyle:device"} <= set(text)
    assert len([p for style in ("warm", "cool") for p in (tmp / "results" / "refined" / style).glob("*/*.png")]) == 12
    for style in ("warm", "cool"):
        assert (tmp / "results" / "report" / f"grid_{style}.png").exists()
    assert (tmp / "results" / "report" / "metrics_scatter.png").stat().st_size > 1000
    # no temporary files left behind by atomic writes
    assert not [p for p in (tmp / "results").rglob(".*.tmp*")]


def test_complete_run_has_nothing_left_to_do(pipeline):
    tmp, cfg_path, cfg = pipeline
    assert _dry_run(tmp, cfg, "same") == []


def test_method_parameter_change_reruns_only_that_method(pipeline):
    tmp, _, cfg = pipeline
    changed = copy.deepcopy(cfg)
    changed["methods"] = {"mkl": {"eps": 1e-4}}
    jobs = _dry_run(tmp, changed, "mkl_eps")
    rules = {r for r, _ in jobs}
    assert "ingest" not in rules
    stylize = [w for r, w in jobs if r == "stylize"]
    assert len(stylize) == 2 and {w["method"] for w in stylize} == {"mkl"}  # one per shard
    # refine runs one job per shard for every method: mkl's images are recomputed there, the
    # others' reused (tests/stages/test_stylize.py::test_refine_job_covers_every_method...)
    assert sorted(w["shard"] for r, w in jobs if r == "refine") == sorted(w["shard"] for w in stylize)
    assert {"metrics", "aggregate_metrics"} <= rules


def test_refine_setting_change_does_not_rerun_stylisation(pipeline):
    tmp, _, cfg = pipeline
    changed = copy.deepcopy(cfg)
    changed["refine"] = {"sigma_spatial": 30}
    rules = [r for r, _ in _dry_run(tmp, changed, "refine_sigma")]
    assert "stylize" not in rules and "ingest" not in rules
    assert rules.count("refine") == 2 and "metrics" in rules  # one job per shard, every method
    per_method = copy.deepcopy(cfg)
    per_method["refine"] = {"per_method": {"reinhard": {"iterations": 2}}}
    jobs = _dry_run(tmp, per_method, "refine_reinhard")
    assert len([w for r, w in jobs if r == "refine"]) == 2  # which images they recompute: tests/stages
    assert "stylize" not in {r for r, _ in jobs}
    # a method whose refinement is switched off leaves the refine jobs; metrics then measure its raw result only
    off = copy.deepcopy(cfg)
    off["refine"] = {"per_method": {"reinhard": {"enabled": False}}}
    jobs = _dry_run(tmp, off, "refine_off")
    assert "stylize" not in {r for r, _ in jobs} and len([w for r, w in jobs if r == "refine"]) == 2


def _shard_of(names, name):
    return next(s for s, rels in assign_shards(names, 2).items() if name in rels)  # shard_size 2, as in the config


def _index_mtimes(tmp):
    return {str(p.relative_to(tmp)): p.stat().st_mtime_ns for p in (tmp / "results").glob("*/_index/*/*.csv")}


def test_adding_editing_and_removing_a_photo_reruns_only_its_shard(pipeline):
    tmp, cfg_path, cfg = pipeline
    existing = sorted(p.name for p in (tmp / "photos").iterdir())
    old = assign_shards(existing, 2)
    joins = splits = None  # names chosen so that both cases occur
    for k in range(500):
        name = f"added_{k}.jpg"
        if set(assign_shards(existing + [name], 2)) == set(old):
            joins = joins or name
        else:
            splits = splits or name
        if joins and splits:
            break
    assert joins and splits
    # a photo that starts a shard: at most the new shard and the one it split rerun
    extra = tmp / "photos" / splits
    save(smooth_photo(30, 30, seed=6), extra, quality=95)
    try:
        jobs = _dry_run(tmp, cfg, "split")
    finally:
        extra.unlink()
    new_shard = _shard_of(existing + [splits], splits)
    assert new_shard not in old
    for stage in ("stylize", "refine", "metrics"):
        shards = {w["shard"] for r, w in jobs if r == stage}
        assert new_shard in shards and len(shards) <= 2, (stage, shards)
    # a photo that joins an existing shard: a real run recomputes exactly that shard
    shard = _shard_of(existing + [joins], joins)
    assert shard in old
    extra = tmp / "photos" / joins
    before = _index_mtimes(tmp)
    save(smooth_photo(30, 30, seed=5), extra, quality=95)
    try:
        run_snakemake(tmp, cfg_path, "--cores", "2")
        after = _index_mtimes(tmp)
        changed = {k for k in after if after[k] != before.get(k)}
        assert changed and all(k.endswith(f"/{shard}.csv") for k in changed), changed
        rows = [r for p in (tmp / "results" / "stylized" / "_index").rglob(f"{shard}.csv") for r in read_csv_dicts(p)]
        added = {r["photo_id"] for r in rows if r["cached"] == "0"}
        assert len(added) == 1 and next(iter(added)).startswith("added_")  # the others were reused
        # editing it (new content, same name) reruns its shard only
        save(smooth_photo(30, 30, seed=7), extra, quality=95)
        jobs = _dry_run(tmp, cfg, "edited")
        assert {w.get("shard", w.get("part")) for r, w in jobs if r in ("ingest", "stylize", "refine", "metrics")} \
            == {shard}
    finally:
        extra.unlink()
        for p in (tmp / "results").glob("*/*/*/added_*"):  # its outputs, so later tests see the original set
            p.unlink()
    # removing it reruns that shard alone, after which nothing is left to do
    jobs = _dry_run(tmp, cfg, "removed")
    assert {w.get("shard", w.get("part")) for r, w in jobs if r in ("ingest", "stylize", "metrics")} == {shard}
    run_snakemake(tmp, cfg_path, "--cores", "2")
    assert _dry_run(tmp, cfg, "done") == []


def test_adding_a_style_computes_only_that_style(pipeline):
    tmp, cfg_path, _ = pipeline
    before = _digests(tmp / "results")
    extra = tmp / "styles" / "mono.png"
    save(np.repeat(smooth_photo(30, 30, seed=12)[..., :1], 3, axis=2), extra)
    try:
        run_snakemake(tmp, cfg_path, "--cores", "2")
        rows = pd.concat([pd.read_csv(p) for p in (tmp / "results" / "stylized" / "_index").rglob("*.csv")])
        new = rows["style"] == "mono"
        assert (rows.loc[new, "cached"] == 0).all() and (rows.loc[~new, "cached"] == 1).all()
        after = _digests(tmp / "results")
        assert {k: v for k, v in after.items() if not k.split("/")[1] == "mono"} == before
        assert len(after) == len(before) + 12
    finally:  # back to the original styles; the next run (test_rerun_..., which forces stylize) brings the rest back
        extra.unlink()
        for stage in ("stylized", "refined"):
            shutil.rmtree(tmp / "results" / stage / next(p.name for p in (tmp / "results" / stage).glob("mono")))


def test_rerun_is_byte_identical_and_report_builds(pipeline):
    tmp, cfg_path, _ = pipeline
    report = tmp / "report.html"  # built first, from the complete run
    run_snakemake(tmp, cfg_path, "--report", str(report))
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000
    for needle in ("grid_warm", "grid_cool", "metrics_scatter", "rejected.csv", "per_image.csv"):
        assert needle in html, needle
    before = _digests(tmp / "results")
    for stage in ("stylized", "refined"):
        shutil.rmtree(tmp / "results" / stage)
    # the images again (up to refine: metrics and the report are not what is compared)
    run_snakemake(tmp, cfg_path, "--cores", "2", "--forcerun", "stylize", "--until", "refine")
    assert _digests(tmp / "results") == before and len(before) == 24
    # forced recomputation over existing images (reuse switched off) gives the same bytes
    run_snakemake(tmp, cfg_path, "--cores", "2", "--forcerun", "stylize", "--until", "refine",
                  env={"PHOTOSTYLE_RECOMPUTE": "1"})
    rows = pd.read_csv(next((tmp / "results" / "stylized" / "_index").rglob("*.csv")))
    assert (rows["cached"] == 0).all()
    assert _digests(tmp / "results") == before


def test_a_per_shard_jobs_inputs_do_not_grow_with_the_styles(tmp_path):
    """Every style's ingest row and label-map row reach the per-shard jobs as one file each
    (rule style_set): with 1 or 5 styles, stylize and metrics jobs list the same number of
    inputs, so a collection's DAG does not grow with styles x shards."""
    def inputs(n_styles):
        root = tmp_path / f"s{n_styles}"
        (root / "photos").mkdir(parents=True)
        (root / "styles").mkdir()
        (root / "photos" / "a.jpg").touch()  # a dry run reads names only
        for i in range(n_styles):
            (root / "styles" / f"style_{i}.jpg").touch()
        cfg = root / "config.yaml"
        cfg.write_text(yaml.safe_dump({"content_dir": str(root / "photos"), "style_dir": str(root / "styles"),
                                       "stylize": {"methods": ["reinhard"]}, "segmentation": {"model": "kmeans"}}))
        out = run_snakemake(root, cfg, "-n", "--cores", "1").stdout
        counts, rule = {}, None
        for line in out.splitlines():
            s = line.strip()
            if s.startswith(("rule ", "localrule ")) and s.endswith(":"):
                rule = s.split()[1].rstrip(":")
            elif s.startswith("input:") and rule in ("stylize", "metrics"):
                counts[rule] = len(s[len("input:"):].split(","))
        return counts

    one, five = inputs(1), inputs(5)
    assert set(one) == {"stylize", "metrics"} and one == five, (one, five)
