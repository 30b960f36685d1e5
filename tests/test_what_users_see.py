"""What a user sees is true (issue #27): one tiny Snakemake run without any pretrained weights,
then its report.

* Fallbacks (k-means for Segformer, random weights for gatys' VGG-16) reach every place a user
  looks: each output's provenance, the indexes and metrics (``segmenter``, ``warning``), the
  warning counts of ``summary.csv`` and of the run's last line, and one console line per kind.
* The report shows every table (rejected files, per-image metrics, summary, issues) as a table,
  not as a ``data:`` link to a CSV that a browser will not open.
"""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake, save, smooth_photo
from photostyle.core.io import read_png_text

FALLBACK = "features (fallback: segformer-b2-ade20k weights unavailable)"


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seen")
    for i, (h, w) in enumerate([(40, 56), (48, 40)]):
        save(smooth_photo(h, w, seed=i), tmp / "photos" / f"photo {i}.jpg", quality=95)
    (tmp / "photos" / "broken.jpg").write_bytes(b"this is not a jpeg")
    warm = np.clip(smooth_photo(40, 40, seed=10) * np.array([1.1, 0.9, 0.6]), 0, 255).astype(np.uint8)
    save(warm, tmp / "styles" / "warm.png")
    cfg = {
        "content_dir": str(tmp / "photos"), "style_dir": str(tmp / "styles"), "device": "cpu",
        "ingest": {"shard_size": 100},
        # no weights anywhere: Segformer falls back to k-means, gatys runs on random VGG-19 weights
        "weights": {"mode": "auto", "dir": str(tmp / "weights"), "download": False},
        "stylize": {"methods": ["reinhard", "gatys"]},
        "methods": {"gatys": {"iterations": 2, "scales": 1, "work_side": 64}},
        "metrics": {"colour_sample_pixels": 1024, "swd_projections": 16},
        "report": {"grid_photos": 2, "thumb_px": 64},
        "export": {"enabled": False},
    }
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    caches = {"TORCH_HOME": str(tmp / "torch"), "HF_HOME": str(tmp / "hf")}  # no cached weights either
    proc = run_snakemake(tmp, cfg_path, "--cores", "2", env=caches)
    report = tmp / "report.html"
    run_snakemake(tmp, cfg_path, "--report", str(report), env=caches)
    return tmp, proc.stdout + proc.stderr, report


def test_fallbacks_are_where_a_user_looks(offline_run):
    tmp, console, _ = offline_run
    res = tmp / "results"
    per_image = pd.read_csv(res / "metrics" / "per_image.csv", dtype=str, keep_default_na=False)
    assert len(per_image) == 2 * 2 * 2  # photos x methods x {raw, refined}
    regional = per_image["method"] == "reinhard"
    # the segmenter actually used, in a metrics column: k-means, and why
    assert (per_image.loc[regional, "segmenter"] == FALLBACK).all(), per_image["segmenter"]
    assert (per_image.loc[~regional, "segmenter"] == "none").all()  # gatys uses no regions
    # ... and in every output's provenance (raw and refined)
    for stage in ("stylized", "refined"):
        for png in (res / stage / "warm" / "reinhard").glob("*.png"):
            assert read_png_text(png)["photostyle:segmenter"] == FALLBACK, png
        for png in (res / stage / "warm" / "gatys").glob("*.png"):
            text = read_png_text(png)
            assert text["photostyle:segmenter"] == "none" and "random, seed 0" in text["photostyle:weights"]
    # counted as warnings: each output's warning, summary.csv, issues.csv and the run's last line
    assert per_image.loc[regional, "warning"].str.contains(
        "segmentation fell back to features (segformer-b2-ade20k weights unavailable)", regex=False).all()
    assert per_image.loc[~regional, "warning"].str.contains("random weights: vgg16-imagenet unavailable").all()
    summary = pd.read_csv(res / "metrics" / "summary.csv")
    assert (summary["n_warnings"] == 2).all() and (summary["n_ok"] == 2).all()
    assert len(pd.read_csv(res / "metrics" / "issues.csv")) == 8
    # the console: one line per kind of fallback, then the last line counts them as warnings
    lines = [ln for ln in console.splitlines() if ln.startswith("photostyle: ")]
    assert lines[-3:] == [
        "photostyle: segmentation fell back to features for 2 photos (segformer-b2-ade20k weights unavailable)",
        "photostyle: random weights used by gatys (vgg16-imagenet unavailable)",
        "photostyle: 8 outputs ok (8 with warnings), 0 failed, 0 skipped; listed in results/metrics/issues.csv",
    ], lines


def _report_results(report) -> dict:
    """The report's ``results`` (path -> entry with name, mime type and data URI)."""
    import json

    html = report.read_text(errors="replace")
    found = re.search(r"var results = (\{.*?\});\s*$", html, re.M)
    assert found, "no results in the report"
    return json.loads(found.group(1))


def test_report_shows_every_table_readably(offline_run):
    tmp, _, report = offline_run
    results = {entry["name"]: entry for entry in _report_results(report).values()}
    for name in ("rejected", "summary", "per_image", "issues"):
        table = results.get(f"{name}.html")
        assert table is not None, f"{name} missing from the report: {sorted(results)}"
        # shown inside the report (an iframe), not offered as a link to a file
        assert table["mime_type"] == "text/html", table["mime_type"]
        assert table["data_uri"].startswith("data:text/html")
        assert not any(e["mime_type"] == "text/csv" for e in results.values())
        page = base64.b64decode(table["data_uri"].split("base64,", 1)[1]).decode()
        assert "<table>" in page and f"results/{'' if name == 'rejected' else 'metrics/'}{name}.csv" in page
        if name in ("per_image", "issues"):
            assert "<th>photo_id</th>" in page and "<th>warning</th>" in page
        if name == "rejected":
            assert "<td>broken.jpg</td>" in page and "not an image" in page
        if name == "per_image":
            assert page.count("<tr>") >= 1 + 8 and f"<td>{FALLBACK}</td>" in page
        if name == "summary":
            assert "<th>n_warnings</th>" in page and "<td>reinhard</td>" in page
    # the home page lists today's stages
    html = report.read_text(errors="replace")
    assert "lift" in html and "export" in html
