"""Gatys and Deep Photo Style Transfer (image optimisation), on tiny images with random VGG weights."""

from pathlib import Path

import pytest
import torch

from conftest import save, smooth_photo, make_method, stylise
from photostyle.config import validate_config
from photostyle.nets.optimise import level_sizes
from photostyle.ops.regions import MatchedMasks
from photostyle.core.tensors import to_tensor

CPU = torch.device("cpu")


def _params(method, **kw):
    p = dict(validate_config({})["methods"][method])
    p.update(style_layers=["relu1_1", "relu2_1"], content_layers=["relu2_1"], scales=1, work_side=48, iterations=8)
    p.update({k: v for k, v in kw.items() if k in p})  # photorealism_weight is dpst's alone
    return p


def _run(method, p, content, style, masks=None):
    """(output, trace) of one optimisation with a fresh method instance (random VGG, seed 0)."""
    m = make_method(method, p)
    state = m.prepare_style(style, "s")
    out = stylise(m, content, style, masks, state)
    return out, state.trace


@pytest.mark.parametrize("method", ["gatys", "dpst"])
@pytest.mark.parametrize("optimizer,lr", [("lbfgs", 1.0), ("adam", 0.01)])
def test_a_few_steps_lower_the_total_loss(method, optimizer, lr):
    content = to_tensor(smooth_photo(37, 45, seed=1))
    style = to_tensor(smooth_photo(30, 30, seed=7))
    p = _params(method, optimizer=optimizer, learning_rate=lr, photorealism_weight=100.0)
    out, trace = _run(method, p, content, style)
    assert out.shape == content.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert trace[-1]["total"] < 0.7 * trace[0]["total"]
    assert ("photorealism" in trace[0]) == (method == "dpst")
    # deterministic on CPU: the same call gives the same image
    again, _ = _run(method, p, content, style)
    assert torch.equal(out, again)


def test_coarse_to_fine_levels_and_full_size_output():
    assert level_sizes(1000, 2000, 512, 3) == [(64, 128), (128, 256), (256, 512)]
    assert level_sizes(40, 60, 512, 3) == [(40, 60)]  # too small to go coarser than 32 px
    content = to_tensor(smooth_photo(67, 131, seed=2))  # larger than work_side: the change is upsampled
    style = to_tensor(smooth_photo(30, 40, seed=3))
    p = _params("gatys", work_side=64, scales=2, iterations=3)
    out, trace = _run("gatys", p, content, style)
    assert out.shape == content.shape
    assert {(r["height"], r["width"]) for r in trace} == {(33, 64)}  # 16 px level skipped (< 32)
    assert float((out - content).abs().mean()) > 1e-3  # the style changed the photo


