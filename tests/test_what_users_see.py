"""What a user sees is true (issue #27): one tiny Snakemake run without any pretrained weights.

* Fallbacks (k-means for Segformer, random weights for gatys' VGG-19) reach every place a user
  looks: each output's provenance, the indexes and metrics (``segmenter``, ``warning``), the
  warning counts of ``summary.csv`` and of the run's last line, and one console line per kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake, save, smooth_photo
from photostyle.core.io import read_png_text

FALLBACK = "kmeans (fallback: segformer-b2-ade20k weights unavailable)"


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
    return tmp, proc.stdout + proc.stderr, None


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
        "segmentation fell back to kmeans (segformer-b2-ade20k weights unavailable)", regex=False).all()
    assert per_image.loc[~regional, "warning"].str.contains("random weights: vgg19-imagenet unavailable").all()
    summary = pd.read_csv(res / "metrics" / "summary.csv")
    assert (summary["n_warnings"] == 2).all() and (summary["n_ok"] == 2).all()
    assert len(pd.read_csv(res / "metrics" / "issues.csv")) == 8
    # the console: one line per kind of fallback, then the last line counts them as warnings
    lines = [ln for ln in console.splitlines() if ln.startswith("photostyle: ")]
    assert lines[-3:] == [
        "photostyle: segmentation fell back to kmeans for 2 photos (segformer-b2-ade20k weights unavailable)",
        "photostyle: random weights used by gatys (vgg19-imagenet unavailable)",
        "photostyle: 8 outputs ok (8 with warnings), 0 failed, 0 skipped; listed in results/metrics/issues.csv",
    ], lines
