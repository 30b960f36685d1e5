"""MUNIT: training (losses, resumption) and multimodal translation (photostyle.nets.munit)."""

import numpy as np
import pytest
import torch

from conftest import smooth_photo
from photostyle.core.io import read_csv_dicts
from photostyle.nets import munit

CPU = torch.device("cpu")


def _cfg(**kw):
    from photostyle.config import validate_config

    cfg = dict(validate_config({})["translation"], seed=1, dim=8, n_res=1, style_dim=4, mlp_dim=16, image_size=32,
               dis_layers=2, dis_scales=2, batch_size=1, learning_rate=1e-3, log_every=1000, checkpoint_every=1000)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def domains():
    a = [smooth_photo(40, 48, seed=i) for i in range(3)]
    b = [np.clip(smooth_photo(40, 48, seed=10 + i) * np.array([1.2, 0.8, 0.5]), 0, 255).astype(np.uint8)
         for i in range(3)]
    return a, b


def _train(d, domains, cfg, stop_after=None):
    d.mkdir(exist_ok=True)
    return munit.train(*domains, cfg, d / "model.pt", d / "checkpoint.pt", d / "losses.csv",
                       {"config_hash": "h"}, CPU, stop_after=stop_after)


def test_a_few_steps_lower_the_reconstruction_losses(tmp_path, domains):
    _train(tmp_path, domains, _cfg(steps=40))
    rows = read_csv_dicts(tmp_path / "losses.csv")
    assert len(rows) == 40 and set(rows[0]) == set(munit.LOSS_COLUMNS)
    for loss in ("recon_x", "recon_c"):
        first = np.mean([float(r[loss]) for r in rows[:5]])
        last = np.mean([float(r[loss]) for r in rows[-5:]])
        assert last < 0.8 * first, (loss, first, last)
    model, meta = munit.load_model(tmp_path / "model.pt", CPU)
    assert meta == {"config_hash": "h"} and model.style_dim == 4


def test_killed_and_resumed_training_equals_uninterrupted(tmp_path, domains):
    cfg = _cfg(steps=6, checkpoint_every=2)
    _train(tmp_path / "a", domains, cfg)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", domains, cfg, stop_after=3)  # killed after step 3: step 3 is lost
    assert not (tmp_path / "b" / "model.pt").exists()
    _train(tmp_path / "b", domains, cfg)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_csv_dicts(tmp_path / "a" / "losses.csv"), read_csv_dicts(tmp_path / "b" / "losses.csv")
    assert [r["total"] for r in la] == [r["total"] for r in lb]


def test_random_style_codes_are_modes_and_seeds_repeat(tmp_path, domains):
    _train(tmp_path, domains, _cfg(steps=2))
    model, _ = munit.load_model(tmp_path / "model.pt", CPU)
    x = torch.from_numpy(smooth_photo(32, 48, seed=5)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = {s: munit.translate(model, x, munit.random_style_code(model, s, CPU)) for s in (1, 2)}
        again = munit.translate(model, x, munit.random_style_code(model, 1, CPU))
    assert out[1].shape == x.shape and float(out[1].min()) >= 0 and float(out[1].max()) <= 1
    assert torch.equal(out[1], again)
    assert float((out[1] - out[2]).abs().mean()) > 1e-4


def test_the_workflow_trains_one_model_per_domain_and_names_a_missing_one(tiny_collection):
    import yaml

    from conftest import run_snakemake, scheduled_jobs

    tmp, cfg_path, cfg = tiny_collection
    cfg = {**cfg, "stylize": {"methods": ["munit"]}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp, cfg_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "methods.munit.domain" in proc.stdout + proc.stderr
    cfg["methods"] = {"munit": {"domain": str(tmp / "styles")}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    jobs = scheduled_jobs(run_snakemake(tmp, cfg_path, "-n", "--cores", "1").stdout)
    trains = [w for r, w in jobs if r == "train_model"]
    assert len(trains) == 1 and trains[0]["trainer"] == "munit" and trains[0]["key"].startswith("styles-")
    listing = next((tmp / "results" / "train" / "lists").glob("domain_styles-*.csv"))
    assert {"warm.png", "cool.png"} <= {line.split(",")[0] for line in listing.read_text().split()}
