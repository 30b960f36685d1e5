"""Universal methods ``wct``, ``wct_photo``, ``photowct`` and ``adain``: no per-style training.

Two encoder families (``encoder``):

* ``cd16x`` (default of ``wct``, ``wct_photo``, ``adain``): Collaborative Distillation's
  distilled VGG-19 encoders, one per level, with their published decoders
  (:mod:`photostyle.nets.distilled`; MIT, shipped with the package): real style transfer out of
  the box, no training job;
* ``vgg19``: one VGG-19 encoder (pretrained weights from the resolver) and decoders trained
  once per family and level on the user's collection (artifacts of the ``decoder`` trainer);
  ``photowct`` always uses it (its unpooling decoders need VGG-19's pooling indices). Networks load once per job,
style statistics once per style (networks in :mod:`photostyle.nets.universal`, transforms in
:mod:`photostyle.ops.wct`).

* ``wct``: coarse to fine over the levels (default relu5_1 ... relu1_1): encode the current
  image, whiten-colour its features with the style's, decode with the level's upsampling
  decoder; the next level starts from that image.
* ``photowct``: the same with unpooling decoders, which put features back where the max pooling
  took them from (photorealistic structure); FastPhotoStyle's smoothing is refine's
  ``smoothing`` option.
* ``adain``: one level (relu4_1), per-channel mean/std, upsampling decoder.

Photos are reflection-padded to a multiple of 2^(deepest level - 1) and cropped back, so any
size keeps its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from photostyle.methods.base import Artifact, Method, param

ALPHA = {"$ref": "#/$defs/universal/alpha"}
EPS = {"$ref": "#/$defs/universal/eps"}
LEVELS = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": [1, 2, 3, 4, 5]}}
LEVELS_DOC = "encoder levels relu<k>_1, applied in this order (coarse to fine)"
ENCODER_DOC = ("cd16x: Collaborative Distillation's distilled encoders and published decoders (shipped, no "
               "training); vgg19: VGG-19 with decoders trained by the pipeline (train_model, trainer decoder)")


class Universal(Method):
    """Encode, transform the features (``kind``), decode with the ``family``'s decoder, per level."""

    weights = ("vgg19-imagenet",)
    family = "upsample"  # decoder family: "upsample" (nearest 2x) or "unpool" (max-unpooling)
    kind = "wct"  # feature transform: "wct" or "adain"

    @classmethod
    def levels(cls, params) -> list[int]:
        return list(params.levels)

    @classmethod
    def weights_for(cls, params) -> tuple[str, ...]:
        if params.encoder == "cd16x":
            return tuple(f"cd16x-{part}{lv}" for lv in sorted(set(cls.levels(params))) for part in ("encoder", "decoder"))
        return cls.weights

    @classmethod
    def artifacts(cls, params, styles):
        if params.encoder == "cd16x":  # published decoders: nothing to train
            return []
        return [Artifact("decoder", f"{cls.family}/relu{lv}_1", None, (("family", cls.family), ("level", lv)))
                for lv in sorted(set(cls.levels(params)))]

    def _distilled(self):
        """Per level, the distilled encoder and its decoder (once per job)."""
        if getattr(self, "_cd", None) is None:
            from photostyle.nets.distilled import load

            self._cd = {lv: tuple(load(part, lv, self.resolved[f"cd16x-{part}{lv}"], self.seed).to(self.device)
                                  for part in ("encoder", "decoder"))
                        for lv in sorted(set(self.levels(self.params)))}
        return self._cd

    def _coders(self):
        """``{level: (encode(x) -> (features, pools), decode(features, pools) -> image)}``."""
        if self.params.encoder == "cd16x":
            return {lv: ((lambda x, e=enc: (e(x), None)), (lambda f, pools, d=dec: d(f)))
                    for lv, (enc, dec) in self._distilled().items()}
        encoder, decoders = self._models()
        return {lv: ((lambda x, lv=lv: encoder.encode(x, lv)), dec) for lv, dec in decoders.items()}

    def _models(self):
        if getattr(self, "_encoder", None) is None:  # once per job
            from photostyle.nets.universal import Encoder, load_decoder
            from photostyle.nets.vgg import VGGFeatures

            arts = {dict(a.args)["level"]: self.artifact_paths[a] for a in self.artifact_paths}
            encoder = Encoder(VGGFeatures("vgg19", self.resolved["vgg19-imagenet"], self.seed,
                                          f"relu{max(arts)}_1")).to(self.device)
            decoders = {}
            for lv, path in arts.items():
                decoders[lv], meta = load_decoder(path, self.device)
                trained_with, here = meta.get("encoder", "unknown"), f"vgg19={encoder.provenance}"
                if trained_with != here:  # e.g. pretrained weights arrived after the decoders were trained
                    raise RuntimeError(f"decoder {path} was trained with encoder {trained_with}, but this job's "
                                       f"encoder is {here}; retrain it: snakemake --forcerun train_model")
            self._encoder, self._decoders = encoder, decoders
        return self._encoder, self._decoders

    def __call__(self, content, style, masks=None):
        import torch

        from photostyle.core.tensors import pad_to_multiple
        from photostyle.ops.wct import transform

        coders = self._coders()
        levels = self.levels(self.params)
        alpha, eps = self.params.alpha, self.params.eps
        x, h, w = pad_to_multiple(content, 2 ** (max(levels) - 1))
        feats = style.cache.setdefault("style_features", {})
        stats = style.cache.setdefault("style_stats", {})
        for level in levels:
            encode, decode = coders[level]
            if level not in feats:
                feats[level] = encode(style.image)[0]
            fc, pools = encode(x)
            t = transform(fc, feats[level], self.kind, eps, masks, stats, key=(self.kind, level))
            if alpha < 1:
                t = torch.lerp(fc, t, alpha)
            x = decode(t, pools)
        return x[..., :h, :w].clamp(0, 1)


