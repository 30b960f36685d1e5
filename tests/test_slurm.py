"""The ``slurm`` profile on a real single-node SLURM (loopback), against a local run.

Needs Debian's ``slurm-wlm`` and ``munge`` and the executor plugin; skipped without them.
Run it with (README, "Running on a cluster"):

    sudo apt-get install slurm-wlm munge
    python -m pip install -e ".[test,cluster]"
    python -m pytest -m slurm
"""

from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, run_snakemake
from slurm_cluster import Cluster, available

pytestmark = pytest.mark.slurm

missing = available()
if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
    missing = (missing + "; " if missing else "") + "snakemake-executor-plugin-slurm not installed"


def outputs(root):
    """Decoded pixels of every stylised and refined image, by relative path."""
    found = {}
    for kind in ("stylized", "refined"):
        for p in sorted((root / "results" / kind).rglob("*.png")):
            found[p.relative_to(root).as_posix()] = np.asarray(Image.open(p))
    return found


@pytest.fixture
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    os.environ.setdefault("USER", "root")
    c = Cluster(root).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.mark.skipif(bool(missing), reason=missing or "")
def test_slurm_profile_runs_the_workflow_and_matches_a_local_run(tiny_collection, tmp_path_factory, cluster):
    tmp, cfg_path, cfg = tiny_collection
    cfg = {**cfg, "segmentation": {"model": "kmeans"}, "metrics": {**cfg["metrics"], "style_distance": False}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    # the shipped profile, unchanged but for what a cluster without an accounting database needs:
    # no account, job states from squeue, quick first status check
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "profile.yaml").read_text())
    profile["default-resources"].pop("slurm_account")
    profile.update({"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2,
                    "latency-wait": 5})
    prof_dir = tmp_path_factory.mktemp("profile")
    (prof_dir / "profile.yaml").write_text(yaml.safe_dump(profile))

    local = tmp_path_factory.mktemp("local")
    run_snakemake(local, cfg_path, "--cores", "2")
    remote = tmp_path_factory.mktemp("remote")
    env = {k: cluster.env[k] for k in ("SLURM_CONF", "PATH")}
    proc = run_snakemake(remote, cfg_path, "--profile", str(prof_dir), env=env)
    log = proc.stdout + proc.stderr
    assert "slurm" in log.lower()

    # jobs really went through SLURM (the plugin names each job's SLURM log by rule or group);
    # light rules stayed on the submitting host (localrules)
    submitted = re.findall(r"has been submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/(\w+?)/", log)
    assert {"rule_segment", "rule_stylize", "rule_refine", "rule_metrics", "group_ingest_batch_ingest"} \
        <= set(submitted), log[-3000:]
    assert not any(k in name for name in submitted for k in ("manifest", "report", "aggregate"))
    assert re.search(r"localrule manifest:", log) and re.search(r"localrule report_grid:", log)

    a, b = outputs(local), outputs(remote)
    assert a and sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for name in ("manifest.csv", "rejected.csv"):
        assert (local / "results" / name).read_text() == (remote / "results" / name).read_text()
