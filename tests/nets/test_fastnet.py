"""The fast method's per-style network: training, resuming, inference at any size, tiling."""

import numpy as np
import pytest
import torch

from conftest import run_snakemake, scheduled_jobs, smooth_photo
from photostyle.core.collection import Entry, training_subset
from photostyle.nets.fastnet import LOSS_COLUMNS, TransformerNet, load_model, median3, stylize_photo, train
from photostyle.core.io import read_csv_dicts
from photostyle.nets.vgg import VGGFeatures
from photostyle.core.weights import resolve

CPU = torch.device("cpu")


def _cfg(**kw):
    from photostyle.config import validate_config

    cfg = dict(validate_config({})["train"], seed=3, width=8, residual_blocks=1, image_size=64, batch_size=2,
               content_layers=["relu1_2", "relu2_2"], style_layers=["relu1_2", "relu2_2"], log_every=1000)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def vgg():
    return VGGFeatures("vgg16", resolve("vgg16-imagenet", "random", "-", 0), 0, "relu2_2")


@pytest.fixture(scope="module")
def photos():
    return [smooth_photo(80 + 8 * i, 96, seed=i) for i in range(4)]


def _style():
    return torch.from_numpy(smooth_photo(64, 64, seed=11)).permute(2, 0, 1)[None].float() / 255


def _train(tmp, vgg, photos, cfg, stop_after=None):
    meta = {"config_hash": "h", "loss_network": "vgg16=random, seed 0"}
    return train(_style(), photos, cfg, vgg, tmp / "model.pt", tmp / "checkpoint.pt", tmp / "losses.csv",
                 meta, CPU, stop_after=stop_after)


