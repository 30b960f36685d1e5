"""Per-style feed-forward networks (Johnson et al., ECCV 2016), as in "Fast photographic style
transfer": training with perceptual losses, and inference at any photo size.

Network: reflection-padded 9x9 conv, two stride-2 3x3 convs, residual blocks, two
nearest-upsample + 3x3 convs (no transposed convolutions: no checkerboard), a 9x9 conv to RGB;
instance norm and ReLU after every conv but the last. ``width`` (32 in the paper) and
``residual_blocks`` (5) are configurable, so tests can train tiny networks.

Inference at any size: the photo is padded (reflection) to a multiple of the network's
stride (4) and cropped back. Photos with more than ``tile_megapixels`` are processed in
overlapping tiles blended with linear ramps. Instance norm normalises each map by its own
statistics, which would differ from tile to tile and show as seams; so the statistics of
every norm layer are first measured on the whole photo (downscaled to at most
``stats_megapixels``) and the tiles are normalised with those frozen statistics. If the
photo fits within ``stats_megapixels`` the statistics are exact and tiled output equals
untiled output up to the tiles' border effects, which the overlap absorbs (tested).

Training (:func:`train`): Adam on random crops of the user's photos; content loss on several
VGG layers at once (low and high), Gram style loss -- both relative errors, so their weights
mean the same on torchvision's VGG-16 and on the Oxford one (Caffe-scale activations, which
``train.vgg: vgg16`` resolves to where found); the defaults (content 2, style 1.5e-4) reproduce
the former absolute weights (1 and 5 on torchvision-scale features) on the five DPST pairs'
photos -- total variation, optional pixel loss and
a structural-similarity term between output and content luminance (``pytorch_msssim``).
The loop, crops and checkpoints are :mod:`photostyle.trainloop`'s (shared with the decoders
of the universal methods).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from photostyle.core.tensors import pad_to_multiple
from photostyle.nets.vgg import gram, relative_error

log = logging.getLogger(__name__)

STRIDE = 4


class FrozenableInstanceNorm(nn.InstanceNorm2d):
    """Instance norm that can record its statistics on one input and reuse them on others."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=True)
        self.mode = "normal"  # normal | record | frozen
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x):
        if self.mode == "normal":
            return super().forward(x)
        if self.mode == "record":
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
            self.stats = (mean, var)
        mean, var = self.stats
        y = (x - mean.to(x.dtype)) * torch.rsqrt(var + self.eps).to(x.dtype)
        return y * self.weight.view(1, -1, 1, 1).to(x.dtype) + self.bias.view(1, -1, 1, 1).to(x.dtype)


def _conv(cin, cout, k, stride=1, norm=True, relu=True):
    layers = [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride)]
    if norm:
        layers.append(FrozenableInstanceNorm(cout))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3), _conv(c, c, 3, relu=False))

    def forward(self, x):
        return x + self.body(x)


class Upsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _conv(cin, cout, 3)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TransformerNet(nn.Module):
    def __init__(self, width: int = 32, residual_blocks: int = 5):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv(3, w, 9), _conv(w, 2 * w, 3, 2), _conv(2 * w, 4 * w, 3, 2),
            *[Residual(4 * w) for _ in range(residual_blocks)],
            Upsample(4 * w, 2 * w), Upsample(2 * w, w), _conv(w, 3, 9, norm=False, relu=False),
        )
        self.width, self.residual_blocks = width, residual_blocks

    def forward(self, x):
        """``(B, 3, H, W)`` in [0, 1] with H, W multiples of 4 -> the same shape (unclamped)."""
        return self.body(x)

    def set_norm_mode(self, mode: str) -> None:
        for m in self.modules():
            if isinstance(m, FrozenableInstanceNorm):
                m.mode = mode


# --- inference ----------------------------------------------------------------------------
def run_plain(net: TransformerNet, x: torch.Tensor) -> torch.Tensor:
    """The network on a whole batch of same-size photos, any size (padded to the stride)."""
    xp, h, w = pad_to_multiple(x, STRIDE)
    return net(xp)[..., :h, :w]


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool, device) -> torch.Tensor:
    """Blend weights along one side of a tile. Neighbouring tiles share a band of
    ``2 * overlap`` px: each tile ignores the outer ``overlap / 2`` px of the band (where its
    own border padding shows) and the weights cross linearly over the middle ``overlap`` px."""
    r = torch.ones(n, device=device)
    dead = overlap // 2
    if overlap > 0:
        ramp = (torch.arange(overlap, device=device, dtype=torch.float32) + 0.5) / overlap
        if not at_start:
            r[:dead] = 0
            r[dead:dead + overlap] = ramp
        if not at_end:
            r[n - dead:] = 0
            r[n - dead - overlap:n - dead] = torch.minimum(r[n - dead - overlap:n - dead], ramp.flip(0))
    return r


