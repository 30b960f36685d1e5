"""Byte-identical reruns on CPU for every method family, each run in a fresh process through the
command line the rules call, and results that do not depend on which photos share a job."""

import csv
import hashlib
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, save, smooth_photo
from photostyle.config import validate_config
from photostyle.core.collection import sync_listings
from photostyle.core.photo import PhotoLimits
from photostyle.methods import get_method
from photostyle.nets.fastnet import TransformerNet, save_model
from photostyle.nets.universal import Decoder, save_decoder
from photostyle.stages import stylize as stylize_stage
from photostyle.stages.ingest import ingest_listing

TINY = {  # small enough for a test, large enough that every family does real work
    "gatys": {"style_layers": ["relu1_1", "relu2_1"], "content_layers": ["relu2_1"], "scales": 1, "work_side": 32,
              "iterations": 3},
    "dpst": {"style_layers": ["relu1_1", "relu2_1"], "content_layers": ["relu2_1"], "scales": 1, "work_side": 32,
             "iterations": 3},
    "fast": {},
    "wct": {"levels": [2, 1], "encoder": "vgg19"},
    "adain": {"level": 2},  # on the shipped distilled networks
    "mkl": {},
}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repro")
    for i in range(3):
        save(smooth_photo(28 + 2 * i, 36, seed=i), tmp / "c" / f"p{i}.png")
    save(smooth_photo(30, 30, seed=9), tmp / "s" / "style.png")
    limits = PhotoLimits.from_settings(validate_config({}))
    (shard,) = sync_listings(tmp / "c", tmp / "lc", 1000)
    ingest_listing(tmp / "lc" / f"{shard}.csv", tmp / "c", "content", shard, limits, tmp / "all.csv")
    (sid,) = sync_listings(tmp / "s", tmp / "ls", per_file=True)
    ingest_listing(tmp / "ls" / f"{sid}.csv", tmp / "s", "style", sid, limits, tmp / "style.csv")
    rows = list(csv.DictReader(open(tmp / "all.csv")))
    with open(tmp / "one.csv", "w", newline="") as fh:  # the first photo in a job of its own
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerow(rows[0])
    # trained artifacts the fast and universal methods need: random networks, saved as the trainers do
    train = tmp / "train"
    for name in ("fast", "wct", "adain"):
        cls = get_method(name)
        for art in cls.artifacts(cls.parse(validate_config({"methods": {name: TINY[name]}})["methods"][name]), [sid]):
            torch.manual_seed(0)
            if art.trainer == "fast":
                save_model(art.path(train), TransformerNet(4, 1), {"loss_network": "vgg16=random, seed 0"})
            else:
                args = dict(art.args)
                save_decoder(art.path(train), Decoder(args["level"], args["family"]), {"encoder": "vgg19=random, seed 0"})
    return tmp, rows[0]["id"], sid


def _cli_stylize(tmp, method, table, tag):
    cfg = validate_config({"device": "cpu", "weights": {"mode": "random"}, "segmentation": {"enabled": False},
                           "methods": {method: TINY[method]}})
    out = tmp / tag
    cmd = [sys.executable, "-m", "photostyle", "stylize", "--shard-table", str(tmp / table), "--style-tables",
           str(tmp / "style.csv"), "--method", method, "--settings", json.dumps(stylize_stage.settings(cfg, method)),
           "--out-root", str(out), "--index", str(out / "_index" / method / "x.csv"), "--code-version", "test",
           "--train-root", str(tmp / "train")]
    env = {"PYTHONPATH": str(REPO / "workflow"), "PATH": "/usr/bin:/bin", "HOME": str(tmp)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "_index" / method / "x.csv")))
    assert rows and {r["status"] for r in rows} == {"ok"}, rows
    return {r["photo_id"]: hashlib.sha256(open(r["output"], "rb").read()).hexdigest() for r in rows}


@pytest.mark.parametrize("method", ["gatys", pytest.param("dpst", marks=pytest.mark.slow), "fast", "wct",
                                    pytest.param("adain", marks=pytest.mark.slow)])
def test_reruns_in_fresh_processes_are_byte_identical(collection, method):
    """One method of each family in the default suite (optimisation, trained network, universal);
    dpst and adain, which share their family's code path, with -m slow."""
    tmp, _, _ = collection
    first = _cli_stylize(tmp, method, "all.csv", f"{method}_a")
    second = _cli_stylize(tmp, method, "all.csv", f"{method}_b")
    assert len(first) == 3 and first == second


@pytest.mark.parametrize("method", ["mkl", "gatys"])
def test_a_photos_result_does_not_depend_on_which_photos_share_its_job(collection, method):
    tmp, pid, _ = collection
    alone = _cli_stylize(tmp, method, "one.csv", f"{method}_alone")
    together = _cli_stylize(tmp, method, "all.csv", f"{method}_together")
    assert list(alone) == [pid] and alone[pid] == together[pid]
