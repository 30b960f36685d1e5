"""What a dry run plans: the names of style jobs, and which jobs ask for the GPU (issue 27)."""

from __future__ import annotations

import yaml

from conftest import run_snakemake, scheduled_jobs


def test_styles_are_named_by_their_file_names(tiny_collection):
    """Style folders, report grids and jobs are named ``warm``/``cool``, not ``warm-<hash>``."""
    tmp, cfg_path, cfg = tiny_collection
    out = run_snakemake(tmp, cfg_path, "-n").stdout
    styles = sorted(w["style"] for rule, w in scheduled_jobs(out) if rule == "report_grid")
    assert styles == ["cool", "warm"]
    parts = sorted(w["part"] for rule, w in scheduled_jobs(out) if rule == "ingest" and w["kind"] == "style")
    assert parts == ["cool", "warm"]


def _gpu_requests(tmp, cfg_path, cfg, **overrides) -> dict[tuple, int]:
    """(rule, method or kind) -> the gpu resource its jobs request, from a dry run's job list."""
    cfg_path.write_text(yaml.safe_dump({**cfg, **overrides}))
    out = run_snakemake(tmp, cfg_path, "-n", "--resources", "gpu=1").stdout
    found, rule, key = {}, None, None
    for line in out.splitlines():
        s = line.strip()
        if s.startswith(("rule ", "localrule ")) and s.endswith(":"):
            rule, key = s.split()[1].rstrip(":"), None
        elif s.startswith("wildcards:"):
            w = dict(p.strip().partition("=")[::2] for p in s[len("wildcards:"):].split(","))
            key = w.get("method") or w.get("kind")
        elif s.startswith("resources:") and rule:
            res = dict(p.strip().partition("=")[::2] for p in s[len("resources:"):].split(","))
            found[(rule, key)] = int(res.get("gpu", 0))
    return found


def test_cpu_methods_request_no_gpu(tiny_collection):
    """reinhard and mkl, k-means segmentation and export never wait for the GPU token."""
    tmp, cfg_path, cfg = tiny_collection
    req = _gpu_requests(tmp, cfg_path, cfg, device="auto", stylize={"methods": ["reinhard", "mkl"]},
                        segmentation={"model": "kmeans"}, refine={"enabled": False})
    assert ("stylize", "reinhard") in req and ("stylize", "mkl") in req and ("export", None) in req, req
    assert ("segment", "content") in req, req
    assert {k: v for k, v in req.items() if v} == {}


def test_a_neural_method_requests_the_gpu_unless_the_device_is_cpu(tiny_collection):
    tmp, cfg_path, cfg = tiny_collection
    req = _gpu_requests(tmp, cfg_path, cfg, device="auto", stylize={"methods": ["reinhard", "wct"]},
                        segmentation={"model": "none"})
    assert req[("stylize", "wct")] == 1 and req[("stylize", "reinhard")] == 0, req
    assert req[("export", None)] == 0, req
    req = _gpu_requests(tmp, cfg_path, cfg, device="cpu", stylize={"methods": ["reinhard", "wct"]},
                        segmentation={"model": "none"})
    assert ("stylize", "wct") in req and {k: v for k, v in req.items() if v} == {}, req


def test_a_job_given_no_gpu_runs_on_the_cpu(monkeypatch):
    """cli --gpu 0 (the rule requested none): torch stays on the CPU even with device: cuda."""
    from photostyle.config import validate_config
    from photostyle.core.device import start_job
    from photostyle.stages import stylize as stylize_stage

    monkeypatch.setenv("PHOTOSTYLE_CPU_ONLY", "1")
    settings = stylize_stage.settings(validate_config({"device": "cuda"}), "mkl")
    assert start_job(settings).device.type == "cpu"
