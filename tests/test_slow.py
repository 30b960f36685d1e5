"""Slow end-to-end checks, excluded from the default suite (run: python -m pytest -m slow)."""

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import run_snakemake, save, smooth_photo
from photostyle.core.io import read_csv_dicts

pytestmark = pytest.mark.slow


def test_many_shards_with_bad_files_and_nested_folders(tmp_path):
    content, styles = tmp_path / "photos", tmp_path / "styles"
    for i in range(40):
        sub = content / f"roll {i % 4}" / ("nested" if i % 3 == 0 else "")
        save(smooth_photo(30 + i % 7, 40 + i % 5, seed=i), sub / f"IMG_{i:03d}.jpg", quality=90)
    (content / "roll 0" / "truncated.jpg").write_bytes((content / "roll 1" / "IMG_001.jpg").read_bytes()[:200])
    (content / "roll 1" / "empty.png").write_bytes(b"")
    Image.new("RGBA", (64, 48), (200, 10, 10, 0)).save(content / "roll 2" / "transparent.png")
    for s in range(3):
        save(np.clip(smooth_photo(40, 40, seed=100 + s) * [1.0, 0.8 + 0.1 * s, 0.6], 0, 255).astype(np.uint8),
             styles / f"look {s}.png")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"content_dir": str(content), "style_dir": str(styles), "device": "cpu",
                                   "ingest": {"shard_size": 6},
                                   "metrics": {"colour_sample_pixels": 1024, "swd_projections": 8}}))
    run_snakemake(tmp_path, cfg, "--cores", "2")
    manifest = read_csv_dicts(tmp_path / "results" / "manifest.csv")
    rejected = read_csv_dicts(tmp_path / "results" / "rejected.csv")
    files = sorted(str(p.relative_to(content)) for p in content.rglob("*") if p.is_file())
    listed = sorted([r["relpath"] for r in manifest if r["kind"] == "content"] + [r["relpath"] for r in rejected])
    assert listed == files
    assert {r["relpath"] for r in rejected} == {"roll 0/truncated.jpg", "roll 1/empty.png"}
    assert len({r["shard"] for r in manifest if r["kind"] == "content"}) >= 3
    per_image = pd.read_csv(tmp_path / "results" / "metrics" / "per_image.csv")
    assert len(per_image) == 41 * 3 * 2 * 2 and (per_image["status"] == "ok").all()
