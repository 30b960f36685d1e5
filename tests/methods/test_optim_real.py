"""gatys and dpst on the real ImageNet VGG-16 (../shared/weights) and a real photo pair with hand
masks (../shared/eval/dpst-pairs): the network they resolve and record, and what dpst does."""

import importlib.util
import os
import time

import numpy as np
import pytest
import torch

from conftest import REPO, real_weights_cfg
from photostyle.core import weights as W
from photostyle.methods import get_method

CPU = torch.device("cpu")
PAIRS = REPO.parent / "shared" / "eval" / "dpst-pairs"


@pytest.mark.parametrize("name", ["gatys", "dpst"])
def test_vgg16_resolves_to_the_oxford_file_and_the_provenance_names_it(name):
    cls = get_method(name)
    assert cls.parse({}).network == "vgg16"  # the default: real style transfer where the weights allow it
    m = cls.for_job({"params": {}, "seed": 0, "weights": real_weights_cfg()}, CPU, ["s"], "unused")
    oxford = W.REGISTRY["vgg16-oxford"].sha256
    assert set(m.resolved) == {"vgg16-oxford"} and m.provenance("s") == f"vgg16-oxford=sha256:{oxford}"
    net = m._network()
    assert net.arch == "vgg16" and net.provenance == f"sha256:{oxford}"
    # the other network, and the fallback when the Oxford file is absent, name what they use
    m19 = cls.for_job({"params": {"network": "vgg19"}, "seed": 3, "weights": {"mode": "random", "dir": "-",
                                                                              "download": False}}, CPU, ["s"], "-")
    assert m19.provenance("s") == "vgg19-imagenet=random, seed 3"
    m16 = cls.for_job({"params": {}, "seed": 3, "weights": {"mode": "auto", "dir": "/nonexistent", "download": False}},
                      CPU, ["s"], "-")
    assert m16.provenance("s") == "vgg16-imagenet=random, seed 3"


def test_the_methods_network_candidates_are_the_registrys():
    from photostyle.methods.optim import NETWORKS

    assert NETWORKS == {k: tuple(v) for k, v in W.NETWORK_WEIGHTS.items()}


def _pair(name: str, megapixels: float):
    if not (PAIRS / "content" / f"{name}.png").exists():
        msg = f"evaluation pairs not found at {PAIRS}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + "; CI must have them")
        pytest.skip(msg)
    spec = importlib.util.spec_from_file_location("quality", REPO / "benchmarks" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    return quality, quality.load_pair(PAIRS, name, megapixels)


def test_default_dpst_on_a_real_pair_keeps_structure_and_moves_region_colours_to_the_style():
    """in58 (a building under a blue sky styled from a dusk photo) at ~0.02 MP, 12 L-BFGS steps,
    the hand masks: luminance SSIM to the content stays above 0.8 while the mean colour of each
    matched region (area-weighted, RGB 0-255) moves at least 25 % of the way to the style's.
    With ``photorealism_weight: 0`` the SSIM falls (measured 0.XX); with ``style_weight: 0``
    the colours do not move."""
    from photostyle.core.tensors import to_tensor, to_uint8
    from photostyle.ops.measures import ssim_luminance
    from photostyle.ops.regions import COLOUR_TABLE, WHOLE, build_masks, match_groups

    weights = real_weights_cfg()
    quality, (content, style, c_lab, s_lab) = _pair("in58", 0.02)
    groups = match_groups(c_lab, s_lab, COLOUR_TABLE)
    masks = build_masks(c_lab, s_lab, groups, CPU, table=COLOUR_TABLE)
    m = get_method("dpst").for_job({"params": {"iterations": 12, "scales": 1}, "seed": 0, "weights": weights},
                                   CPU, ["s"], "-")
    t0 = time.perf_counter()
    state = m.prepare_style(to_tensor(style), "s")
    out = to_uint8(m(to_tensor(content), state, masks))
    seconds = time.perf_counter() - t0

    def region_distance(img):
        total = dist = 0.0
        for g in groups:
            sel = c_lab == g.content
            ssel = np.ones_like(s_lab, bool) if g.style == WHOLE else s_lab == g.style
            if sel.sum() < 20 or ssel.sum() < 20:
                continue
            d = np.linalg.norm(img[sel].mean(0) - style[ssel].mean(0))
            dist, total = dist + sel.sum() * d, total + sel.sum()
        return dist / total

    ssim = ssim_luminance(out, content)
    before, after = region_distance(content.astype(float)), region_distance(out.astype(float))
    print(f"dpst in58: ssim {ssim:.3f}, region colour distance {before:.1f} -> {after:.1f}, {seconds:.1f} s")
    assert ssim > 0.8
    assert after < 0.75 * before
