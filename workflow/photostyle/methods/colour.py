"""Classical colour transfer methods: ``reinhard`` and ``mkl`` (algorithms in :mod:`photostyle.ops.colour`).
Both leave their colour map with each output (``style.colour_map``), which the lift applies exactly."""

from __future__ import annotations

from dataclasses import dataclass

from photostyle.methods.base import Method, param

STRENGTH = {"$ref": "#/$defs/strength"}


class Reinhard(Method):
    name = "reinhard"
    uses_gpu = False  # a few statistics or patch searches per photo: the GPU would idle
    description = "per-channel mean/std in the lαβ (log-LMS) space; per matched region with segmentation"
    citation = "Reinhard, Ashikhmin, Gooch, Shirley: Color Transfer between Images, IEEE CG&A 2001"

    @dataclass(frozen=True)
    class Params:
        colour_space: str = param("lalphabeta", enum=["lalphabeta", "rgb"])
        strength: float = param(1.0, **STRENGTH)

    def __call__(self, content, style, masks=None):
        from photostyle.ops.colour import reinhard

        p = self.params
        out, style.colour_map = reinhard(content, style.image, masks, colour_space=p.colour_space,
                                         strength=p.strength, state=style.cache, with_map=True)
        return out


class MKL(Method):
    name = "mkl"
    uses_gpu = False  # a few statistics or patch searches per photo: the GPU would idle
    description = "linear Monge–Kantorovich map: the style's RGB mean and full covariance; per matched region"
    citation = "Pitié, Kokaram: The linear Monge-Kantorovitch linear colour mapping, CVMP 2007"

    @dataclass(frozen=True)
    class Params:
        eps: float = param(1.0e-6, type="number", minimum=0)
        strength: float = param(1.0, **STRENGTH)

    def __call__(self, content, style, masks=None):
        from photostyle.ops.colour import mkl

        p = self.params
        out, style.colour_map = mkl(content, style.image, masks, eps=p.eps, strength=p.strength, state=style.cache,
                                    with_map=True)
        return out
