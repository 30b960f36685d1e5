"""MUNIT (Huang, Liu, Belongie, Kautz: Multimodal Unsupervised Image-to-Image Translation, ECCV
2018): a style learned from a whole domain of photos (a folder: Monet's paintings, a film stock,
one photographer's work) rather than from one reference photo.

Each domain has a generator: a **content encoder** (convolutions, downsampling, residual blocks
with instance norm) giving a spatial content code, a **style encoder** (convolutions,
downsampling, global pooling) giving a low-dimensional style code, and a **decoder**
(residual blocks whose AdaIN parameters an MLP computes from a style code, upsampling,
layer norm). Training (unpaired photos of the user's collection, domain a, and of the style
domain, b) combines, with the paper's default weights: LSGAN losses of **multi-scale
discriminators** on the translations a->b and b->a (``gan_weight`` 1), **image
reconstruction** within each domain (``recon_x_weight`` 10), and **latent reconstruction** of
the content and style codes from the translations (``recon_c_weight``, ``recon_s_weight`` 1).
Stylising a photo: its content code with the style code of a reference photo of the domain
(example-guided) or with a random style code drawn from N(0, I) (multimodal: each seed is one
mode). Images are in [-1, 1] inside the networks.

Training a GAN takes a GPU and hours (the paper: 1M iterations); the tests run a few CPU steps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSS_COLUMNS = ("step", "total", "gan", "recon_x", "recon_s", "recon_c", "dis", "seconds")


class AdaIN(nn.Module):
    """Instance norm whose affine parameters are set per forward (from the decoder's MLP)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.weight = self.bias = None  # (B, C) each

    def forward(self, x):
        b, c = x.shape[:2]
        y = F.instance_norm(x, eps=1e-5)
        return y * self.weight.view(b, c, 1, 1) + self.bias.view(b, c, 1, 1)


class LayerNorm(nn.Module):
    """Layer norm over (C, H, W) with per-channel affine parameters (MUNIT's upsampling)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        y = F.layer_norm(x, x.shape[1:], eps=1e-5)
        return y * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def _block(cin, cout, k, stride, norm: str, act: str = "relu") -> nn.Sequential:
    layers: list[nn.Module] = [nn.ReflectionPad2d((k - 1) // 2), nn.Conv2d(cin, cout, k, stride)]
    if norm == "in":
        layers.append(nn.InstanceNorm2d(cout, affine=False))
    elif norm == "ln":
        layers.append(LayerNorm(cout))
    elif norm == "adain":
        layers.append(AdaIN(cout))
    if act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act == "lrelu":
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    elif act == "tanh":
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    def __init__(self, dim: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(_block(dim, dim, 3, 1, norm), _block(dim, dim, 3, 1, norm, act="none"))

    def forward(self, x):
        return x + self.body(x)


class ContentEncoder(nn.Module):
    def __init__(self, dim: int, n_down: int, n_res: int):
        super().__init__()
        layers = [_block(3, dim, 7, 1, "in")]
        for _ in range(n_down):
            layers.append(_block(dim, 2 * dim, 4, 2, "in"))
            dim *= 2
        layers += [ResBlock(dim, "in") for _ in range(n_res)]
        self.model, self.out_dim = nn.Sequential(*layers), dim

    def forward(self, x):
        return self.model(x)


class StyleEncoder(nn.Module):
    def __init__(self, dim: int, style_dim: int, n_down: int = 4):
        super().__init__()
        layers = [_block(3, dim, 7, 1, "none")]
        for i in range(n_down):
            nxt = dim * 2 if i < 2 else dim
            layers.append(_block(dim, nxt, 4, 2, "none"))
            dim = nxt
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, dim: int, n_up: int, n_res: int, style_dim: int, mlp_dim: int):
        super().__init__()
        layers: list[nn.Module] = [ResBlock(dim, "adain") for _ in range(n_res)]
        for _ in range(n_up):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _block(dim, dim // 2, 5, 1, "ln")]
            dim //= 2
        layers.append(_block(dim, 3, 7, 1, "none", act="tanh"))
        self.model = nn.Sequential(*layers)
        self.adain = [m for m in self.model.modules() if isinstance(m, AdaIN)]
        n_params = sum(2 * m.channels for m in self.adain)
        self.mlp = nn.Sequential(nn.Linear(style_dim, mlp_dim), nn.ReLU(inplace=True),
                                 nn.Linear(mlp_dim, mlp_dim), nn.ReLU(inplace=True), nn.Linear(mlp_dim, n_params))

    def forward(self, content, style):
        params = self.mlp(style.flatten(1))
        i = 0
        for m in self.adain:
            m.bias = params[:, i:i + m.channels]
            m.weight = 1 + params[:, i + m.channels:i + 2 * m.channels]
            i += 2 * m.channels
        return self.model(content)


class Generator(nn.Module):
    """One domain's content encoder, style encoder and decoder."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.enc_content = ContentEncoder(cfg["dim"], cfg["n_downsample"], cfg["n_res"])
        self.enc_style = StyleEncoder(cfg["dim"], cfg["style_dim"])
        self.dec = Decoder(self.enc_content.out_dim, cfg["n_downsample"], cfg["n_res"], cfg["style_dim"], cfg["mlp_dim"])
        self.style_dim = cfg["style_dim"]

    def encode(self, x):
        return self.enc_content(x), self.enc_style(x)

    def decode(self, content, style):
        return self.dec(content, style)


class MultiScaleDiscriminator(nn.Module):
    """PatchGAN discriminators on the image and its 2x, 4x ... downsamplings (LSGAN)."""

    def __init__(self, dim: int, n_layers: int, scales: int):
        super().__init__()
        nets = []
        for _ in range(scales):
            layers, d = [_block(3, dim, 4, 2, "none", act="lrelu")], dim
            for _ in range(n_layers - 1):
                layers.append(_block(d, 2 * d, 4, 2, "none", act="lrelu"))
                d *= 2
            layers.append(nn.Conv2d(d, 1, 1))
            nets.append(nn.Sequential(*layers))
        self.nets = nn.ModuleList(nets)

    def forward(self, x):
        outs = []
        for net in self.nets:
            outs.append(net(x))
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return outs

    def loss_dis(self, fake, real):
        return sum(((f ** 2).mean() + ((r - 1) ** 2).mean()) for f, r in zip(self(fake), self(real)))

    def loss_gen(self, fake):
        return sum(((f - 1) ** 2).mean() for f in self(fake))


class Munit(nn.Module):
    """The two generators and discriminators (a: the user's photos, b: the style domain)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.gen_a, self.gen_b = Generator(cfg), Generator(cfg)
        self.dis_a = MultiScaleDiscriminator(cfg["dim"], cfg["dis_layers"], cfg["dis_scales"])
        self.dis_b = MultiScaleDiscriminator(cfg["dim"], cfg["dis_layers"], cfg["dis_scales"])
        self.style_dim, self.n_downsample = cfg["style_dim"], cfg["n_downsample"]

    def generators(self):
        return list(self.gen_a.parameters()) + list(self.gen_b.parameters())

    def discriminators(self):
        return list(self.dis_a.parameters()) + list(self.dis_b.parameters())


class PairSampler:
    """Crops of both domains for step ``s`` (each a :class:`CropSampler`), stacked a then b."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        return torch.cat([self.a.batch(step, batch_size), self.b.batch(step, batch_size)])


def _l1(a, b):
    return (a - b).abs().mean()


def make_update(model: Munit, cfg: dict, opt_gen, opt_dis):
    """One training step (discriminators, then generators) on a stacked a/b batch in [0, 1]."""

    def update(x: torch.Tensor, step: int) -> dict:
        x = x * 2 - 1
        xa, xb = x.chunk(2)
        g = torch.Generator().manual_seed(cfg["seed"] * 7_919 + step)  # the step's random style codes
        sa = torch.randn(xa.shape[0], model.style_dim, 1, 1, generator=g).to(x.device)
        sb = torch.randn(xb.shape[0], model.style_dim, 1, 1, generator=g).to(x.device)
        # discriminators
        opt_dis.zero_grad(set_to_none=True)
        with torch.no_grad():
            ca, _ = model.gen_a.encode(xa)
            cb, _ = model.gen_b.encode(xb)
            x_ba, x_ab = model.gen_a.decode(cb, sa), model.gen_b.decode(ca, sb)
        dis = cfg["gan_weight"] * (model.dis_a.loss_dis(x_ba, xa) + model.dis_b.loss_dis(x_ab, xb))
        dis.backward()
        opt_dis.step()
        # generators
        opt_gen.zero_grad(set_to_none=True)
        ca, sa_own = model.gen_a.encode(xa)
        cb, sb_own = model.gen_b.encode(xb)
        recon_x = _l1(model.gen_a.decode(ca, sa_own), xa) + _l1(model.gen_b.decode(cb, sb_own), xb)
        x_ba, x_ab = model.gen_a.decode(cb, sa), model.gen_b.decode(ca, sb)
        cb_rec, sa_rec = model.gen_a.encode(x_ba)
        ca_rec, sb_rec = model.gen_b.encode(x_ab)
        parts = {"gan": cfg["gan_weight"] * (model.dis_a.loss_gen(x_ba) + model.dis_b.loss_gen(x_ab)),
                 "recon_x": cfg["recon_x_weight"] * recon_x,
                 "recon_s": cfg["recon_s_weight"] * (_l1(sa_rec, sa) + _l1(sb_rec, sb)),
                 "recon_c": cfg["recon_c_weight"] * (_l1(ca_rec, ca) + _l1(cb_rec, cb))}
        sum(parts.values()).backward()
        opt_gen.step()
        for p in model.discriminators():  # discriminator gradients from the generator step are not kept
            p.grad = None
        return {**parts, "dis": dis.detach()}

    return update


def save_model(path, model: Munit, cfg: dict, meta: dict[str, str]) -> None:
    """The translation a -> b only (content encoder a, style encoder and decoder b) and the config."""
    from photostyle.core.io import atomic_path

    keep = {k: v for k, v in model.state_dict().items() if k.startswith(("gen_a.enc_content.", "gen_b."))}
    arch = {k: cfg[k] for k in ("dim", "n_downsample", "n_res", "style_dim", "mlp_dim", "dis_layers", "dis_scales")}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": keep, "arch": arch, "meta": dict(meta)}, tmp)


def load_model(path, device) -> tuple[Munit, dict[str, str]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = Munit(blob["arch"])
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    if unexpected or any(k.startswith(("gen_a.enc_content.", "gen_b.")) for k in missing):
        raise RuntimeError(f"{path}: not a MUNIT model of this architecture")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval(), blob["meta"]


def translate(model: Munit, content: torch.Tensor, style_code: torch.Tensor) -> torch.Tensor:
    """``content`` ``(B, 3, H, W)`` in [0, 1] (H, W multiples of 2^n_downsample) -> domain b."""
    c = model.gen_a.enc_content(content * 2 - 1)
    return (model.gen_b.decode(c, style_code) + 1) / 2


def style_code_of(model: Munit, image: torch.Tensor) -> torch.Tensor:
    return model.gen_b.enc_style(image * 2 - 1)


def random_style_code(model: Munit, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, model.style_dim, 1, 1, generator=g).to(device)


def train(photos_a, photos_b, cfg: dict, out_model, checkpoint, loss_csv, meta: dict[str, str], device,
          stop_after: int | None = None) -> Munit:
    """``cfg``: the config's ``translation`` section and ``seed``."""
    from photostyle.nets.trainloop import CropSampler, fit

    torch.manual_seed(cfg["seed"])
    model = Munit(cfg).to(device)
    opts = {name: torch.optim.Adam(params, lr=cfg["learning_rate"], betas=(cfg["beta1"], cfg["beta2"]),
                                   weight_decay=cfg["weight_decay"])
            for name, params in (("optimizer_gen", model.generators()), ("optimizer_dis", model.discriminators()))}
    size = max(16, cfg["image_size"] // 2 ** cfg["n_downsample"] * 2 ** cfg["n_downsample"])
    sampler = PairSampler(CropSampler(photos_a, size, cfg["seed"]), CropSampler(photos_b, size, cfg["seed"] + 1))
    update = make_update(model, cfg, opts["optimizer_gen"], opts["optimizer_dis"])
    return fit(model, None, sampler, cfg, lambda m: save_model(out_model, m, cfg, meta), checkpoint, loss_csv,
               LOSS_COLUMNS, meta, device, stop_after, optimizers=opts, update=update)
