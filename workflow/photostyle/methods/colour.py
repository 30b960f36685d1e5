"""Classical colour transfer methods: ``reinhard`` and ``mkl`` (algorithms in :mod:`photostyle.ops.colour`).
Both leave their colour map with each output (``style.colour_map``), which the lift applies exactly.

Both are *scoped* (``stylize.scope``): at ``photo`` scope each photo's map is fitted to its own
statistics; at ``folder`` or ``collection`` scope the grade stage fits one map per style and
folder (collection) on pooled pixel samples (:mod:`photostyle.stages.grade`), and the stylize
job hands it to the method in ``style.shared``; the method then applies that map."""

from __future__ import annotations

from dataclasses import dataclass

from photostyle.methods.base import Method, param

STRENGTH = {"$ref": "#/$defs/strength"}


class ColourMethod(Method):
    """A global colour map of the content (per matched region with segmentation)."""

    uses_gpu = False  # a few statistics per photo: the GPU would idle
    scoped = True

    @classmethod
    def fit_options(cls, params) -> dict:
        """What :func:`photostyle.ops.colour.fit_shared` needs besides the statistics (``kind``,
        ``space``, ``strength``, ``eps``)."""
        raise NotImplementedError

    def transfer(self, content, style, masks):
        raise NotImplementedError

    def __call__(self, content, style, masks=None):
        if style.shared is not None:  # folder/collection scope: the shared fit
            from photostyle.ops.colour import apply_shared

            out, style.colour_map = apply_shared(content, style.shared, masks)
            return out
        return self.transfer(content, style, masks)


class Reinhard(ColourMethod):
    name = "reinhard"
    description = "per-channel mean/std in the lαβ (log-LMS) space; per matched region with segmentation"
    citation = "Reinhard, Ashikhmin, Gooch, Shirley: Color Transfer between Images, IEEE CG&A 2001"

    @dataclass(frozen=True)
    class Params:
        colour_space: str = param("lalphabeta", enum=["lalphabeta", "rgb"])
        strength: float = param(1.0, **STRENGTH)

    @classmethod
    def fit_options(cls, params) -> dict:
        return {"kind": "reinhard", "space": params.colour_space, "strength": params.strength}

    def transfer(self, content, style, masks):
        from photostyle.ops.colour import reinhard

        p = self.params
        out, style.colour_map = reinhard(content, style.image, masks, colour_space=p.colour_space,
                                         strength=p.strength, state=style.cache, with_map=True)
        return out


class MKL(ColourMethod):
    name = "mkl"
    description = "linear Monge–Kantorovich map: the style's RGB mean and full covariance; per matched region"
    citation = "Pitié, Kokaram: The linear Monge-Kantorovitch linear colour mapping, CVMP 2007"

    @dataclass(frozen=True)
    class Params:
        eps: float = param(1.0e-6, type="number", minimum=0)
        strength: float = param(1.0, **STRENGTH)

    @classmethod
    def fit_options(cls, params) -> dict:
        return {"kind": "mkl", "space": "rgb", "strength": params.strength, "eps": params.eps}

    def transfer(self, content, style, masks):
        from photostyle.ops.colour import mkl

        p = self.params
        out, style.colour_map = mkl(content, style.image, masks, eps=p.eps, strength=p.strength, state=style.cache,
                                    with_map=True)
        return out
