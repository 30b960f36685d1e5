"""WCT / PhotoWCT / AdaIN: transforms, encoder/decoder, decoder training, the methods and the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import run_snakemake, scheduled_jobs, smooth_photo, make_method, stylise
from photostyle.config import validate_config
from photostyle.core.io import read_csv_dicts
from photostyle.ops.regions import Match, MatchedMasks
from photostyle.nets.universal import Decoder, Encoder, decoder_losses, load_decoder, save_decoder, train_decoder
from photostyle.ops.wct import adain, adain_stats, colouring, feature_stats, transform, whiten_colour
from photostyle.nets.vgg import VGGFeatures
from photostyle.core.weights import resolve


def correlated(c: int, n: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g) * scale
    return mix @ torch.randn(c, n, generator=g) + shift + torch.randn(c, 1, generator=g)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_wct_gives_the_style_mean_and_covariance():
    fc, fs = correlated(8, 600, 0), correlated(8, 900, 1, scale=2.0, shift=3.0)
    out = whiten_colour(fc, colouring(fs), eps=1e-6)
    (mu_o, cov_o), (mu_s, cov_s) = feature_stats(out), feature_stats(fs)
    assert rel(mu_o, mu_s) < 1e-3 and rel(cov_o, cov_s) < 1e-3
    assert rel(feature_stats(fc)[1], cov_s) > 0.5  # the test is not trivially true


def test_wct_is_stable_on_a_flat_region():
    fc = torch.full((8, 50), 0.7)  # no variance at all
    fs = correlated(8, 300, 2)
    out = whiten_colour(fc, colouring(fs), eps=1e-5)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, feature_stats(fs)[0].float().expand_as(out), atol=1e-4)  # the style's mean


def test_adain_matches_per_channel_mean_and_std():
    fc, fs = correlated(6, 400, 3), correlated(6, 500, 4, scale=3.0, shift=-1.0)
    out = adain(fc, adain_stats(fs, 1e-8), 1e-8).double()
    assert torch.allclose(out.mean(1), fs.double().mean(1), atol=1e-4)
    assert torch.allclose(out.std(1, unbiased=False), fs.double().std(1, unbiased=False), rtol=1e-4)


def two_region_masks(h, w, sh, sw):
    """Content: left/right halves; style: top/bottom halves (region 0 <- top, 1 <- bottom)."""
    cw = torch.zeros(2, h, w)
    cw[0, :, : w // 2], cw[1, :, w // 2:] = 1, 1
    sm = torch.zeros(2, sh, sw, dtype=torch.bool)
    sm[0, : sh // 2], sm[1, sh // 2:] = True, True
    return MatchedMasks(cw, sm, [Match(0, 0, "same"), Match(1, 1, "same")], "a>a;b>b")


@pytest.mark.parametrize("kind", ["wct", "adain"])
def test_region_transform_gives_each_region_its_counterparts_statistics(kind):
    c, h, w, sh, sw = 6, 20, 30, 24, 16
    fc = correlated(c, h * w, 5).reshape(1, c, h, w)
    fs = torch.cat([correlated(c, sh * sw // 2, 6, 1.0, 2.0), correlated(c, sh * sw // 2, 7, 3.0, -2.0)], 1)
    fs = fs.reshape(1, c, sh, sw)  # top half from one distribution, bottom half from another
    masks = two_region_masks(h, w, sh, sw)
    out = transform(fc, fs, kind, 1e-7, masks)
    for k, (cols, rows) in enumerate([(slice(0, w // 2), slice(0, sh // 2)), (slice(w // 2, w), slice(sh // 2, sh))]):
        o = out[0][:, :, cols].reshape(c, -1)
        s = fs[0][:, rows].reshape(c, -1)
        if kind == "wct":
            assert rel(feature_stats(o)[0], feature_stats(s)[0]) < 1e-3
            assert rel(feature_stats(o)[1], feature_stats(s)[1]) < 1e-3
        else:
            assert torch.allclose(o.double().mean(1), s.double().mean(1), atol=1e-3)
            assert torch.allclose(o.double().std(1, unbiased=False), s.double().std(1, unbiased=False), rtol=1e-3)
    glob = transform(fc, fs, kind, 1e-7, None)  # control: without masks the halves get the mixture
    o = glob[0][:, :, : w // 2].reshape(c, -1)
    assert rel(feature_stats(o)[0], feature_stats(fs[0][:, : sh // 2].reshape(c, -1))[0]) > 0.1


def random_encoder(level: int) -> Encoder:
    return Encoder(VGGFeatures("vgg19", resolve("vgg19-imagenet", "random", "weights", 0), 0, f"relu{level}_1"))


def test_unpooling_with_the_encoders_indices_restores_the_layout():
    enc = random_encoder(3)
    x = torch.rand(1, 3, 67, 45)
    _, pools = enc.encode(x, 3)
    assert [tuple(s) for _, s in pools] == [(67, 45), (33, 22)]
    # the map just before the first pooling, pooled, unpooled at the indices, pooled again
    pre = enc.vgg(x, ["relu1_2"])["relu1_2"]
    pooled, idx = F.max_pool2d(pre, 2, 2, return_indices=True)
    assert torch.equal(idx, pools[0][0])
    up = F.max_unpool2d(pooled, idx, 2, 2, output_size=pre.shape[-2:])
    assert up.shape == pre.shape
    kept = up != 0
    assert torch.equal(up[kept], pre[kept])  # values go back exactly where they came from
    assert torch.equal(F.max_pool2d(up, 2, 2), pooled)
    # decoders of both families return the photo's size for odd sizes
    for family in ("unpool", "upsample"):
        f, pools = enc.encode(x[..., :64, :44], 3)
        assert Decoder(3, family)(f, pools).shape == (1, 3, 64, 44)


def test_decoder_training_lowers_the_reconstruction_loss(tmp_path):
    enc = random_encoder(2)
    photos = [smooth_photo(48, 64, seed=i) for i in range(3)]
    cfg = {**validate_config({})["decoders"], "seed": 1, "image_size": 32, "batch_size": 2, "steps": 25,
           "learning_rate": 2e-3, "checkpoint_every": 100}
    dec = train_decoder(2, "unpool", enc, photos, cfg, tmp_path / "m.pt", tmp_path / "c.pt", tmp_path / "l.csv",
                        {"config_hash": "x"}, torch.device("cpu"))
    rows = read_csv_dicts(tmp_path / "l.csv")
    first = np.mean([float(r["reconstruction"]) for r in rows[:3]])
    last = np.mean([float(r["reconstruction"]) for r in rows[-3:]])
    assert last < 0.7 * first
    loaded, meta = load_decoder(tmp_path / "m.pt", "cpu")
    x = torch.rand(1, 3, 32, 32)
    f, pools = enc.encode(x, 2)
    assert torch.equal(loaded(f, pools), dec(f, pools)) and meta == {"config_hash": "x"}
    assert set(decoder_losses(enc, dec, x, cfg)) == {"reconstruction", "feature"}


def decoder_artifacts(tmp_path, method_name: str, params: dict) -> dict:
    """The decoders a universal method declares, saved with random weights and a matching encoder record."""
    from photostyle.methods import get_method

    cls = get_method(method_name)
    paths = {}
    for art in cls.artifacts(cls.parse(params), []):
        lv, family = dict(art.args)["level"], dict(art.args)["family"]
        torch.manual_seed(lv)
        paths[art] = tmp_path / f"{family}_relu{lv}_1.pt"
        save_decoder(paths[art], Decoder(lv, family), {"encoder": "vgg19=random, seed 0"})
    return paths


@pytest.mark.parametrize("name,params", [("wct", {"levels": [2, 1], "encoder": "vgg19"}),
                                         ("photowct", {"levels": [2, 1]}), ("adain", {"level": 2, "encoder": "vgg19"}),
                                         ("wct", {"levels": [2, 1], "encoder": "cd16x"}),
                                         ("adain", {"level": 2, "encoder": "cd16x"})])
def test_methods_keep_odd_sizes_and_use_regions(tmp_path, name, params):
    params = {**validate_config({})["methods"][name], **params}
    method = make_method(name, params, artifacts=decoder_artifacts(tmp_path, name, params))
    content, style = torch.rand(1, 3, 37, 53), torch.rand(1, 3, 30, 30)
    state = method.prepare_style(style, "s")
    out = stylise(method, content, style, state=state)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    masks = two_region_masks(37, 53, 30, 30)
    out_m = stylise(method, content, style, masks, state=state)
    assert out_m.shape == content.shape and not torch.allclose(out_m, out)
    # alpha = 0 keeps the content features: the output is the decoders' reconstruction, no style
    p0 = {**params, "alpha": 0.0}
    same = stylise(make_method(name, p0, artifacts=decoder_artifacts(tmp_path, name, p0)), content, style)
    other = stylise(make_method(name, p0, artifacts=decoder_artifacts(tmp_path, name, p0)), content,
                    torch.rand(1, 3, 30, 30))
    assert torch.allclose(same, other, atol=1e-6)


def test_universal_pipeline_trains_decoders_once_per_family_and_level(tiny_collection):
    tmp, cfg_path, cfg = tiny_collection
    cfg = {**cfg, "stylize": {"methods": ["photowct", "adain"]}, "weights": {"mode": "random"},
           "segmentation": {"enabled": False},
           "methods": {"photowct": {"levels": [2, 1]}, "adain": {"level": 2, "encoder": "vgg19"}},
           "decoders": {"steps": 3, "image_size": 32, "batch_size": 2, "checkpoint_every": 2},
           "refine": {"per_method": {"photowct": {"smoothing": {"mode": "exact"}}}}}
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = run_snakemake(tmp, cfg_path, "--cores", "2")
    trained = sorted(p.parent.relative_to(tmp / "results" / "train" / "decoder").as_posix()
                     for p in (tmp / "results" / "train" / "decoder").glob("*/*/model.pt"))
    assert trained == ["unpool/relu1_1", "unpool/relu2_1", "upsample/relu2_1"], out.stdout[-2000:]
    for method in ("photowct", "adain"):
        rows = [r for p in (tmp / "results" / "stylized" / "_index" / method).glob("*.csv") for r in read_csv_dicts(p)]
        assert len(rows) == 3 * 2 and {r["status"] for r in rows} == {"ok"}
        assert all("vgg19-imagenet=random, seed 0" in r["weights"] and "decoder/" in r["weights"] for r in rows)
    refined = [r for p in (tmp / "results" / "refined" / "_index" / "all").glob("*.csv") for r in read_csv_dicts(p)
               if r["method"] == "photowct"]
    assert len(refined) == 3 * 2 and {r["status"] for r in refined} == {"ok"}
    log = "".join(p.read_text() for p in (tmp / "results" / "logs" / "refine").glob("*.log"))
    assert "exact smoothing" in log
    # a smoothing setting reruns refinement (and metrics), not stylisation or decoder training
    cfg["refine"]["per_method"]["photowct"]["smoothing"]["lambda"] = 1e-3
    cfg_path.write_text(yaml.safe_dump(cfg))
    rules = [r for r, _ in scheduled_jobs(run_snakemake(tmp, cfg_path, "-n").stdout)]
    assert "refine" in rules and "stylize" not in rules and "train_model" not in rules
    # a decoder setting retrains the three decoders and restylises, once per family+level
    cfg["decoders"]["learning_rate"] = 1e-3
    cfg_path.write_text(yaml.safe_dump(cfg))
    rules = [r for r, _ in scheduled_jobs(run_snakemake(tmp, cfg_path, "-n").stdout)]
    assert rules.count("train_model") == 3 and "stylize" in rules


def test_decoders_trained_with_another_encoder_are_refused(tmp_path):
    params = {**validate_config({})["methods"]["adain"], "level": 1, "encoder": "vgg19"}
    arts = decoder_artifacts(tmp_path, "adain", params)
    (path,) = arts.values()
    save_decoder(path, Decoder(1, "upsample"), {"encoder": "vgg19=pretrained sha256:x"})
    with pytest.raises(RuntimeError, match="trained with encoder vgg19=pretrained"):
        stylise(make_method("adain", params, artifacts=arts), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
