"""Optimisation methods ``gatys`` and ``dpst``: the output image itself is optimised, from the
content photo, against VGG-19 losses (algorithm in :mod:`photostyle.nets.optimise`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from photostyle.methods.base import Method, param

LAYERS = {"$ref": "#/$defs/vgg_layers"}


@dataclass(frozen=True)
class OptimParams:
    content_layers: list = param(["relu4_2"], **LAYERS)
    style_layers: list = param(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], **LAYERS)
    content_weight: float = param(1.0, type="number", minimum=0)
    style_weight: float = param(1.0e6, type="number", minimum=0)
    tv_weight: float = param(0.0, type="number", minimum=0)
    optimizer: str = param("lbfgs", enum=["lbfgs", "adam"])
    learning_rate: float = param(1.0, "L-BFGS step (1.0) or Adam rate (e.g. 0.02)", type="number",
                                 exclusiveMinimum=0)
    iterations: int = param(100, "optimiser steps per level", type="integer", minimum=1)
    scales: int = param(2, "coarse-to-fine levels", type="integer", minimum=1, maximum=6)
    work_side: int = param(512, "long side of the finest level", type="integer", minimum=32)
    log_every: int = param(10, type="integer", minimum=1)


class Gatys(Method):
    name = "gatys"
    description = ("optimises the image (L-BFGS or Adam, from the content photo) for VGG-19 content + Gram "
                   "style losses; coarse to fine up to `work_side`, larger photos get the change upsampled")
    citation = "Gatys, Ecker, Bethge: Image Style Transfer Using Convolutional Neural Networks, CVPR 2016"
    Params = OptimParams
    weights = ("vgg19-imagenet",)
    uses_regions = False
    traces = True
    photorealism = False

    def _network(self):
        if getattr(self, "_net", None) is None:  # built at the first photo, once per job
            from photostyle.nets.vgg import VGGFeatures, deepest_layer

            layers = list(self.params.content_layers) + list(self.params.style_layers)
            self._net = VGGFeatures("vgg19", self.resolved["vgg19-imagenet"], self.seed,
                                    last=deepest_layer("vgg19", layers)).to(self.device)
        return self._net

    def __call__(self, content, style, masks=None):
        from photostyle.nets.optimise import optimise

        out, style.trace = optimise(self._network(), content, style.image, dataclasses.asdict(self.params),
                                    style.cache, masks=masks if self.uses_regions else None,
                                    photorealism=self.photorealism)
        return out


class DPST(Gatys):
    name = "dpst"
    description = ("Gatys with one Gram loss per matched semantic region + the matting-Laplacian photorealism "
                   "term λ·ΣV_cᵀLV_c, computed matrix-free (O(N) memory)")
    citation = "Luan, Paris, Shechtman, Bala: Deep Photo Style Transfer, CVPR 2017"
    uses_regions = True
    photorealism = True

    @dataclass(frozen=True)
    class Params(OptimParams):
        photorealism_weight: float = param(1.0e4, "lambda of the matting-Laplacian term (paper: 1e4)",
                                           type="number", minimum=0)
        matting_eps: float = param(1.0e-7, type="number", exclusiveMinimum=0)
