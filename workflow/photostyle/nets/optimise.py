"""Image optimisation of the methods ``gatys`` and ``dpst`` (:mod:`photostyle.methods.optim`): Gatys et al. (CVPR 2016) and Deep Photo Style Transfer (Luan et
al., CVPR 2017). Both optimise the output image itself, starting from the content photo.

Losses (features of the chosen VGG -- the ImageNet VGG-16 by default, see
:mod:`photostyle.methods.optim` -- of the image in [0, 1], ImageNet-normalised inside). Each is
*relative*, so a weight means the same whatever the photo's size and whatever the scale of the
network's activations (the Oxford VGG-16's are at Caffe scale, about 255x torchvision's):

* content: mean over ``content_layers`` of ``||F(O) - F(I)||^2 / ||F(I)||^2`` (the squared error
  relative to the content features' own energy; 1 = as far as an all-zero feature map);
* style: mean over ``style_layers`` of ``||G(O) - G(S)||^2 / ||G(S)||^2`` with Gram matrices
  normalised by channels and pixels (:func:`photostyle.nets.vgg.gram`). ``dpst`` uses the
  augmented style loss: one Gram pair per matched semantic region, the masks (from the
  segmentation stage) resized to each layer, each Gram normalised by its region's mass, each
  region's relative error weighted by its share of the content photo -- so sky is styled from
  sky, and one region spanning the photo gives the plain loss. Without segmentation there is
  one region (the whole photo);
* ``dpst`` adds the photorealism term ``lambda * sum_c V_c[O]^T L V_c[O] / N`` with the matting
  Laplacian L of the content (:class:`photostyle.ops.matting.MattingLaplacian`, matrix-free),
  V_c the channels in [0, 1], N the pixel count: about 9x the mean residual variance (per
  pixel, per 3x3 window) of the output's colours after the best local affine fit from the
  content's -- in image units, so independent of the network's scale, and per pixel, so
  independent of the photo's size (the paper's ``lambda`` multiplies the sum over pixels);
* optional total variation (mean absolute difference of neighbouring pixels).

Coarse to fine: the image is optimised at ``scales`` levels, each twice the size of the
previous, the finest with long side ``min(work_side, photo)``; each level starts from the
previous level's change upsampled onto the content at the new size. If the photo is larger
than ``work_side``, the change (output - content at working size) is upsampled onto the
full-resolution content, so time and memory are bounded whatever the photo size and the
content's full-resolution detail is kept (the refine stage then transfers detail again).

Progress (losses, seconds) goes to the job log every ``log_every`` loss evaluations; the
trace of each output (losses at every evaluation, L-BFGS line-search trials included, and
at each level's result) is returned with it and written next to it.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F

from photostyle.ops.matting import MattingLaplacian
from photostyle.nets.vgg import VGGFeatures, gram, relative_error

log = logging.getLogger(__name__)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def level_sizes(h: int, w: int, work_side: int, scales: int, min_side: int = 32) -> list[tuple[int, int]]:
    """Working sizes, coarse to fine; the finest has long side ``min(work_side, max(h, w))``."""
    s = min(1.0, work_side / max(h, w))
    sizes = []
    for j in range(scales - 1, -1, -1):
        f = s / 2**j
        size = (max(1, round(h * f)), max(1, round(w * f)))
        if min(size) >= min_side or j == 0:
            sizes.append(size)
    return sizes


def _region_masks(masks, size: tuple[int, int], style: bool) -> torch.Tensor | None:
    """Matched masks resized to ``size``: ``(K, h, w)`` float weights (``None``: one region)."""
    if masks is None:
        return None
    m = (masks.style_masks if style else masks.content_weights).float()
    return F.interpolate(m[None], size=size, mode="area" if m.shape[-1] >= size[-1] else "bilinear")[0]


def _style_targets(net, style: torch.Tensor, size_long: int, layers, masks, state: dict) -> dict:
    """Per layer, the list of style Gram matrices (one per matched region, or one)."""
    h, w = style.shape[-2:]
    f = min(1.0, size_long / max(h, w))
    size = (max(1, round(h * f)), max(1, round(w * f)))
    cache = state.setdefault("style_features", {})
    if size not in cache:  # per style and working size, shared by all photos of the job
        with torch.no_grad():
            cache[size] = {k: v.detach() for k, v in net(_resize(style, size), layers).items()}
    feats = cache[size]
    targets = {}
    for name in layers:
        fl = feats[name]
        region = _region_masks(masks, tuple(fl.shape[-2:]), style=True)
        if region is None:
            targets[name] = [gram(fl)]
        else:
            targets[name] = [gram(fl, region[k]) if float(region[k].sum()) > 1e-6 else None
                             for k in range(region.shape[0])]
    return targets


def _content_regions(feats: dict, layers, masks) -> dict:
    """Content region masks at each style layer's resolution (``None``: one region), computed
    once per level rather than at every loss evaluation."""
    if masks is None:
        return dict.fromkeys(layers)
    return {k: _region_masks(masks, tuple(feats[k].shape[-2:]), style=False) for k in layers}


def _content_loss(feats: dict, targets: dict) -> torch.Tensor:
    return sum(relative_error(feats[n], t) for n, t in targets.items()) / len(targets)


def _style_loss(feats: dict, targets: dict, regions: dict) -> torch.Tensor:
    """Mean over layers of the relative Gram error; with regions, each region's relative error
    weighted by its share of the content (among regions that have a style target)."""
    total = 0.0
    for name, grams in targets.items():
        fl = feats[name]
        region = regions[name]
        if region is None:
            total = total + relative_error(gram(fl), grams[0])
            continue
        used = [(k, g) for k, g in enumerate(grams) if g is not None and float(region[k].sum()) > 1e-6]
        mass = sum(float(region[k].sum()) for k, _ in used)
        for k, g in used:
            total = total + float(region[k].sum()) / mass * relative_error(gram(fl, region[k]), g)
    return total / len(targets)


def _tv(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def optimise(net: VGGFeatures, content: torch.Tensor, style: torch.Tensor, params: dict, state: dict,
             masks=None, photorealism: bool = False, start: torch.Tensor | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Optimise the output image for ``(1, 3, H, W)`` content and ``(1, 3, h, w)`` style with the
    VGG ``net``; ``params`` is the method's config block, ``state`` a per-style cache (style
    features per working size). ``start`` (content's size; default the content) is where the
    coarsest level starts. Returns the image and its trace (losses per evaluation)."""
    c_layers, s_layers = list(params["content_layers"]), list(params["style_layers"])
    h, w = content.shape[-2:]
    sizes = level_sizes(h, w, params["work_side"], params["scales"])
    trace = []
    t0 = time.perf_counter()
    x_prev = c_prev = None
    for level, size in enumerate(sizes):
        c_lvl = _resize(content, size)
        if x_prev is None:
            init = c_lvl if start is None else _resize(start, size)
        else:
            init = c_lvl + _resize(x_prev - c_prev, size)
        x = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)
        with torch.no_grad():  # one forward: content targets, and the layer sizes of the masks
            c_feats = net(c_lvl, c_layers + s_layers)
        c_targets = {k: c_feats[k].detach() for k in c_layers}
        c_regions = _content_regions(c_feats, s_layers, masks)
        del c_feats
        s_targets = _style_targets(net, style, max(size), s_layers, masks, state)
        lap = MattingLaplacian(c_lvl, eps=params.get("matting_eps", 1e-7)) if photorealism else None
        n_evals: list = [0]  # None while evaluating the level's result

        def losses() -> torch.Tensor:
            feats = net(x, c_layers + s_layers)
            parts = {
                "content": params["content_weight"] * _content_loss(feats, c_targets),
                "style": params["style_weight"] * _style_loss(feats, s_targets, c_regions),
            }
            if params.get("tv_weight", 0) > 0:
                parts["tv"] = params["tv_weight"] * _tv(x)
            if lap is not None:  # per pixel, so the weight means the same at every level
                parts["photorealism"] = params["photorealism_weight"] * lap.quadratic(x[0]) / x[0, 0].numel()
            total = sum(parts.values())
            values = {"total": float(total.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
            row = {"evaluation": len(trace) + 1, "level": level, "height": size[0], "width": size[1],
                   "seconds": round(time.perf_counter() - t0, 4), **values}
            trace.append(row)
            if n_evals[0] is None or n_evals[0] % params["log_every"] == 0:
                what = "result" if n_evals[0] is None else f"evaluation {n_evals[0] + 1}"
                log.info("level %d/%d %dx%d %s: %s (%.1f s)", level + 1, len(sizes), size[0], size[1],
                         what, ", ".join(f"{k} {v:.4g}" for k, v in values.items()), row["seconds"])
            if n_evals[0] is not None:
                n_evals[0] += 1
            return total

        def closure():
            opt.zero_grad(set_to_none=True)
            total = losses()
            total.backward()
            return total

        with torch.enable_grad():
            if params["optimizer"] == "lbfgs":
                # One call runs all iterations: L-BFGS keeps its history and line search within
                # it. The losses are means (resolution independent) and their gradients small,
                # so torch's default tolerances (1e-7 on the gradient) would stop it at once.
                opt = torch.optim.LBFGS([x], lr=params["learning_rate"], max_iter=params["iterations"],
                                        history_size=20, line_search_fn="strong_wolfe",
                                        tolerance_grad=1e-15, tolerance_change=1e-15)
                opt.step(closure)
            else:
                opt = torch.optim.Adam([x], lr=params["learning_rate"])
                for _ in range(params["iterations"]):
                    opt.step(closure)
                    with torch.no_grad():
                        x.clamp_(0, 1)
        with torch.no_grad():  # the level's result, last in the trace
            n_evals[0] = None
            losses()
        x_prev, c_prev = x.detach().clamp(0, 1), c_lvl
    if tuple(x_prev.shape[-2:]) != (h, w):
        return (content + _resize(x_prev - c_prev, (h, w))).clamp(0, 1), trace
    return x_prev, trace

