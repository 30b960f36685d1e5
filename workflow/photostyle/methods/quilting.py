"""Image quilting texture transfer: ``quilting`` (algorithm in :mod:`photostyle.ops.quilting`)."""

from __future__ import annotations

from dataclasses import dataclass

from photostyle.methods.base import Method, param


class Quilting(Method):
    name = "quilting"
    uses_gpu = False  # a few statistics or patch searches per photo: the GPU would idle
    description = ("Efros & Freeman texture transfer: style patches chosen by overlap + luminance-correspondence "
                   "error, pasted through minimum-error boundary cuts, several passes with shrinking patches; "
                   "patches from the matched style region; weight-free")
    citation = "Efros, Freeman: Image Quilting for Texture Synthesis and Transfer, SIGGRAPH 2001"

    @dataclass(frozen=True)
    class Params:
        max_side: int = param(512, "long side (px) the quilting runs at; the result is upsampled to the working size",
                              type="integer", minimum=32)
        patch: int = param(24, "patch side (px) of the first pass", type="integer", minimum=3)
        overlap: float = param(1 / 6, "overlap as a fraction of the patch side", type="number",
                               exclusiveMinimum=0, maximum=0.5)
        iterations: int = param(3, "passes, the patch shrinking by a third each time", type="integer", minimum=1)
        content_weight: float = param(0.9, "weight of the correspondence (content luminance) error in the first "
                                      "pass; it falls to 0.1 by the last (Efros & Freeman's schedule)",
                                      type="number", minimum=0, maximum=1)
        tolerance: float = param(0.1, "patches within (1 + tolerance) of the best error are drawn at random",
                                 type="number", minimum=0)
        blur: float = param(1.0, "Gaussian sigma (px) of the luminance used for correspondence", type="number",
                            minimum=0)
        max_candidates: int = param(6000, "style patches searched per patch (a grid of the style photo)",
                                    type="integer", minimum=16)

    def __call__(self, content, style, masks=None):
        import torch
        import torch.nn.functional as F

        from photostyle.ops.quilting import quilt

        p = self.params
        _, _, h, w = content.shape
        s = min(1.0, p.max_side / max(h, w))
        size = (max(1, round(h * s)), max(1, round(w * s)))
        small = F.interpolate(content, size=size, mode="area") if s < 1 else content
        st = style.image
        ss = min(1.0, p.max_side / max(st.shape[-2:]))
        st_small = F.interpolate(st, scale_factor=ss, mode="area") if ss < 1 else st
        regions = style_regions = None
        if masks is not None:
            regions = F.interpolate(masks.content_weights[None].float(), size=size, mode="area")[0].argmax(0).cpu()
            style_regions = F.interpolate(masks.style_masks[None].float(), size=st_small.shape[-2:],
                                          mode="nearest")[0].cpu() > 0.5
        seed = int(torch.randint(0, 2**31 - 1, (1,)))  # the stylize job seeds torch per photo x style
        out = quilt(small[0], st_small[0], patch=p.patch, overlap=p.overlap, iterations=p.iterations,
                    content_weight=p.content_weight, tolerance=p.tolerance, blur=p.blur,
                    max_candidates=p.max_candidates, seed=seed, content_regions=regions, style_regions=style_regions)
        out = out.to(content.dtype).to(content.device)[None]
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False) if s < 1 else out
