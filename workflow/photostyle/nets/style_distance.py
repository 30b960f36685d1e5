"""VGG Gram-matrix style distance (Gatys et al.) between an output and its style photo.

The network (``vgg16``: the Oxford ImageNet VGG-16, else torchvision's; ``vgg19``) comes from
the weights resolver; the distance is relative (scale-free), so it means the same on either
file's activation scale. With random weights the
distance is still computed but every row records ``random, seed N`` in ``style_dist_weights``,
so nobody mistakes it for the perceptual measure. Images are compared at ``short_side`` px.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from photostyle.nets.vgg import VGGFeatures, gram

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class GramDistance:
    def __init__(self, weights_cfg: dict, seed: int, short_side: int, device, network: str = "vgg16"):
        self.net = VGGFeatures.load(network, weights_cfg, seed, last=LAYERS[-1]).to(device)
        self.provenance = self.net.provenance
        self.short_side, self.device = short_side, device

    @torch.no_grad()
    def grams(self, image: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(np.array(image)).to(self.device).permute(2, 0, 1)[None].float() / 255
        h, w = x.shape[-2:]
        s = self.short_side / min(h, w)
        x = F.interpolate(x, size=(max(8, round(h * s)), max(8, round(w * s))), mode="bilinear",
                          align_corners=False, antialias=True)
        feats = self.net(x, LAYERS)
        return [gram(feats[name]) for name in LAYERS]

    def distance(self, image: np.ndarray, style_grams: list[torch.Tensor]) -> float:
        """Mean over layers of the relative Frobenius distance of the Gram matrices."""
        g = self.grams(image)
        return float(np.mean([float((a - b).norm() / b.norm().clamp_min(1e-12)) for a, b in zip(g, style_grams)]))
