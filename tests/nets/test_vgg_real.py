"""The ImageNet VGG-16 (Oxford, CC BY 4.0) from ../shared/weights: strict loading, Gram statistics
that tell photos apart, and the style metric on real weights. Random weights cannot pass these."""

import numpy as np
import pytest
import torch

from conftest import real_weights_cfg, sample_photo
from photostyle.core import weights as W
from photostyle.nets.style_distance import GramDistance
from photostyle.nets.vgg import VGGFeatures


def test_the_oxford_vgg16_is_preferred_loaded_strictly_and_recorded():
    cfg = real_weights_cfg()
    r = W.resolve_network("vgg16", cfg, seed=0)
    assert r.spec.name == "vgg16-oxford" and r.provenance == "sha256:" + W.REGISTRY["vgg16-oxford"].sha256
    net = VGGFeatures("vgg16", r, 0, "relu5_1")
    assert net.provenance == r.provenance
    state = W.load_state_dict(r)
    state["features.0.weightx"] = state.pop("features.0.weight")
    orig = W.load_state_dict
    try:
        import photostyle.nets.vgg as V

        V.load_state_dict = lambda _: state
        with pytest.raises(RuntimeError, match="state_dict"):
            VGGFeatures("vgg16", r, 0, "relu5_1")
    finally:
        V.load_state_dict = orig


def test_the_oxford_file_has_no_url_and_says_how_to_get_it(tmp_path):
    with pytest.raises(W.WeightsUnavailable, match="Keras"):
        W.resolve("vgg16-oxford", "pretrained", tmp_path, seed=0, download=True)


@pytest.fixture(scope="module")
def gram_distance():
    return GramDistance(real_weights_cfg(), 0, 128, torch.device("cpu"), network="vgg16")


def crops(photo: np.ndarray):
    h, w = photo.shape[:2]
    return photo[: h * 7 // 8, : w * 7 // 8], photo[h // 8:, w // 8:]


@pytest.mark.parametrize("a, b", [("coffee.jpg", "astronaut.jpg"), ("chelsea.jpg", "rocket.jpg"),
                                  ("rocket.jpg", "coffee.jpg")])
def test_gram_statistics_separate_two_photos_far_more_than_two_crops_of_one(a, b, gram_distance):
    """Two overlapping crops of one photo have close Gram matrices (relu1_1..relu5_1), two
    different photos do not: measured 4.4-6.1x on these photos. (Random weights separate them
    too, through colour: this checks the real network's statistics, it is not a guard against
    random weights; the reconstruction and metric-ranking tests are.)"""
    gd = gram_distance
    a1, a2 = crops(sample_photo(a))
    b1, _ = crops(sample_photo(b))
    g = gd.grams(a1)
    assert gd.distance(b1, g) > 4 * gd.distance(a2, g)


def test_the_style_metric_ranks_a_stylised_output_closer_to_its_style_than_the_content(gram_distance):
    from photostyle.methods import get_method
    from photostyle.core.tensors import to_tensor

    content, style = sample_photo("chelsea.jpg"), np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).open(
            __import__("conftest").REPO / "data" / "styles" / "golden_hour.jpg").convert("RGB"))
    method = get_method("wct").for_job({"params": {"levels": [3, 2, 1]}, "seed": 0, "weights": real_weights_cfg()},
                                       torch.device("cpu"), ["s"], "/nonexistent")
    with torch.no_grad():
        out = method(to_tensor(content), method.prepare_style(to_tensor(style), "s"))
    out = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    gd = gram_distance
    g = gd.grams(style)
    assert gd.distance(out, g) < 0.8 * gd.distance(content, g)
