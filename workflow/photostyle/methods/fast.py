"""The ``fast`` method: a feed-forward network per style, trained by the ``fast`` trainer
(network, tiles and training in :mod:`photostyle.nets.fastnet`).

Output: the network's image, a 3x3 median filter (the seed's step, ``median_filter``), then
the refine stage's detail transfer. On CUDA: bf16 autocast and channels-last memory format
(``bf16``, ``channels_last``); same-size photos of a job go through the network together
(``batch_photos``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from photostyle.methods.base import Artifact, Method, param


class Fast(Method):
    name = "fast"
    description = ("feed-forward network trained per style (content loss on VGG-16 relu1_2, relu2_2, relu3_3 at "
                   "once, Gram style loss, TV, optional SSIM similarity term), then a 3×3 median; any photo size "
                   "(tiles with frozen whole-photo instance-norm statistics above `tile_megapixels`)")
    citation = ("Johnson, Alahi, Fei-Fei: Perceptual Losses for Real-Time Style Transfer, ECCV 2016; "
                "seed 000 (fast photographic style transfer)")
    uses_regions = False
    batches = True

    @dataclass(frozen=True)
    class Params:
        median_filter: bool = param(True, "3x3 median on the raw output (the seed's step)", type="boolean")
        tile_megapixels: float = param(4.0, "photos above this are processed in tiles", type="number",
                                       exclusiveMinimum=0)
        stats_megapixels: float = param(4.0, "instance-norm statistics of tiled photos are measured at this size",
                                        type="number", exclusiveMinimum=0)
        tile_overlap: int = param(128, "px; must exceed twice the net's receptive radius (54 px for 5 blocks)",
                                  type="integer", minimum=0)
        bf16: bool = param(True, "bfloat16 autocast on CUDA (ignored on CPU)", type="boolean")
        channels_last: bool = param(True, "channels-last memory format on CUDA", type="boolean")
        batch_photos: int = param(0, "same-size photos per network batch; 0: 8 on CUDA, 1 on CPU",
                                  type="integer", minimum=0)

    @classmethod
    def artifacts(cls, params, styles):
        return [Artifact("fast", s, s) for s in styles]

    def batch_size(self) -> int:
        """Photos per batch: ``batch_photos``; 0 = 8 on CUDA, 1 on CPU (where batching measured
        slower: benchmarks/fast_net.py)."""
        n = int(self.params.batch_photos)
        return n if n > 0 else (8 if self.device.type == "cuda" else 1)

    def _artifact(self, style_id: str) -> Artifact:
        return next(a for a in self.artifact_paths if a.style == style_id)

    def provenance(self, style_id: str) -> str:
        """``model=sha256:<digest>, loss network <arch>=<weights provenance>`` of the style's network."""
        from photostyle.nets.fastnet import read_meta

        art = self._artifact(style_id)
        loss_net = read_meta(self.artifact_paths[art]).get("loss_network", "?")
        return f"model=sha256:{self.artifact_digest(art)}, loss network {loss_net}"

    def __call__(self, content, style, masks=None):
        """``content`` may be a batch of same-size photos; photos large enough to need tiles go
        one at a time."""
        import torch

        from photostyle.nets.fastnet import load_model, median3, stylize_photo

        p = self.params
        h, w = content.shape[-2:]
        if content.shape[0] > 1 and h * w > p.tile_megapixels * 1e6:
            return torch.cat([self(c[None], style) for c in content])
        if "net" not in style.cache:  # once per style and job
            net, _ = load_model(self.artifact_paths[self._artifact(style.id)], self.device)
            if self.device.type == "cuda" and p.channels_last:
                net = net.to(memory_format=torch.channels_last)
            style.cache["net"] = net
        net = style.cache["net"]
        x = content
        ctx = contextlib.nullcontext()
        if self.device.type == "cuda":
            if p.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if p.bf16:
                ctx = torch.autocast("cuda", dtype=torch.bfloat16)
        with ctx, torch.inference_mode():
            # tiles are batched on CUDA only: on CPU one at a time is faster (benchmarks/fast_net.py)
            out = stylize_photo(net, x, p.tile_megapixels, p.stats_megapixels, p.tile_overlap,
                                batch=4 if self.device.type == "cuda" else 1)
        out = out.float().contiguous()
        if p.median_filter:
            out = median3(out)
        return out
