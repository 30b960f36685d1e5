"""WCT2 (Yoo, Uh, Chun, Kang, Ha: Photorealistic Style Transfer via Wavelet Transforms, ICCV
2019): a VGG-19 encoder to ``relu4_1`` whose max poolings are Haar wavelet poolings, and a
decoder whose unpoolings are the transposed wavelet filters.

A wavelet pooling splits features into four half-size bands: ``LL`` (the low band, which the
encoder continues with) and ``LH``, ``HL``, ``HH`` (the high bands, which skip to the decoder).
The Haar filters are orthonormal, so unpooling the four bands reconstructs the input exactly
(tested in float64): the network needs no post-processing to keep photographic detail. The
decoder combines the unpooled bands either by summation (``sum``) or by concatenating the four
unpooled bands and the encoder's feature map before pooling (``cat5``, the paper's default).

Module and parameter names follow the published model (clovaai/WCT2, MIT licence) so that its
checkpoints ``wave_encoder_<option>_l4.pth`` / ``wave_decoder_<option>_l4.pth`` load strictly
(tested against their key names and shapes). Without them, the encoder takes torchvision's
VGG-19 weights (through the weights resolver; ``conv0`` then holds the ImageNet input
normalisation) and the decoder is trained on the user's collection (``train_model``, trainer
``decoder``, family ``wave_<option>``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

OPTIONS = ("cat5", "sum")
LEVELS = (1, 2, 3, 4)
# VGG-19 convolutions up to conv4_1 and their index in torchvision's ``features``
VGG_CONVS = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7, "conv3_1": 10, "conv3_2": 12,
             "conv3_3": 14, "conv3_4": 16, "conv4_1": 19}


def haar_filters(dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The four 2x2 Haar filters: outer products of ``L = (1, 1)/sqrt 2`` and ``H = (-1, 1)/sqrt 2``."""
    low = torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    high = torch.tensor([-1.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    pairs = {"LL": (low, low), "LH": (low, high), "HL": (high, low), "HH": (high, high)}
    return {k: torch.outer(rows, cols).to(dtype) for k, (rows, cols) in pairs.items()}


class _Bands(nn.Module):
    """Four fixed depthwise 2x2 stride-2 (transposed) convolutions named LL, LH, HL, HH."""

    def __init__(self, channels: int, transposed: bool):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        for name, f in haar_filters().items():
            layer = conv(channels, channels, kernel_size=2, stride=2, padding=0, bias=False, groups=channels)
            layer.weight.data.copy_(f.expand(channels, 1, 2, 2))
            layer.weight.requires_grad_(False)
            setattr(self, name, layer)


class WavePool(_Bands):
    def __init__(self, channels: int):
        super().__init__(channels, transposed=False)

    def forward(self, x: torch.Tensor):
        """``(B, C, H, W)`` (H, W even) -> the bands ``LL, LH, HL, HH``, each ``(B, C, H/2, W/2)``."""
        return self.LL(x), self.LH(x), self.HL(x), self.HH(x)


class WaveUnpool(_Bands):
    def __init__(self, channels: int, option: str = "cat5"):
        super().__init__(channels, transposed=True)
        if option not in OPTIONS:
            raise ValueError(f"unpooling {option!r}: expected one of {OPTIONS}")
        self.option = option

    def forward(self, ll, lh, hl, hh, original=None):
        bands = [self.LL(ll), self.LH(lh), self.HL(hl), self.HH(hh)]
        if self.option == "sum":
            return bands[0] + bands[1] + bands[2] + bands[3]
        if original is None:
            raise ValueError("cat5 unpooling needs the encoder's feature map before pooling")
        return torch.cat(bands + [original], dim=1)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, 0)


class WaveEncoder(nn.Module):
    """VGG-19 to relu4_1 with wavelet pooling. ``encode(x, skips, level)`` runs one level and
    records in ``skips`` the high bands (``pool<k>``) and the pre-pooling maps (``conv<k>_<n>``)."""

    def __init__(self, option: str = "cat5"):
        super().__init__()
        self.option = option
        self.pad = nn.ReflectionPad2d(1)
        self.relu = nn.ReLU(inplace=True)
        self.conv0 = _conv(3, 3, 1)
        self.conv1_1, self.conv1_2 = _conv(3, 64), _conv(64, 64)
        self.pool1 = WavePool(64)
        self.conv2_1, self.conv2_2 = _conv(64, 128), _conv(128, 128)
        self.pool2 = WavePool(128)
        self.conv3_1, self.conv3_2, self.conv3_3, self.conv3_4 = (_conv(128, 256), _conv(256, 256), _conv(256, 256),
                                                                  _conv(256, 256))
        self.pool3 = WavePool(256)
        self.conv4_1 = _conv(256, 512)

    def _c(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.relu(getattr(self, name)(self.pad(x)))

    def _pool(self, k: int, x: torch.Tensor, skips: dict, before: str) -> torch.Tensor:
        skips[before] = x
        ll, lh, hl, hh = getattr(self, f"pool{k}")(x)
        skips[f"pool{k}"] = (lh, hl, hh)
        return ll

    def encode(self, x: torch.Tensor, skips: dict, level: int) -> torch.Tensor:
        """One level. ``cat5`` levels end after relu1_1, relu2_1, relu3_1, relu4_1 (the WCT points of
        the paper); ``sum`` levels end after each pooling (and relu4_1)."""
        if level not in LEVELS:
            raise ValueError(f"level {level} not in {LEVELS}")
        if self.option == "cat5":
            if level == 1:
                return self._c("conv1_1", self.conv0(x))
            if level == 2:
                return self._c("conv2_1", self._pool(1, self._c("conv1_2", x), skips, "conv1_2"))
            if level == 3:
                return self._c("conv3_1", self._pool(2, self._c("conv2_2", x), skips, "conv2_2"))
            for name in ("conv3_2", "conv3_3", "conv3_4"):
                x = self._c(name, x)
            return self._c("conv4_1", self._pool(3, x, skips, "conv3_4"))
        if level == 1:
            x = self._c("conv1_2", self._c("conv1_1", self.conv0(x)))
            return self._pool(1, x, skips, "conv1_2")
        if level == 2:
            return self._pool(2, self._c("conv2_2", self._c("conv2_1", x)), skips, "conv2_2")
        if level == 3:
            for name in ("conv3_1", "conv3_2", "conv3_3", "conv3_4"):
                x = self._c(name, x)
            return self._pool(3, x, skips, "conv3_4")
        return self._c("conv4_1", x)

    def forward(self, x: torch.Tensor, skips: dict | None = None) -> torch.Tensor:
        skips = {} if skips is None else skips
        for level in LEVELS:
            x = self.encode(x, skips, level)
        return x

    @classmethod
    def from_vgg19(cls, features: nn.Sequential, option: str = "cat5") -> "WaveEncoder":
        """From torchvision's VGG-19 ``features`` (its convolutions; ``conv0`` takes the ImageNet
        input normalisation that torchvision's weights expect of [0, 1] RGB)."""
        from photostyle.core.tensors import IMAGENET_MEAN, IMAGENET_STD

        enc = cls(option)
        with torch.no_grad():
            for name, i in VGG_CONVS.items():
                getattr(enc, name).weight.copy_(features[i].weight)
                getattr(enc, name).bias.copy_(features[i].bias)
            std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
            enc.conv0.weight.copy_(torch.diag(1 / std)[:, :, None, None])
            enc.conv0.bias.copy_(-mean / std)
        return enc


class WaveDecoder(nn.Module):
    """Mirror of :class:`WaveEncoder`: ``decode(x, skips, level)`` for level 4, 3, 2, 1."""

    def __init__(self, option: str = "cat5"):
        super().__init__()
        if option not in OPTIONS:
            raise ValueError(f"unpooling {option!r}: expected one of {OPTIONS}")
        self.option = option
        mult = 5 if option == "cat5" else 1
        suffix = "_2" if option == "cat5" else ""  # the published names of the convs after unpooling
        self.pad = nn.ReflectionPad2d(1)
        self.relu = nn.ReLU(inplace=True)
        self.conv4_1 = _conv(512, 256)
        self.recon_block3 = WaveUnpool(256, option)
        setattr(self, "conv3_4" + suffix, _conv(256 * mult, 256))
        self.conv3_3, self.conv3_2, self.conv3_1 = _conv(256, 256), _conv(256, 256), _conv(256, 128)
        self.recon_block2 = WaveUnpool(128, option)
        setattr(self, "conv2_2" + suffix, _conv(128 * mult, 128))
        self.conv2_1 = _conv(128, 64)
        self.recon_block1 = WaveUnpool(64, option)
        setattr(self, "conv1_2" + suffix, _conv(64 * mult, 64))
        self.conv1_1 = _conv(64, 3)
        self._after = {k: name + suffix for k, name in ((3, "conv3_4"), (2, "conv2_2"), (1, "conv1_2"))}

    def _c(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.relu(getattr(self, name)(self.pad(x)))

    def _unpool(self, k: int, x: torch.Tensor, skips: dict, before: str) -> torch.Tensor:
        lh, hl, hh = skips[f"pool{k}"]
        x = getattr(self, f"recon_block{k}")(x, lh, hl, hh, skips.get(before) if self.option == "cat5" else None)
        return self._c(self._after[k], x)

    def decode(self, x: torch.Tensor, skips: dict, level: int) -> torch.Tensor:
        if level == 4:
            x = self._unpool(3, self._c("conv4_1", x), skips, "conv3_4")
            return self._c("conv3_2", self._c("conv3_3", x))
        if level == 3:
            return self._unpool(2, self._c("conv3_1", x), skips, "conv2_2")
        if level == 2:
            return self._unpool(1, self._c("conv2_1", x), skips, "conv1_2")
        return self.conv1_1(self.pad(x))

    def forward(self, x: torch.Tensor, skips: dict) -> torch.Tensor:
        for level in (4, 3, 2, 1):
            x = self.decode(x, skips, level)
        return x


# --- decoder training (trainer "decoder", family "wave_<option>") ---------------------------
LOSS_COLUMNS = ("step", "total", "reconstruction", "feature", "seconds")


def decoder_losses(encoder: WaveEncoder, dec: WaveDecoder, x: torch.Tensor, cfg: dict) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        skips: dict = {}
        f = encoder(x, skips)
    out = dec(f, skips)
    f_out = encoder(out, {})
    return {"reconstruction": cfg["pixel_weight"] * F.mse_loss(out, x),
            "feature": cfg["feature_weight"] * F.mse_loss(f_out, f)}


def save_decoder(path, dec: WaveDecoder, meta: dict[str, str]) -> None:
    from photostyle.core.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"state_dict": dec.state_dict(), "option": dec.option, "meta": dict(meta)}, tmp)


def load_decoder(path, device) -> tuple[WaveDecoder, dict[str, str]]:
    """A trained decoder (ours: ``state_dict`` + ``option``) or a published checkpoint (a bare
    state dict whose key names tell the option), loaded strictly with ``weights_only=True``."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in blob:
        state, option, meta = blob["state_dict"], blob["option"], blob.get("meta", {})
    else:
        state, option, meta = blob, ("cat5" if "conv3_4_2.weight" in blob else "sum"), {"source": "published"}
    dec = WaveDecoder(option)
    dec.load_state_dict(state, strict=True)
    for p in dec.parameters():
        p.requires_grad_(False)
    return dec.to(device).eval(), meta


def train_decoder(option: str, encoder: WaveEncoder, photos, cfg: dict, out_model, checkpoint, loss_csv,
                  meta: dict[str, str], device, stop_after: int | None = None) -> WaveDecoder:
    """``cfg``: the config's ``decoders`` section and ``seed`` (crops must be multiples of 8)."""
    from photostyle.nets.trainloop import CropSampler, fit

    torch.manual_seed(cfg["seed"])
    dec = WaveDecoder(option).to(device)
    encoder = encoder.to(device).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    size = max(8, cfg["image_size"] // 8 * 8)
    sampler = CropSampler(photos, size, cfg["seed"])
    return fit(dec, lambda x: decoder_losses(encoder, dec, x, cfg), sampler, cfg,
               lambda d: save_decoder(out_model, d, meta), checkpoint, loss_csv, LOSS_COLUMNS, meta, device,
               stop_after)
