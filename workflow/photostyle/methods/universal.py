"""The universal methods ``wct``, ``photowct`` and ``adain`` (see :mod:`photostyle.universal`).

No per-style training: one VGG-19 encoder (weights from the resolver, in
``state["job"]["weights"]``) and the decoders trained once by the ``train_decoder`` rule
(paths in ``state["job"]["decoder_paths"]``, level -> file; their digests are in every
output's provenance). Both are loaded once per job; style statistics once per style.

* ``wct``: multi-level, coarse to fine (default relu5_1, 4_1, ..., 1_1): encode the current
  image, whiten-colour its features with the style's, decode with the level's upsampling
  decoder; the next level starts from that image.
* ``photowct``: the same with unpooling decoders, which put features back at the positions the
  max pooling took them from (photorealistic structure). FastPhotoStyle's smoothing step is
  the refine stage's ``smoothing`` option.
* ``adain``: one level (relu4_1), per-channel mean/std, upsampling decoder.

Photos are reflection-padded to a multiple of 2^(deepest level - 1) and cropped back, so any
size keeps its size.
"""

from __future__ import annotations

import torch

from ..tensors import pad_to_multiple
from ..universal import Encoder, load_decoder, transform


def _models(params: dict, state: dict, device):
    job = state["job"]
    if "encoder" not in job:
        resolved = job["weights"]["vgg19-imagenet"]
        from ..vgg import VGGFeatures

        levels = job["decoder_paths"]
        encoder = Encoder(VGGFeatures("vgg19", resolved, job["seed"], f"relu{max(levels)}_1")).to(device)
        decoders = {}
        for lv, path in levels.items():
            decoders[lv], meta = load_decoder(path, device)
            trained_with, here = meta.get("encoder", "unknown"), f"vgg19={encoder.provenance}"
            if trained_with != here:  # e.g. pretrained weights arrived after the decoders were trained
                raise RuntimeError(f"decoder {path} was trained with encoder {trained_with}, but this job's "
                                   f"encoder is {here}; retrain it: snakemake --forcerun train_decoder")
        job["encoder"], job["decoders"] = encoder, decoders
    return job["encoder"], job["decoders"]


def universal(content, style, *, masks, params, device, state, kind: str, levels) -> torch.Tensor:
    encoder, decoders = _models(params, state, device)
    alpha, eps = params["alpha"], params["eps"]
    x, h, w = pad_to_multiple(content, 2 ** (max(levels) - 1))
    feats = state.setdefault("style_features", {})
    cache = state.setdefault("style_stats", {})
    for level in levels:
        if level not in feats:
            feats[level] = encoder.encode(style, level)[0]
        fc, pools = encoder.encode(x, level)
        t = transform(fc, feats[level], kind, eps, masks, cache, key=(kind, level))
        if alpha < 1:
            t = torch.lerp(fc, t, alpha)
        x = decoders[level](t, pools)
    return x[..., :h, :w].clamp(0, 1)


def wct(content, style, *, masks=None, params, device, state):
    return universal(content, style, masks=masks, params=params, device=device, state=state, kind="wct",
                     levels=params["levels"])


def photowct(content, style, *, masks=None, params, device, state):
    return universal(content, style, masks=masks, params=params, device=device, state=state, kind="wct",
                     levels=params["levels"])


def adain(content, style, *, masks=None, params, device, state):
    return universal(content, style, masks=masks, params=params, device=device, state=state, kind="adain",
                     levels=[params["level"]])