def test_training_lowers_the_loss(tmp_path, vgg, photos):
    _train(tmp_path, vgg, photos, _cfg(steps=30, learning_rate=1e-2, checkpoint_every=100))
    rows = read_csv_dicts(tmp_path / "losses.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 31)) and set(rows[0]) == set(LOSS_COLUMNS)
    total = np.array([float(r["total"]) for r in rows])
    assert total[-5:].mean() < 0.7 * total[:5].mean()
    net, meta = load_model(tmp_path / "model.pt", CPU)
    assert meta["loss_network"] == "vgg16=random, seed 0" and net.width == 8


def test_photorealism_term_lowers_the_laplacian_energy_of_outputs(tmp_path, vgg, photos):
    """train.photorealism_weight (seed 003's objective): the same training (seed, steps, crops)
    with the matting-Laplacian term gives outputs of lower Laplacian energy on held-out photos
    than without it, and the term is logged."""
    from photostyle.nets.fastnet import photorealism_energy, run_plain

    energies = {}
    for weight in (0.0, 1e3):
        d = tmp_path / str(weight)
        d.mkdir()
        _train(d, vgg, photos, _cfg(steps=25, learning_rate=1e-2, checkpoint_every=100, photorealism_weight=weight))
        net, _ = load_model(d / "model.pt", CPU)
        held = [torch.from_numpy(smooth_photo(64, 64, seed=40 + i)).permute(2, 0, 1)[None].float() / 255
                for i in range(3)]
        with torch.no_grad():
            energies[weight] = float(sum(photorealism_energy(run_plain(net, x), x) for x in held))
        logged = [r["photorealism"] for r in read_csv_dicts(d / "losses.csv")]
        assert all(v == "" for v in logged) if weight == 0 else all(float(v) > 0 for v in logged)
    assert energies[1e3] < 0.5 * energies[0.0], energies


def test_killed_and_resumed_training_equals_uninterrupted(tmp_path, vgg, photos):
    cfg = _cfg(steps=8, checkpoint_every=3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _train(tmp_path / "a", vgg, photos, cfg)
    with pytest.raises(KeyboardInterrupt):  # killed after step 5: steps 4-5 are lost
        _train(tmp_path / "b", vgg, photos, cfg, stop_after=5)
    assert not (tmp_path / "b" / "model.pt").exists()  # nothing that looks finished
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    _train(tmp_path / "b", vgg, photos, cfg)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_csv_dicts(tmp_path / "a" / "losses.csv"), read_csv_dicts(tmp_path / "b" / "losses.csv")
    assert [r["total"] for r in la] == [r["total"] for r in lb]


def test_odd_sizes_keep_their_size_and_tiles_match_whole_photo():
    torch.manual_seed(0)
    net = TransformerNet(8, 1).eval()
    x = torch.rand(1, 3, 67, 131)
    with torch.no_grad():
        assert stylize_photo(net, x).shape == x.shape
        assert stylize_photo(net, x[..., :5, :7]).shape == (1, 3, 5, 7)
        y = torch.from_numpy(smooth_photo(301, 457, seed=4)).permute(2, 0, 1)[None].float() / 255
        whole = stylize_photo(net, y)
        tiled = stylize_photo(net, y, force_tiles=192, overlap=64)
        assert (whole - tiled).abs().max() < 1e-4
        # without the frozen whole-photo statistics, tiles disagree visibly (the control)
        per_tile = torch.cat([stylize_photo(net, y[..., :, :240]), stylize_photo(net, y[..., :, 240:])], -1)
        assert (whole - per_tile).abs().max() > 1e-2


def test_median3_removes_salt_noise():
    x = torch.full((1, 3, 9, 9), 0.5)
    x[0, :, 4, 4] = 1.0
    assert torch.allclose(median3(x), torch.full_like(x, 0.5))


def test_training_subset_changes_rarely_when_a_photo_is_added():
    entries = [Entry(f"p{i:04d}.jpg", 1, 1) for i in range(400)]
    base = training_subset(entries, 40)
    changed = sum(training_subset(entries + [Entry(f"new{j}.jpg", 1, 1)], 40) != base for j in range(100))
    assert len(base) == 40 and 0 < changed < 40  # about 100 * 40/401 = 10 expected


def test_fast_method_pipeline_trains_once_and_reruns_only_what_changed(tiny_collection):
    import yaml

    tmp, cfg_path, cfg = tiny_collection
    cfg = {**cfg, "stylize": {"methods": ["fast"]}, "weights": {"mode": "random"},
           "train": {"steps": 4, "image_size": 32, "batch_size": 2, "width": 4, "residual_blocks": 1,
                     "checkpoint_every": 2, "style_size": 64}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_snakemake(tmp, cfg_path, "--cores", "2")
    rows = [r for p in (tmp / "results" / "stylized" / "_index" / "fast").glob("*.csv") for r in read_csv_dicts(p)]
    assert len(rows) == 3 * 2 and {r["status"] for r in rows} == {"ok"}
    assert all(r["weights"].startswith("model=sha256:") and "loss network vgg16-imagenet=random, seed 0" in r["weights"] for r in rows)
    assert (tmp / "results" / "report" / "losses.png").exists()
    # an inference setting reruns stylisation, not training
    cfg["methods"] = {"fast": {"median_filter": False}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    rules = [r for r, _ in scheduled_jobs(run_snakemake(tmp, cfg_path, "-n").stdout)]
    assert "stylize" in rules and "train_model" not in rules
    # a training setting retrains every style
    cfg["train"]["learning_rate"] = 0.01
    cfg_path.write_text(yaml.safe_dump(cfg))
    rules = [r for r, _ in scheduled_jobs(run_snakemake(tmp, cfg_path, "-n").stdout)]
    assert rules.count("train_model") == 2


def test_driver_batches_same_size_photos_with_the_same_results(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from photostyle.methods.fast import Fast
    from conftest import save, smooth_photo
    from photostyle.core.collection import sync_listings
    from photostyle.config import validate_config
    from photostyle.nets.fastnet import save_model
    from photostyle.stages.ingest import ingest_listing
    from photostyle.core.photo import PhotoLimits
    from photostyle.stages.stylize import run_stylize_shard

    root, sroot = tmp_path / "c", tmp_path / "s"
    for i, (h, w) in enumerate([(24, 32), (24, 32), (20, 28), (24, 32), (20, 28)]):
        save(smooth_photo(h, w, seed=i), root / f"p{i}.png")
    save(smooth_photo(20, 20, seed=9), sroot / "style.png")
    cfg = validate_config({"device": "cpu"})
    limits = PhotoLimits.from_settings(cfg)
    (c_shard,) = sync_listings(root, tmp_path / "lc", 1000)
    ingest_listing(tmp_path / "lc" / f"{c_shard}.csv", root, "content", c_shard, limits, tmp_path / "content.csv")
    ((sid, _),) = sync_listings(sroot, tmp_path / "ls", per_file=True).items()
    ingest_listing(tmp_path / "ls" / f"{sid}.csv", sroot, "style", sid, limits, tmp_path / "style.csv")
    torch.manual_seed(0)
    save_model(tmp_path / "train" / "fast" / sid / "model.pt", TransformerNet(4, 1),
               {"loss_network": "vgg16=random, seed 0"})
    seen = []
    original = Fast.__call__

    def spy(self, content, style, masks=None):
        seen.append(content.shape[0])
        return original(self, content, style, masks)

    monkeypatch.setattr(Fast, "__call__", spy)
    results = {}
    for batch in (1, 3):
        seen.clear()
        settings = {"params": {**cfg["methods"]["fast"], "batch_photos": batch}, "seed": 0, "device": "cpu",
                    "ingest": cfg["ingest"]}
        out = tmp_path / f"out{batch}"
        rows = run_stylize_shard(tmp_path / "content.csv", [tmp_path / "style.csv"], "fast", settings, out,
                                 out / "_index" / "fast" / "s.csv", "test", train_root=tmp_path / "train")
        assert [r["status"] for r in rows] == ["ok"] * 5 and all(float(r["runtime_s"]) > 0 for r in rows)
        results[batch] = {p.name: np.asarray(PILImage.open(p), dtype=int) for p in (out / sid / "fast").glob("*.png")}
        if batch == 1:
            assert seen == [1] * 5
        else:  # in id order (fixed by the file names), one chunk of 3 holds two 24x32 photos: one batch
            assert sorted(seen) == [1, 1, 1, 2]
    assert results[1].keys() == results[3].keys()
    assert all(np.abs(results[1][k] - results[3][k]).max() <= 1 for k in results[1])
