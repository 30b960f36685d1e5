"""Collaborative Distillation's 16x-distilled VGG-19 encoders and their WCT decoders.

Wang, Li, Wang, Hu, Yang: "Collaborative Distillation for Ultra-Resolution Universal Style
Transfer", CVPR 2020 (weights MIT, shipped in ``photostyle/_weights/collaborative-distillation``
and registered as ``cd16x-encoder<k>`` / ``cd16x-decoder<k>``).

One encoder per level k (image -> ``relu<k>_1``) and the decoder trained to invert it. The
layout is VGG-19's with 16x fewer weights: 3x3 convolutions with reflection padding and ReLU,
2x2 max pooling between blocks; channels at relu1_1..relu5_1 are 24, 32, 64, 128, 128. The
encoder's first layer ``conv0`` (1x1) takes RGB in [0, 1] and does the Caffe preprocessing
itself (BGR x 255 minus the ImageNet mean). Decoders mirror the encoder with nearest 2x
upsampling and end in a ReLU (we clamp to [0, 1]). The files also hold the 1x1 ``conv<k>1_aux``
layers that mapped the small features to VGG-19's widths during distillation; WCT does not use
them, so they are dropped by name before a strict load (any other missing, extra or renamed key
is an error).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LEVELS = (1, 2, 3, 4, 5)
CHANNELS = {1: 24, 2: 32, 3: 64, 4: 128, 5: 128}  # at relu<k>_1


def layer_plan(level: int) -> list:
    """The encoder's 3x3 convolutions to ``relu<level>_1``: ``(name, c_in, c_out)``, ``"M"`` per pooling."""
    if level not in LEVELS:
        raise ValueError(f"level {level} not in {LEVELS}")
    if level == 1:  # the level-1 encoder is a single, wider convolution
        return [("conv11", 3, 24)]
    widths = {1: 16, 2: 32, 3: 64, 4: 128, 5: 128}
    convs_per_block = {1: 2, 2: 2, 3: 4, 4: 4}
    plan, cin = [], 3
    for block in range(1, level + 1):
        if block > 1:
            plan.append("M")
        n = 1 if block == level else convs_per_block[block]
        for i in range(1, n + 1):
            plan.append((f"conv{block}{i}", cin, widths[block]))
            cin = widths[block]
    return plan


def _strict_state(blob: dict, what: str) -> dict:
    state = blob["model"] if isinstance(blob, dict) and "model" in blob else blob
    return {k: v for k, v in state.items() if not k.split(".")[0].endswith("_aux")}


class DistilledEncoder(nn.Module):
    """Image ``(B, 3, H, W)`` RGB in [0, 1] -> features at ``relu<level>_1``."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level
        self.plan = layer_plan(level)
        self.conv0 = nn.Conv2d(3, 3, 1)
        for item in self.plan:
            if item != "M":
                name, cin, cout = item
                self.add_module(name, nn.Conv2d(cin, cout, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv0(x)
        for item in self.plan:
            if item == "M":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(getattr(self, item[0])(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        return x


class DistilledDecoder(nn.Module):
    """Features at ``relu<level>_1`` -> image ``(B, 3, H, W)`` in [0, 1]."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level
        self.plan = []
        for item in reversed(layer_plan(level)):
            if item == "M":
                self.plan.append("U")
                continue
            name, cin, cout = item
            self.plan.append(name)
            self.add_module(name, nn.Conv2d(cout, cin, 3))  # mirrored: same name, channels reversed

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = f
        for name in self.plan:
            if name == "U":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            else:
                x = F.relu(getattr(self, name)(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        return x.clamp(0, 1)


def load(kind: str, level: int, resolved, seed: int = 0) -> nn.Module:
    """The ``kind`` (``encoder`` | ``decoder``) of ``level`` with ``resolved`` weights (a
    :class:`photostyle.core.weights.Resolved` for ``cd16x-<kind><level>``; random ones are seeded),
    loaded strictly, frozen, in eval mode. ``.provenance`` says which file it is."""
    from photostyle.core.weights import load_state_dict

    torch.manual_seed(seed)
    net = (DistilledEncoder if kind == "encoder" else DistilledDecoder)(level)
    if not resolved.is_random:
        net.load_state_dict(_strict_state(load_state_dict(resolved), kind), strict=True)
    net.provenance = resolved.provenance
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
