"""What a dry run plans: the names of style jobs, and which jobs ask for the GPU (issue 27)."""

from __future__ import annotations

from conftest import run_snakemake, scheduled_jobs


def test_styles_are_named_by_their_file_names(tiny_collection):
    """Style folders, report grids and jobs are named ``warm``/``cool``, not ``warm-<hash>``."""
    tmp, cfg_path, cfg = tiny_collection
    out = run_snakemake(tmp, cfg_path, "-n").stdout
    styles = sorted(w["style"] for rule, w in scheduled_jobs(out) if rule == "report_grid")
    assert styles == ["cool", "warm"]
    parts = sorted(w["part"] for rule, w in scheduled_jobs(out) if rule == "ingest" and w["kind"] == "style")
    assert parts == ["cool", "warm"]
