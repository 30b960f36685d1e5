"""WCT2: whitening-colouring on a wavelet-pooling VGG-19 (network in :mod:`photostyle.nets.wct2`)."""

from __future__ import annotations

from dataclasses import dataclass

from photostyle.methods.base import Artifact, Method, param

TRANSFER_AT = ("encoder", "skip", "decoder")


class WCT2(Method):
    name = "wct2"
    description = ("WCT2: Haar wavelet pooling/unpooling in a VGG-19 encoder-decoder that reconstructs exactly, "
                   "progressive whitening-colouring at every level on the low band (and the high-band skips and "
                   "decoder levels); per matched region; no post-processing needed")
    citation = "Yoo, Uh, Chun, Kang, Ha: Photorealistic Style Transfer via Wavelet Transforms, ICCV 2019"
    weights = ("vgg19-imagenet",)

    @dataclass(frozen=True)
    class Params:
        option: str = param("cat5", "decoder unpooling: cat5 (the paper's default) or sum", enum=["cat5", "sum"])
        transfer_at: list = param(list(TRANSFER_AT), "where features are whitened and coloured",
                                  type="array", minItems=1, uniqueItems=True, items={"enum": list(TRANSFER_AT)})
        alpha: float = param(1.0, **{"$ref": "#/$defs/universal/alpha"})
        eps: float = param(1.0e-5, **{"$ref": "#/$defs/universal/eps"})
        decoder: str = param("trained", "trained: a decoder trained on your collection (train_model); published: "
                             "clovaai's wave_encoder/decoder_<option>_l4.pth from weights.dir",
                             enum=["trained", "published"])

    @classmethod
    def artifacts(cls, params, styles):
        if params.decoder == "published":
            return []
        family = f"wave_{params.option}"
        return [Artifact("decoder", f"{family}/relu4_1", None, (("family", family), ("level", 4)))]

    @classmethod
    def for_job(cls, settings, device, styles, train_root):
        method = super().for_job(settings, device, styles, train_root)
        if method.params.decoder == "published":  # the published pair, resolved (and recorded) like any weights
            from photostyle.core.weights import resolve_cfg

            w, opt = settings.get("weights", {}), method.params.option
            for part in ("encoder", "decoder"):
                name = f"wct2-{part}-{opt}"
                method.resolved[name] = resolve_cfg(name, w, settings["seed"])
        return method

    def _models(self):
        if getattr(self, "_nets", None) is None:  # once per job
            from photostyle.core.weights import load_state_dict
            from photostyle.nets import wct2
            from photostyle.nets.vgg import VGGFeatures

            opt = self.params.option
            if self.params.decoder == "published":
                enc_r, dec_r = self.resolved[f"wct2-encoder-{opt}"], self.resolved[f"wct2-decoder-{opt}"]
                if enc_r.is_random or dec_r.is_random:
                    raise RuntimeError("wct2 decoder: published needs clovaai's checkpoints in weights.dir "
                                       "(snakemake fetch_weights), or decoder: trained")
                encoder = wct2.WaveEncoder(opt)
                encoder.load_state_dict(load_state_dict(enc_r), strict=True)
                decoder, _ = wct2.load_decoder(dec_r.path, self.device)
            else:
                vgg = VGGFeatures("vgg19", self.resolved["vgg19-imagenet"], self.seed, "relu4_1")
                encoder = wct2.WaveEncoder.from_vgg19(vgg.features, opt)
                (path,) = self.artifact_paths.values()
                decoder, meta = wct2.load_decoder(path, self.device)
                here = f"vgg19={vgg.provenance}"
                if meta.get("encoder", here) != here:
                    raise RuntimeError(f"decoder {path} was trained with encoder {meta['encoder']}, but this job's "
                                       f"encoder is {here}; retrain it: snakemake --forcerun train_model")
            for p in encoder.parameters():
                p.requires_grad_(False)
            self._nets = (encoder.to(self.device).eval(), decoder)
        return self._nets

    def _style_features(self, style, encoder, decoder):
        """The style's features at every encoder level, skip and decoder level (once per style)."""
        import torch

        from photostyle.core.tensors import pad_to_multiple

        if "wct2" not in style.cache:
            s, _, _ = pad_to_multiple(style.image, 8)
            skips: dict = {}
            enc = {}
            with torch.no_grad():
                for level in (1, 2, 3, 4):
                    s = encoder.encode(s, skips, level)
                    enc[level] = s
                dec = {}
                x = s
                for level in (4, 3, 2, 1):
                    x = decoder.decode(x, skips, level)
                    dec[level] = x
            style.cache["wct2"] = (enc, skips, dec)
        return style.cache["wct2"]

    def __call__(self, content, style, masks=None):
        import torch

        from photostyle.core.tensors import pad_to_multiple
        from photostyle.ops.wct import transform

        encoder, decoder = self._models()
        at, alpha, eps = set(self.params.transfer_at), self.params.alpha, self.params.eps
        s_enc, s_skips, s_dec = self._style_features(style, encoder, decoder)
        stats = style.cache.setdefault("wct2_stats", {})

        def wct(fc, fs, key):
            t = transform(fc, fs, "wct", eps, masks, stats, key=key)
            return torch.lerp(fc, t, alpha) if alpha < 1 else t

        x, h, w = pad_to_multiple(content, 8)
        skips: dict = {}
        for level in (1, 2, 3, 4):
            x = encoder.encode(x, skips, level)
            if "encoder" in at:
                x = wct(x, s_enc[level], ("enc", level))
        if "skip" in at:  # the high bands that skip to the decoder
            for k in (1, 2, 3):
                skips[f"pool{k}"] = tuple(wct(b, sb, ("skip", k, i)) for i, (b, sb) in
                                          enumerate(zip(skips[f"pool{k}"], s_skips[f"pool{k}"])))
        for level in (4, 3, 2, 1):
            x = decoder.decode(x, skips, level)
            if "decoder" in at and level != 1:
                x = wct(x, s_dec[level], ("dec", level))
        return x[..., :h, :w].clamp(0, 1)