def _two_region_pair(h=32, w=32):
    g = torch.Generator().manual_seed(0)
    content = torch.empty(1, 3, h, w)
    content[..., : w // 2] = 0.35
    content[..., w // 2:] = 0.65
    content += 0.02 * torch.rand(1, 3, h, w, generator=g)
    style = torch.zeros(1, 3, h, w)
    style[:, 1] = 0.4
    style[:, 0, :, : w // 2], style[:, 2, :, : w // 2] = 0.8, 0.2  # region A: red
    style[:, 0, :, w // 2:], style[:, 2, :, w // 2:] = 0.2, 0.8  # region B: blue
    style += 0.05 * torch.rand(1, 3, h, w, generator=g)
    cw = torch.zeros(2, h, w)
    cw[0, :, : w // 2] = 1
    cw[1, :, w // 2:] = 1
    return content, style, MatchedMasks(cw, cw.bool())


def test_dpst_region_style_does_not_leak_across_regions():
    content, style, masks = _two_region_pair()
    p = _params("dpst", work_side=32, iterations=30, photorealism_weight=1e4, init="content")  # the losses alone, not the colour start

    def red_minus_blue(m):
        out, _ = _run("dpst", p, content, style, m)
        rb = out[0, 0] - out[0, 2]
        return float(rb[:, :16].mean()), float(rb[:, 16:].mean())

    left, right = red_minus_blue(masks)
    assert left > 0.05 and right < -0.05  # A styled from A (red), B from B (blue)
    left0, right0 = red_minus_blue(None)  # control: one region mixes both styles
    assert not (left0 > 0.05 and right0 < -0.05)


def test_stylize_driver_writes_optimisation_trace(tmp_path):
    from photostyle.core.collection import sync_listings
    from photostyle.stages.ingest import ingest_listing
    from photostyle.core.io import read_csv_dicts, read_png_text
    from photostyle.core.photo import PhotoLimits
    from photostyle.stages.common import trace_path
    from photostyle.stages.stylize import run_stylize_shard

    save(smooth_photo(30, 36, seed=1), tmp_path / "c" / "a.png")
    save(smooth_photo(24, 24, seed=2), tmp_path / "s" / "b.png")
    cfg = validate_config({"device": "cpu", "weights": {"mode": "random"}})
    limits = PhotoLimits.from_settings(cfg)
    (shard,) = sync_listings(tmp_path / "c", tmp_path / "lc", 100)
    ingest_listing(tmp_path / "lc" / f"{shard}.csv", tmp_path / "c", "content", shard, limits, tmp_path / "content.csv")
    (sid,) = sync_listings(tmp_path / "s", tmp_path / "ls", per_file=True)
    ingest_listing(tmp_path / "ls" / f"{sid}.csv", tmp_path / "s", "style", sid, limits, tmp_path / "style.csv")
    settings = {"params": _params("dpst", iterations=3), "seed": 5, "device": "cpu", "ingest": cfg["ingest"],
                "weights": cfg["weights"]}
    (row,) = run_stylize_shard(tmp_path / "content.csv", [tmp_path / "style.csv"], "dpst", settings,
                               tmp_path / "out", tmp_path / "out" / "_index" / "dpst" / "x.csv", "test")
    assert row["status"] == "ok" and row["weights"] == "vgg16-imagenet=random, seed 5"
    assert read_png_text(row["output"])["photostyle:weights"] == "vgg16-imagenet=random, seed 5"
    trace = read_csv_dicts(trace_path(Path(row["output"])))
    assert len(trace) >= 4 and {"total", "style", "photorealism", "seconds"} <= set(trace[0])


# --- loss scales: relative losses mean the same at any feature scale and photo size ----------
def _vgg(arch="vgg16", last="relu3_1"):
    from photostyle.core.weights import resolve
    from photostyle.nets.vgg import ARCH_WEIGHTS, VGGFeatures

    return VGGFeatures(arch, resolve(ARCH_WEIGHTS[arch], "random", "-", 0), 0, last)


def _losses(net, out, content, style, regions=None, layers=("relu1_1", "relu2_1", "relu3_1")):
    from photostyle.nets.optimise import _content_loss, _style_loss
    from photostyle.nets.vgg import gram

    layers = list(layers)
    with torch.no_grad():
        fo, fc, fs = net(out, layers), net(content, layers), net(style, layers)
    c = float(_content_loss({"relu3_1": fo["relu3_1"]}, {"relu3_1": fc["relu3_1"]}))
    s = float(_style_loss(fo, {n: [gram(fs[n])] for n in layers}, dict.fromkeys(layers)))
    return c, s


def test_losses_do_not_depend_on_the_scale_of_the_features():
    """The Oxford VGG-16's activations are ~255x torchvision's: multiplying every feature by 255
    leaves both losses unchanged (an absolute MSE would grow 255², a Gram MSE 255⁴)."""
    from photostyle.nets.optimise import _content_loss, _style_loss
    from photostyle.nets.vgg import gram

    g = torch.Generator().manual_seed(0)
    fo = {n: torch.rand(1, c, 12, 10, generator=g) for n, c in (("a", 8), ("b", 16))}
    ft = {n: torch.rand_like(v) + 0.2 for n, v in fo.items()}
    regions = torch.zeros(2, 12, 10)
    regions[0, :6], regions[1, 6:] = 1, 1
    for reg in (None, regions):
        rr = dict.fromkeys(fo, reg)
        targets = {n: [gram(v)] if reg is None else [gram(v, reg[0]), gram(v, reg[1])] for n, v in ft.items()}
        targets255 = {n: [gram(255 * v)] if reg is None else [gram(255 * v, reg[0]), gram(255 * v, reg[1])]
                      for n, v in ft.items()}
        s, s255 = _style_loss(fo, targets, rr), _style_loss({n: 255 * v for n, v in fo.items()}, targets255, rr)
        assert float(s) > 0.01 and float(s255) == pytest.approx(float(s), rel=1e-4)
    c, c255 = _content_loss(fo, ft), _content_loss({n: 255 * v for n, v in fo.items()}, {n: 255 * v for n, v in ft.items()})
    assert float(c) > 0.01 and float(c255) == pytest.approx(float(c), rel=1e-4)


def test_losses_and_photorealism_term_about_the_same_at_another_photo_size():
    """A photo and a recoloured, sharpened copy of it at 96 px and at 192 px: the relative content
    and style losses and the per-pixel photorealism energy agree within 35 % (sums over pixels
    would differ 4x, sums of Gram entries 16x)."""
    from conftest import sample_photo
    from photostyle.nets.optimise import _resize
    from photostyle.ops.matting import MattingLaplacian

    net = _vgg()
    full = to_tensor(sample_photo("coffee.jpg"))
    style = _resize(to_tensor(sample_photo("astronaut.jpg")), (160, 160))
    got = []
    for side in (96, 192):
        c = _resize(full, (side * 3 // 4, side))
        out = (c * torch.tensor([1.15, 0.95, 0.8]).view(1, 3, 1, 1) + 0.3 * (c - _resize(_resize(c, (side // 8, side // 6)), c.shape[-2:]))).clamp(0, 1)
        cl, sl = _losses(net, out, c, style)
        pr = float(MattingLaplacian(c, eps=1e-7).quadratic(out[0]) / out[0, 0].numel())
        got.append((cl, sl, pr))
    for small, large in zip(*got):
        assert small > 0 and large / small == pytest.approx(1, abs=0.35), got


def test_dpst_starts_from_each_regions_colour_transfer_by_default():
    """``init: colour`` (dpst's default) starts the optimisation from the photo with each matched
    region's colours moved to its style region's: after a single step the regions already carry
    their styles' colours; started from the content (the broken variant for this purpose), one step
    leaves them near the content's grey."""
    from photostyle.ops.regions import Match

    content, style, masks = _two_region_pair()
    masks.matches = [Match(0, 0, "same"), Match(1, 1, "same")]
    assert validate_config({})["methods"]["dpst"]["init"] == "colour"
    for init, separated in (("colour", True), ("content", False)):
        out, _ = _run("dpst", _params("dpst", work_side=32, iterations=1, init=init), content, style, masks)
        rb = out[0, 0] - out[0, 2]
        left, right = float(rb[:, :16].mean()), float(rb[:, 16:].mean())
        assert (left > 0.3 and right < -0.3) == separated, (init, left, right)
