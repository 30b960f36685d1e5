"""MUNIT: translation into a style domain learned from a folder of photos (:mod:`photostyle.nets.munit`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath

from photostyle.methods.base import Artifact, Method, param


def domain_key(folder: str) -> str:
    """The trained model's folder under results/train/munit/: the domain folder's name and a
    digest of its path (two folders of one name stay apart)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePath(folder).name or "domain")
    return f"{name}-{hashlib.sha256(folder.encode()).hexdigest()[:8]}"


class MUNIT(Method):
    name = "munit"
    description = ("MUNIT: content code of the photo + a style code of the style domain (a folder of photos, "
                   "methods.munit.domain): the style photo's own code (example-guided) or a random one "
                   "(multimodal, one mode per seed); networks trained per domain by train_model")
    citation = "Huang, Liu, Belongie, Kautz: Multimodal Unsupervised Image-to-Image Translation, ECCV 2018"
    uses_regions = False

    @dataclass(frozen=True)
    class Params:
        domain: str = param("", "folder of the style domain's photos (e.g. paintings of one painter)", type="string")
        guidance: str = param("example", "example: the style photo's style code; random: a random style code",
                              enum=["example", "random"])
        sample: int = param(0, "random guidance: which random style code (its seed derives from seed, style, sample)",
                            type="integer", minimum=0)

    @classmethod
    def artifacts(cls, params, styles):  # an empty domain is named by the workflow (no such folder)
        return [Artifact("munit", domain_key(params.domain), None, (("domain", params.domain),))]

    def _model(self):
        if getattr(self, "_net", None) is None:  # once per job
            from photostyle.nets.munit import load_model

            (path,) = self.artifact_paths.values()
            self._net, self._meta = load_model(path, self.device)
        return self._net

    def code_seed(self, style_id: str) -> int:
        from photostyle.core.photo import derive_seed

        return derive_seed(self.seed, "munit", style_id, str(self.params.sample))

    def provenance(self, style_id: str) -> str:
        code = (f"random, seed {self.code_seed(style_id)}" if self.params.guidance == "random"
                else "the style photo's")
        return f"{super().provenance(style_id)}; style code: {code}"

    def __call__(self, content, style, masks=None):
        import torch.nn.functional as F

        from photostyle.nets.munit import random_style_code, style_code_of, translate

        model = self._model()
        if "munit_code" not in style.cache:
            style.cache["munit_code"] = (random_style_code(model, self.code_seed(style.id), self.device)
                                         if self.params.guidance == "random" else style_code_of(model, style.image))
        mult = 2 ** model.n_downsample  # the content code's stride
        _, _, h, w = content.shape
        ph, pw = (-h) % mult, (-w) % mult
        x = F.pad(content, (0, pw, 0, ph), mode="reflect") if ph or pw else content
        return translate(model, x, style.cache["munit_code"])[..., :h, :w].clamp(0, 1)
