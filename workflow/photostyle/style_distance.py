"""VGG-19 Gram-matrix style distance (Gatys et al.) between an output and its style photo.

The encoder comes from the weights resolver (``vgg19-imagenet``); with random weights the
distance is still computed but every row records ``random, seed N`` in ``style_dist_weights``,
so nobody mistakes it for the perceptual measure. Images are compared at ``short_side`` px.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .tensors import imagenet_normalize
from .weights import load_state_dict, resolve

LAYERS = (1, 6, 11, 20)  # relu1_1, relu2_1, relu3_1, relu4_1 in torchvision's vgg19.features


def vgg19_features(weights_cfg: dict, seed: int, up_to: int = max(LAYERS)) -> tuple[torch.nn.Sequential, str]:
    """VGG-19 convolutional layers ``0..up_to`` with resolved weights, and their provenance."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    features = make_layers(cfgs["E"])
    resolved = resolve("vgg19-imagenet", weights_cfg["mode"], weights_cfg["dir"], seed, weights_cfg["download"])
    if not resolved.is_random:
        state = {k[len("features."):]: v for k, v in load_state_dict(resolved).items() if k.startswith("features.")}
        features.load_state_dict(state)
    return features[: up_to + 1].eval(), resolved.provenance


class GramDistance:
    def __init__(self, weights_cfg: dict, seed: int, short_side: int, device):
        self.net, self.provenance = vgg19_features(weights_cfg, seed)
        self.net.to(device)
        self.short_side, self.device = short_side, device

    @torch.no_grad()
    def grams(self, image: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(np.array(image)).to(self.device).permute(2, 0, 1)[None].float() / 255
        h, w = x.shape[-2:]
        s = self.short_side / min(h, w)
        x = F.interpolate(x, size=(max(8, round(h * s)), max(8, round(w * s))), mode="bilinear",
                          align_corners=False, antialias=True)
        x = imagenet_normalize(x)
        out = []
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in LAYERS:
                f = x[0].flatten(1)
                out.append(f @ f.T / f.shape[1])
        return out

    def distance(self, image: np.ndarray, style_grams: list[torch.Tensor]) -> float:
        """Mean over layers of the relative Frobenius distance of the Gram matrices."""
        g = self.grams(image)
        return float(np.mean([float((a - b).norm() / b.norm().clamp_min(1e-12)) for a, b in zip(g, style_grams)]))
