"""Shared test helpers: small images the tests make themselves, and a Snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers share the cores: torch in each takes its share
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


# Modules with the longest runs first (their measured minutes, largest first), so that the two
# xdist workers start them at once and the short modules fill the gaps: the suite's wall time is
# then about half its work instead of the longest module's start plus its length.
LONG_MODULES = ("test_pipeline.py", "test_fastnet.py", "test_universal.py", "test_grading.py", "test_full_resolution.py",
                "test_what_users_see.py", "test_reproducible.py", "test_munit.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_MODULES)))  # stable: file order otherwise


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """Stage functions called in-process switch autograd off for their job (as the CLI process
    does); restore it, so a test's outcome does not depend on which tests ran before it."""
    import torch

    enabled = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(enabled)


def smooth_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like (H, W, 3) uint8 image: smooth colour gradients plus mild texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([
        0.5 + 0.4 * np.sin(3 * xx + rng.uniform(0, 6)),
        0.5 + 0.4 * np.cos(2 * yy + rng.uniform(0, 6)),
        0.5 + 0.3 * np.sin(2 * (xx + yy) + rng.uniform(0, 6)),
    ], axis=-1)
    base += rng.normal(0, 0.03, size=base.shape)
    return (np.clip(base, 0, 1) * 255).round().astype(np.uint8)


def save(img: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **kw)
    return path


@pytest.fixture
def tiny_collection(tmp_path):
    """3 content photos, 2 styles and one broken file, plus a config for them."""
    content, styles = tmp_path / "photos", tmp_path / "styles"
    for i, (h, w) in enumerate([(40, 56), (48, 40), (36, 60)]):
        save(smooth_photo(h, w, seed=i), content / f"photo {i}.jpg", quality=95)
    (content / "broken.jpg").write_bytes(b"this is not a jpeg")
    warm = smooth_photo(40, 40, seed=10).astype(float) * [1.1, 0.9, 0.6]
    save(np.clip(warm, 0, 255).astype(np.uint8), styles / "warm.png")
    cool = smooth_photo(40, 40, seed=11).astype(float) * [0.6, 0.9, 1.1]
    save(np.clip(cool, 0, 255).astype(np.uint8), styles / "cool.png")
    cfg = {
        "content_dir": str(content), "style_dir": str(styles),
        "ingest": {"shard_size": 100},
        "metrics": {"colour_sample_pixels": 1024, "swd_projections": 16},
        "report": {"grid_photos": 2, "thumb_px": 64},
        "device": "cpu",
    }
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return tmp_path, cfg_path, cfg


def run_snakemake(workdir: Path, configfile: Path, *args: str, check: bool = True,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(configfile), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def scheduled_jobs(dry_run_output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a ``snakemake -n`` run would execute."""
    jobs, rule = [], None
    for line in dry_run_output.splitlines():
        s = line.strip()
        if s.startswith(("rule ", "localrule ")) and s.endswith(":"):
            rule = s.split()[1].rstrip(":")
            jobs.append((rule, {}))
        elif s.startswith("wildcards:") and jobs:
            for part in s[len("wildcards:"):].split(","):
                k, _, v = part.strip().partition("=")
                jobs[-1][1][k] = v
    return jobs


def make_method(name, params=None, *, seed=0, artifacts=None, weights_mode="random"):
    """A method instance as a stylize job makes it (CPU, random pretrained weights unless told)."""
    import torch

    from photostyle.config import validate_config
    from photostyle.methods import get_method

    cls = get_method(name)
    p = {**validate_config({})["methods"][name], **(params or {})}
    parsed = cls.parse(p)
    weights = cls.resolve_weights(parsed, {"mode": weights_mode, "dir": "unused-weights-dir", "download": False}, seed)
    return cls(parsed, torch.device("cpu"), seed=seed, weights=weights, artifacts=artifacts)


def method_for_job(name, params=None, *, seed=0, train_root="unused", styles=()):
    """The same, made the way a stylize job makes it (Method.for_job: weights resolved, artifacts listed)."""
    import torch

    from photostyle.config import validate_config
    from photostyle.methods import get_method

    settings = {"params": {**validate_config({})["methods"][name], **(params or {})}, "seed": seed,
                "weights": {"mode": "random", "dir": "unused", "download": False}}
    return get_method(name).for_job(settings, torch.device("cpu"), list(styles), train_root)


def stylise(method, content, style, masks=None, state=None):
    """One call of a method on one photo; ``state`` (a StyleState) carries style caches and traces."""
    import torch

    state = method.prepare_style(style, "style") if state is None else state
    with torch.no_grad():
        return method(content, state, masks)


SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


def shared_material(path: Path, what: str) -> Path:
    """``path`` under ``../shared`` (read-only material beside the project). A test that needs it
    fails when ``CI=true`` and it is missing (CI has it), and skips with the reason elsewhere."""
    if path.exists():
        return path
    msg = f"{what} not found at {path} (the shared folder beside the project)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + "; CI must have them")
    pytest.skip(msg)


def shared_weights_dir() -> Path:
    """``../shared/weights``: real pretrained networks (see :func:`shared_material`)."""
    shared_material(SHARED_WEIGHTS / "vgg16-imagenet" / "vgg16-imagenet-oxford.pth", "real pretrained weights")
    return SHARED_WEIGHTS


def real_weights_cfg() -> dict:
    """The config's ``weights`` section that finds the shared real weights and downloads nothing."""
    return {"mode": "pretrained", "dir": "/nonexistent-weights", "download": False,
            "search": [str(shared_weights_dir())]}


def sample_photo(name: str = "coffee.jpg") -> np.ndarray:
    return np.asarray(Image.open(REPO / "data" / "content" / name).convert("RGB"))
