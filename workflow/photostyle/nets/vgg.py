"""VGG-16/19 feature extractors with named layers, weights from the resolver.

Layer names follow the papers: ``conv3_1`` is the third block's first convolution (before its
ReLU), ``relu3_1`` its rectified output, ``pool3`` the block's max pooling. The Caffe models
the papers used rectify in place, so what Gatys et al. and Luan et al. call ``conv4_2`` is
``relu4_2`` here.

Inputs are RGB in [0, 1]; the ImageNet normalisation is applied inside. Parameters are frozen.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from photostyle.core.tensors import imagenet_normalize
from photostyle.core.weights import Resolved, load_state_dict, resolve_network

ARCH_WEIGHTS = {"vgg16": "vgg16-imagenet", "vgg19": "vgg19-imagenet"}

_CFG = {"vgg16": "D", "vgg19": "E"}


def layer_names(arch: str) -> list[str]:
    """Names of the modules of torchvision's ``vgg<16|19>.features``, in order."""
    from torchvision.models.vgg import cfgs

    names, block, conv = [], 1, 0
    for v in cfgs[_CFG[arch]]:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


def deepest_layer(arch: str, layers) -> str:
    """The layer of ``layers`` computed last (the depth a :class:`VGGFeatures` must reach)."""
    check_layers(arch, layers)
    return max(layers, key=layer_names(arch).index)


def check_layers(arch: str, layers) -> None:
    known = layer_names(arch)
    bad = [n for n in layers if n not in known]
    if bad:
        raise ValueError(f"unknown {arch} layer(s) {bad}; known: {', '.join(known)}")


class VGGFeatures(nn.Module):
    """``vgg(x, layers)`` -> ``{name: activation}``, running only as deep as the deepest layer asked."""

    def __init__(self, arch: str, resolved: Resolved, seed: int, last: str):
        """``resolved``: the resolver's answer for ``ARCH_WEIGHTS[arch]`` (random init is seeded)."""
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        if arch not in ARCH_WEIGHTS:
            raise ValueError(f"unknown VGG {arch!r}; use one of {sorted(ARCH_WEIGHTS)}")
        names = layer_names(arch)
        check_layers(arch, [last])
        torch.manual_seed(seed)
        features = make_layers(cfgs[_CFG[arch]])
        if not resolved.is_random:
            state = {k[len("features."):]: v for k, v in load_state_dict(resolved).items() if k.startswith("features.")}
            features.load_state_dict(state)
        depth = names.index(last) + 1
        self.features = features[:depth].eval()
        self.names = names[:depth]
        self.arch = arch
        self.weights_name = resolved.spec.name  # the registry entry loaded (vgg16-oxford, vgg16-imagenet, ...)
        self.provenance = resolved.provenance
        for p in self.parameters():
            p.requires_grad_(False)

    @classmethod
    def load(cls, arch: str, weights_cfg: dict, seed: int, last: str) -> "VGGFeatures":
        """Resolve the weights according to the config's ``weights`` section, then build."""
        w = weights_cfg
        return cls(arch, resolve_network(arch, w, seed), seed, last)

    def forward(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        check_layers(self.arch, wanted)
        last = max(self.names.index(n) for n in wanted)
        out = {}
        x = imagenet_normalize(x)
        for i, (name, module) in enumerate(zip(self.names, self.features)):
            x = module(x)
            if name in wanted:
                out[name] = x
            if i == last:
                break
        return out


def relative_error(a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||a - target||^2 / ||target||^2`` (``target`` broadcast to ``a``): the losses built on it
    do not depend on the scale of the features (the Oxford VGG-16's are ~255x torchvision's) nor,
    for features and Grams that are means over pixels, on the photo's size."""
    target = target.expand_as(a)
    return F.mse_loss(a, target, reduction="sum") / target.pow(2).sum().clamp_min(1e-30)


def gram(f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices ``(B, C, C)`` of ``(B, C, H, W)`` features, normalised by C and by the
    (masked) pixel count.

    With ``mask`` (``(H, W)`` weights) the features are weighted by it and the count is the
    mask's mass, so a region's Gram does not depend on the region's size.
    """
    c = f.shape[1]
    x = f.flatten(2)
    if mask is None:
        return x @ x.transpose(1, 2) / (c * x.shape[2])
    m = mask.flatten().to(x.dtype)
    return (x * m) @ x.transpose(1, 2) / (c * m.sum().clamp_min(1e-6))
