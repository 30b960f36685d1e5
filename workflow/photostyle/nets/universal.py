"""Universal style transfer: a VGG-19 encoder, mirror decoders, and the feature transforms of
WCT (Li et al., NIPS 2017), PhotoWCT (Li et al., ECCV 2018) and AdaIN (Huang & Belongie, 2017).

Encoder: VGG-19 through the weights resolver (:mod:`photostyle.vgg`), cut after ``relu<k>_1``
for level k (1-5). Decoders mirror the encoder's prefix layer by layer (3x3 convs, reflection
padding, ReLU but after the last): the ``upsample`` family replaces each max pooling with a
nearest 2x upsampling (WCT, AdaIN), the ``unpool`` family with max-unpooling at the indices the
encoder's pooling recorded (PhotoWCT), which puts content back where it came from. Decoders are
trained once per family and level on the user's collection (rule ``train_model``, trainer ``decoder``): pixel
reconstruction plus a feature loss (the re-encoded output against the input features).

The feature transforms (whitening-colouring, AdaIN, per region) are in :mod:`photostyle.ops.wct`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from photostyle.nets.vgg import VGGFeatures

LEVELS = (1, 2, 3, 4, 5)
FAMILIES = ("upsample", "unpool")


def level_layer(level: int) -> str:
    if level not in LEVELS:
        raise ValueError(f"level {level} not in {LEVELS}")
    return f"relu{level}_1"


# --- encoder ------------------------------------------------------------------------------
class Encoder(nn.Module):
    """VGG-19 to ``relu<max_level>_1``; ``encode(x, level)`` also returns the pooling indices."""

    def __init__(self, vgg: VGGFeatures):
        super().__init__()
        self.vgg = vgg
        self.provenance = vgg.provenance

    @classmethod
    def load(cls, weights_cfg: dict, seed: int, max_level: int) -> "Encoder":
        return cls(VGGFeatures.load("vgg19", weights_cfg, seed, level_layer(max_level)))

    def encode(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, list]:
        """``(B, 3, H, W)`` in [0, 1] -> features at ``relu<level>_1`` and
        ``[(indices, size before pooling), ...]`` of the poolings passed, in order."""
        from photostyle.core.tensors import imagenet_normalize

        target = self.vgg.names.index(level_layer(level))
        pools = []
        x = imagenet_normalize(x)
        for i, (name, module) in enumerate(zip(self.vgg.names, self.vgg.features)):
            if isinstance(module, nn.MaxPool2d):
                size = x.shape[-2:]
                x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
                pools.append((idx, size))
            else:
                x = module(x)
            if i == target:
                return x, pools
        raise ValueError(f"the encoder stops before {level_layer(level)}")


def _prefix(level: int) -> list:
    """VGG-19's layers up to ``relu<level>_1``: ``(c_in, c_out)`` per conv, ``"M"`` per pooling."""
    from torchvision.models.vgg import cfgs

    out, cin, block = [], 3, 1
    for v in cfgs["E"]:
        if v == "M":
            block += 1
            out.append("M")
            continue
        out.append((cin, v))
        cin = v
        if block == level:
            return out
    raise ValueError(f"level {level} beyond VGG-19")


class Decoder(nn.Module):
    """Mirror of the encoder to ``relu<level>_1``: features -> RGB in [0, 1] (unclamped)."""

    def __init__(self, level: int, family: str):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown decoder family {family!r}; use one of {FAMILIES}")
        self.level, self.family = level, family
        layers: list[nn.Module] = []
        for item in reversed(_prefix(level)):
            if item == "M":
                layers.append(nn.Identity())  # marks an up-sampling / unpooling step
                continue
            cin, cout = item
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cout, cin, 3)]
            if cin != 3:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.ModuleList(layers)

    def forward(self, f: torch.Tensor, pools: list | None = None) -> torch.Tensor:
        pending = list(pools or [])
        x = f
        for m in self.layers:
            if isinstance(m, nn.Identity):
                if self.family == "unpool":
                    if not pending:
                        raise ValueError("an unpooling decoder needs the encoder's pooling indices")
                    idx, size = pending.pop()
                    # torch warns that unpooling is not deterministic in general; with 2x2 windows
                    # at stride 2 every index is unique, so no two writes collide and it is
                    x = F.max_unpool2d(x, idx, 2, 2, output_size=size)
                else:
                    x = F.interpolate(x, scale_factor=2, mode="nearest")
            else:
                x = m(x)
        return x


def save_decoder(path, dec: Decoder, meta: dict[str, str]) -> None:
    from photostyle.core.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"state_dict": dec.state_dict(), "level": dec.level, "family": dec.family, "meta": dict(meta)}, tmp)


def load_decoder(path, device) -> tuple[Decoder, dict[str, str]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    dec = Decoder(int(blob["level"]), blob["family"])
    dec.load_state_dict(blob["state_dict"])
    for p in dec.parameters():
        p.requires_grad_(False)
    return dec.to(device).eval(), blob["meta"]


# --- decoder training -----------------------------------------------------------------------
LOSS_COLUMNS = ("step", "total", "reconstruction", "feature", "seconds")


def decoder_losses(encoder: Encoder, dec: Decoder, x: torch.Tensor, cfg: dict) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        f, pools = encoder.encode(x, dec.level)
    out = dec(f, pools)
    f_out, _ = encoder.encode(out, dec.level)
    return {"reconstruction": cfg["pixel_weight"] * F.mse_loss(out, x),
            "feature": cfg["feature_weight"] * F.mse_loss(f_out, f)}


def train_decoder(level: int, family: str, encoder: Encoder, photos, cfg: dict, out_model, checkpoint, loss_csv,
                  meta: dict[str, str], device, stop_after: int | None = None) -> Decoder:
    """``cfg``: the config's ``decoders`` section and ``seed``."""
    from photostyle.nets.trainloop import CropSampler, fit

    torch.manual_seed(cfg["seed"])
    dec = Decoder(level, family).to(device)
    sampler = CropSampler(photos, cfg["image_size"], cfg["seed"])
    return fit(dec, lambda x: decoder_losses(encoder, dec, x, cfg), sampler, cfg,
               lambda d: save_decoder(out_model, d, meta), checkpoint, loss_csv, LOSS_COLUMNS, meta, device,
               stop_after)