class WCT(Universal):
    name = "wct"
    description = ("whitening–colouring of VGG-19 features (float64), coarse to fine over relu5_1…relu1_1, "
                   "each level decoded by its trained upsampling decoder; per matched region")
    citation = "Li, Fang, Yang, Wang, Lu, Yang: Universal Style Transfer via Feature Transforms, NeurIPS 2017"

    @dataclass(frozen=True)
    class Params:
        levels: list = param([5, 4, 3, 2, 1], LEVELS_DOC, **LEVELS)
        alpha: float = param(1.0, **ALPHA)
        eps: float = param(1.0e-5, **EPS)
        encoder: str = param("cd16x", ENCODER_DOC, enum=["cd16x", "vgg19"])


class PhotoWCT(WCT):
    name = "photowct"
    description = ("PhotoWCT (FastPhotoStyle): WCT over relu4_1…relu1_1 with max-unpooling decoders; pair it "
                   "with refine smoothing (exact or guided) for FastPhotoStyle's smoothing step")
    citation = "Li, Liu, Li, Yang, Kautz: A Closed-form Solution to Photorealistic Image Stylization, ECCV 2018"
    family = "unpool"

    @dataclass(frozen=True)
    class Params(WCT.Params):
        levels: list = param([4, 3, 2, 1], LEVELS_DOC, **LEVELS)
        encoder: str = param("vgg19", "unpooling decoders need VGG-19's pooling indices: vgg19 only",
                             enum=["vgg19"])


class AdaIN(Universal):
    name = "adain"
    description = "per-channel mean/std of relu4_1 features, one upsampling decoder; per matched region"
    citation = "Huang, Belongie: Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization, ICCV 2017"
    kind = "adain"

    @dataclass(frozen=True)
    class Params:
        level: int = param(4, "encoder level relu<k>_1", enum=[1, 2, 3, 4, 5])
        alpha: float = param(1.0, **ALPHA)
        eps: float = param(1.0e-5, **EPS)
        encoder: str = param("cd16x", ENCODER_DOC, enum=["cd16x", "vgg19"])

    @classmethod
    def levels(cls, params) -> list[int]:
        return [params.level]


class WCTPhoto(WCT):
    name = "wct_photo"
    description = ("photorealistic WCT on the distilled encoders: per matched region, the fine levels only "
                   "(relu3_1, relu2_1, relu1_1); pair it with refine smoothing (exact removes the glow along "
                   "high-contrast edges best, guided is 30x faster), then the lift and detail transfer")
    citation = ("Wang, Li, Wang, Hu, Yang: Collaborative Distillation for Ultra-Resolution Universal Style "
                "Transfer, CVPR 2020; Li et al., NeurIPS 2017")

    @dataclass(frozen=True)
    class Params(WCT.Params):
        levels: list = param([3, 2, 1], LEVELS_DOC, **LEVELS)