def _tiles(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of tiles along one side. Starts are multiples of the network's stride, so
    every tile sees the same down-sampling grid as the whole photo; the last tile ends at ``n``
    (and may be up to ``STRIDE - 1`` px longer than ``tile``)."""
    if n <= tile:
        return [(0, n)]
    step = tile - 2 * overlap
    starts = list(range(0, n - tile, step)) + [(n - tile) // STRIDE * STRIDE]
    starts = sorted(set(starts))
    return [(s0, s0 + tile) for s0 in starts[:-1]] + [(starts[-1], n)]


def stylize_photo(net: TransformerNet, x: torch.Tensor, tile_megapixels: float = 4.0,
                  stats_megapixels: float = 4.0, overlap: int = 128, batch: int = 4,
                  force_tiles: int | None = None) -> torch.Tensor:
    """``(1, 3, H, W)`` -> ``(1, 3, H, W)`` in [0, 1]; tiled above ``tile_megapixels``.

    ``force_tiles`` (tests, benchmarks) sets the tile side and forces tiling.
    """
    h, w = x.shape[-2:]
    if force_tiles is None and h * w <= tile_megapixels * 1e6:
        net.set_norm_mode("normal")
        return run_plain(net, x).clamp(0, 1)
    # 1. instance-norm statistics of the whole photo (downscaled if needed), frozen
    s = min(1.0, math.sqrt(stats_megapixels * 1e6 / (h * w)))
    small = x if s >= 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", antialias=True, align_corners=False)
    net.set_norm_mode("record")
    try:
        run_plain(net, small)
        net.set_norm_mode("frozen")
        # 2. overlapping tiles (side a multiple of the stride), in batches, blended with ramps
        side = force_tiles or max(4 * overlap, int(math.sqrt(tile_megapixels * 1e6)) // STRIDE * STRIDE)
        if side < 3 * overlap:
            raise ValueError(f"tile side {side} must be at least 3x the overlap {overlap}")
        ys, xs = _tiles(h, side, overlap), _tiles(w, side, overlap)
        out = torch.zeros(1, 3, h, w, device=x.device, dtype=torch.float32)
        weight = torch.zeros(1, 1, h, w, device=x.device, dtype=torch.float32)
        boxes = [(y0, y1, x0, x1) for y0, y1 in ys for x0, x1 in xs]
        for i in range(0, len(boxes), batch):
            group = boxes[i:i + batch]
            crops = [x[..., y0:y1, x0:x1] for y0, y1, x0, x1 in group]
            same = all(c.shape == crops[0].shape for c in crops)
            results = run_plain(net, torch.cat(crops)) if same else [run_plain(net, c)[0] for c in crops]
            for (y0, y1, x0, x1), res in zip(group, results):
                th, tw = res.shape[-2:]
                wy = _ramp(th, overlap, y0 == 0, y1 >= h, x.device)
                wx = _ramp(tw, overlap, x0 == 0, x1 >= w, x.device)
                wt = (wy[:, None] * wx[None, :])[None, None]
                out[..., y0:y0 + th, x0:x0 + tw] += res.float() * wt
                weight[..., y0:y0 + th, x0:x0 + tw] += wt
        return (out / weight).clamp(0, 1)
    finally:
        net.set_norm_mode("normal")


def median3(x: torch.Tensor) -> torch.Tensor:
    """3x3 median filter per channel (reflection at the borders), as the seed applies to the raw output."""
    if min(x.shape[-2:]) < 2:
        return x
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    for ch in range(c):  # one channel at a time keeps the 9x buffer small
        p = F.pad(x[:, ch:ch + 1], (1, 1, 1, 1), mode="reflect")
        out[:, ch] = F.unfold(p, 3).view(b, 9, h, w).median(dim=1).values
    return out


# --- model files ----------------------------------------------------------------------------
def save_model(path: str | Path, net: TransformerNet, meta: dict[str, str]) -> None:
    """Atomic write of the trained network and its provenance (strings), loadable with weights_only."""
    from photostyle.core.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"state_dict": net.state_dict(), "width": net.width,
                    "residual_blocks": net.residual_blocks, "meta": dict(meta)}, tmp)


def load_model(path: str | Path, device) -> tuple[TransformerNet, dict[str, str]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = TransformerNet(blob["width"], blob["residual_blocks"])
    net.load_state_dict(blob["state_dict"])
    return net.to(device).eval(), blob["meta"]


def read_meta(path: str | Path) -> dict[str, str]:
    """The provenance strings saved with a trained model (empty for a rejected-style marker)."""
    return torch.load(path, map_location="cpu", weights_only=True).get("meta", {})


def model_provenance(path: str | Path) -> str:
    """``model=sha256:<digest>, loss network <arch>=<weights provenance>`` of a trained model."""
    from photostyle.core.weights import sha256_file

    return f"model=sha256:{sha256_file(path)}, loss network {read_meta(path).get('loss_network', '?')}"


# --- training -------------------------------------------------------------------------------
class PerceptualLoss:
    """Johnson et al.'s losses with the seed's multi-layer content term, on a frozen VGG."""

    def __init__(self, vgg, style: torch.Tensor, cfg: dict):
        self.vgg, self.cfg = vgg, cfg
        self.c_layers, self.s_layers = list(cfg["content_layers"]), list(cfg["style_layers"])
        with torch.no_grad():
            feats = vgg(style, self.s_layers)
            self.style_grams = {k: gram(v) for k, v in feats.items()}

    def __call__(self, out: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        layers = list(dict.fromkeys(self.c_layers + self.s_layers))
        fo = self.vgg(out, layers)
        with torch.no_grad():
            fc = self.vgg(content, self.c_layers)
        # relative errors (photostyle.nets.vgg.relative_error): the same on torchvision's VGG and on
        # the Oxford one, whose activations are ~255x larger
        parts = {"content": cfg["content_weight"] * sum(relative_error(fo[n], fc[n]) for n in self.c_layers) / len(self.c_layers)}
        style = 0.0
        for n in self.s_layers:
            style = style + relative_error(gram(fo[n]), self.style_grams[n])
        parts["style"] = cfg["style_weight"] * style / len(self.s_layers)
        parts["tv"] = cfg["tv_weight"] * ((out[..., 1:, :] - out[..., :-1, :]).abs().sum()
                                          + (out[..., :, 1:] - out[..., :, :-1]).abs().sum()) / out.shape[0]
        if cfg["pixel_weight"] > 0:
            parts["pixel"] = cfg["pixel_weight"] * F.mse_loss(out, content)
        if cfg["similarity_weight"] > 0:
            from pytorch_msssim import ssim

            from photostyle.core.tensors import luminance

            sim = ssim(luminance(out.clamp(0, 1)), luminance(content), data_range=1.0, size_average=True,
                       win_size=min(11, (min(out.shape[-2:]) // 2) * 2 - 1))
            parts["similarity"] = cfg["similarity_weight"] * (1 - sim)
        if cfg.get("photorealism_weight", 0) > 0:
            parts["photorealism"] = cfg["photorealism_weight"] * photorealism_energy(out, content, cfg.get("matting_eps", 1e-7))
        return parts


def photorealism_energy(out: torch.Tensor, content: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Seed 003's photorealism constraint for fast networks (as DPST's term): the mean over the
    batch of ``sum_c V_c[O]^T M_I V_c[O]``, per pixel, with ``M_I`` the matrix-free matting
    Laplacian of each training crop (:class:`photostyle.ops.matting.MattingLaplacian`);
    differentiable in ``out``."""
    from photostyle.ops.matting import MattingLaplacian

    total = 0.0
    for o, c in zip(out, content):
        total = total + MattingLaplacian(c.detach(), eps=eps).quadratic(o) / o[0].numel()
    return total / out.shape[0]


LOSS_COLUMNS = ("step", "total", "content", "style", "tv", "pixel", "similarity", "photorealism", "seconds")


def train(style: torch.Tensor, photos: list[np.ndarray], cfg: dict, vgg, out_model: str | Path,
          checkpoint: str | Path, loss_csv: str | Path, meta: dict[str, str], device,
          stop_after: int | None = None) -> TransformerNet:
    """Train a network for one style (``cfg``: the config's ``train`` section and ``seed``);
    checkpointing and resumption as described in :func:`photostyle.trainloop.fit`."""
    from photostyle.nets.trainloop import CropSampler, fit

    torch.manual_seed(cfg["seed"])
    net = TransformerNet(cfg["width"], cfg["residual_blocks"]).to(device)
    loss_fn = PerceptualLoss(vgg, style.to(device), cfg)
    sampler = CropSampler(photos, cfg["image_size"], cfg["seed"])
    return fit(net, lambda x: loss_fn(net(x), x), sampler, cfg, lambda n: save_model(out_model, n, meta),
               checkpoint, loss_csv, LOSS_COLUMNS, meta, device, stop_after)
