"""The ``fast`` method: a per-style feed-forward network trained by the ``train_fast`` rule.

The stylize driver hands each style's trained model file in ``state["model_path"]`` (and
records its digest in the provenance); the network is loaded once per style and job.
Output: the network's image, a 3x3 median filter (the seed's step, ``median_filter``), then
the refine stage's detail transfer. On CUDA: bf16 autocast and channels-last memory format
(``bf16``, ``channels_last``).
"""

from __future__ import annotations

import contextlib

import torch

from ..fastnet import load_model, median3, stylize_photo


def fast(content, style, *, masks=None, params, device, state):
    """``content`` may be a batch of same-size photos (the driver's ``batch_photos``); photos
    large enough to need tiles go one at a time."""
    h, w = content.shape[-2:]
    if content.shape[0] > 1 and h * w > params["tile_megapixels"] * 1e6:
        return torch.cat([fast(c[None], style, params=params, device=device, state=state) for c in content])
    if "net" not in state:
        net, _ = load_model(state["model_path"], device)
        if device.type == "cuda" and params["channels_last"]:
            net = net.to(memory_format=torch.channels_last)
        state["net"] = net
    net = state["net"]
    x = content
    ctx = contextlib.nullcontext()
    if device.type == "cuda":
        if params["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        if params["bf16"]:
            ctx = torch.autocast("cuda", dtype=torch.bfloat16)
    with ctx, torch.inference_mode():
        # tiles are batched on CUDA only: on CPU one at a time is faster (benchmarks/fast_net.py)
        out = stylize_photo(net, x, params["tile_megapixels"], params["stats_megapixels"], params["tile_overlap"],
                            batch=4 if device.type == "cuda" else 1)
    out = out.float().contiguous()
    if params["median_filter"]:
        out = median3(out)
    return out
