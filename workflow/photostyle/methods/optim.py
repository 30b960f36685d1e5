"""Optimisation methods ``gatys`` and ``dpst``: the output image itself is optimised, from the
content photo, against VGG losses (algorithm in :mod:`photostyle.nets.optimise`).

``network: vgg16`` (default) is the ImageNet VGG-16 of Simonyan & Zisserman: the Oxford file
(``vgg16-oxford``, Caffe-scale activations, available offline) where it is found, else
torchvision's ``vgg16-imagenet`` (downloadable); ``vgg19`` is torchvision's VGG-19. The job
resolves the network once (:func:`photostyle.core.weights.resolve_network`) and its provenance
names the file actually used (``vgg16-oxford=sha256:...``). The losses are relative
(:mod:`photostyle.nets.optimise`), so the same weights serve either network and any photo size.

Correspondence to Luan et al.'s weights (content 5, style 100, lambda 1e4; their code takes
means over feature entries, Grams divided by C*H*W, and lambda times the *sum* over pixels of
the matting energy, on Caffe-scale VGG features): measured on the five DPST pairs at about
0.2 MP with the Oxford VGG-16, and expressed for ``content_weight: 1``, they become
``style_weight`` about 100 (36 to 705 over the pairs, median 107) and ``photorealism_weight``
about 1e4 (0.95e4 to 3.4e4; it grows with the pixel count in the paper's units, not here).
Hence the defaults 1 / 100 / 1e4. One difference remains: the paper's style sum is dominated by
relu2_1 and relu3_1 (their Grams are the largest), while here each layer's relative error counts
the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from photostyle.methods.base import Method, param

LAYERS = {"$ref": "#/$defs/vgg_layers"}
# registry names each network may resolve to, in order of preference (photostyle.core.weights.NETWORK_WEIGHTS,
# repeated here because method modules import nothing heavy while the DAG is built; a test checks they agree)
NETWORKS = {"vgg16": ("vgg16-oxford", "vgg16-imagenet"), "vgg19": ("vgg19-imagenet",)}


@dataclass(frozen=True)
class OptimParams:
    network: str = param("vgg16", "ImageNet VGG the losses use: vgg16 (the Oxford file where found, else "
                         "torchvision's) or vgg19 (torchvision's)", enum=["vgg16", "vgg19"])
    content_layers: list = param(["relu4_2"], **LAYERS)
    style_layers: list = param(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], **LAYERS)
    content_weight: float = param(1.0, "weight of the relative content error ||F(O)-F(I)||²/||F(I)||²",
                                  type="number", minimum=0)
    style_weight: float = param(100.0, "weight of the relative Gram error ||G(O)-G(S)||²/||G(S)||² (mean over layers)",
                                type="number", minimum=0)
    tv_weight: float = param(0.0, "weight of the mean absolute difference of neighbouring pixels",
                             type="number", minimum=0)
    optimizer: str = param("lbfgs", enum=["lbfgs", "adam"])
    learning_rate: float = param(1.0, "L-BFGS step (1.0) or Adam rate (e.g. 0.02)", type="number",
                                 exclusiveMinimum=0)
    iterations: int = param(100, "optimiser steps per level", type="integer", minimum=1)
    scales: int = param(2, "coarse-to-fine levels", type="integer", minimum=1, maximum=6)
    work_side: int = param(512, "long side of the finest level", type="integer", minimum=32)
    log_every: int = param(10, type="integer", minimum=1)
    init: str = param("content", "where the optimisation starts: content (the photo) or colour (the photo "
                      "with each matched region's colours moved to its style region's, Reinhard's transfer: "
                      "the losses then refine texture and photorealism instead of moving colours from afar)",
                      enum=["content", "colour"])


class Gatys(Method):
    name = "gatys"
    description = ("optimises the image (L-BFGS or Adam, from the content photo) for relative VGG content + Gram "
                   "style losses (ImageNet VGG-16 by default); coarse to fine up to `work_side`, larger photos "
                   "get the change upsampled")
    citation = "Gatys, Ecker, Bethge: Image Style Transfer Using Convolutional Neural Networks, CVPR 2016"
    Params = OptimParams
    weights = NETWORKS["vgg16"] + NETWORKS["vgg19"]  # narrowed by `network` (weights_for)
    uses_regions = False
    traces = True
    photorealism = False

    @classmethod
    def weights_for(cls, params) -> tuple[str, ...]:
        """The candidate files of ``params.network``; a job resolves one of them."""
        return NETWORKS[params.network]

    @classmethod
    def resolve_weights(cls, params, weights_cfg: dict, seed: int) -> dict:
        """The one file the network resolves to (the Oxford VGG-16 where found, else
        torchvision's; random with ``weights.mode: random``), under its own registry name."""
        from photostyle.core.weights import resolve_network

        r = resolve_network(params.network, weights_cfg, seed)
        return {r.spec.name: r}

    def _network(self):
        if getattr(self, "_net", None) is None:  # built at the first photo, once per job
            from photostyle.nets.vgg import VGGFeatures, deepest_layer

            arch = self.params.network
            (resolved,) = [r for n, r in self.resolved.items() if n in NETWORKS[arch]]
            layers = list(self.params.content_layers) + list(self.params.style_layers)
            self._net = VGGFeatures(arch, resolved, self.seed, last=deepest_layer(arch, layers)).to(self.device)
        return self._net

    def __call__(self, content, style, masks=None):
        from photostyle.nets.optimise import optimise

        masks = masks if self.uses_regions else None
        start = None
        if self.params.init == "colour":
            from photostyle.ops.colour import reinhard

            start = reinhard(content, style.image, masks, state=style.cache.setdefault("init", {}))
        out, style.trace = optimise(self._network(), content, style.image, dataclasses.asdict(self.params),
                                    style.cache, masks=masks, photorealism=self.photorealism, start=start)
        return out


class DPST(Gatys):
    name = "dpst"
    description = ("Gatys with one Gram loss per matched semantic region + the matting-Laplacian photorealism "
                   "term λ·ΣV_cᵀLV_c/N, computed matrix-free (O(N) memory)")
    citation = "Luan, Paris, Shechtman, Bala: Deep Photo Style Transfer, CVPR 2017"
    uses_regions = True
    photorealism = True

    @dataclass(frozen=True)
    class Params(OptimParams):
        photorealism_weight: float = param(1.0e4, "lambda of the matting-Laplacian term Σ_c V_cᵀLV_c / N "
                                           "(per pixel, image in [0, 1])", type="number", minimum=0)
        matting_eps: float = param(1.0e-7, type="number", exclusiveMinimum=0)
        init: str = param("colour", "where the optimisation starts: colour (each matched region's colours moved "
                          "to its style region's by Reinhard's transfer; measured on the five DPST pairs: region "
                          "colour distance 4.3 against 13.1 from the content at 30 steps) or content",
                          enum=["content", "colour"])
