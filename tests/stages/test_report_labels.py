"""The report's grid names the weights each column ran on (from the outputs' provenance)."""

from photostyle.core.weights import REGISTRY
from photostyle.stages.report import weights_label


def test_grid_columns_name_real_random_and_no_weights():
    cd = "; ".join(f"cd16x-{p}{k}=sha256:{REGISTRY[f'cd16x-{p}{k}'].sha256}" for k in (3, 2, 1)
                   for p in ("encoder", "decoder"))
    assert weights_label(cd) == "distilled VGG-19 (shipped)"
    assert weights_label("vgg16-oxford=sha256:74bb") == "VGG-16 (Oxford)"
    assert weights_label("vgg19-imagenet=random, seed 0") == "RANDOM weights"
    assert weights_label("none") == weights_label("") == "no weights"
    assert weights_label("vgg16-imagenet=sha256:ab; fast/warm=sha256:cd") == "VGG-16 (torchvision), trained fast"
