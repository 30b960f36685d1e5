"""The one registry of stylisation methods.

A method is one function with the signature of :data:`MethodFn`::

    fn(content, style, *, masks, params, device, state) -> stylized

``content`` ``(1, 3, H, W)`` and ``style`` ``(1, 3, h, w)`` are float32 RGB in [0, 1] on
``device``; ``masks`` is ``None`` or the matched region masks of the segmentation stage;
``params`` is the method's sub-tree of ``config['methods']``; ``state`` is a dict that lives
while the job works on one style (a method caches the style's statistics there), and
``state["job"]`` is a dict shared by all styles of the shard job (a method keeps loaded
models there; ``state["job"]["weights"]`` holds the resolved pretrained weights it declared
in ``Method.weights``, already recorded in every output's provenance, and
``state["job"]["seed"]`` the config's seed for seeded random initialisation, and for a method
with trained decoders ``state["job"]["decoder_paths"]`` maps level -> decoder file), so both are
built once, not once per photo. The result has the content's shape.

A method may leave a per-output trace in ``state["trace"]`` (a list of dicts, e.g. the losses
of an optimisation per iteration); the driver writes it next to the image as
``<photo>.trace.csv`` and the report plots it. Methods run under ``torch.no_grad()``; an
optimising method enables gradients itself.

A new method is one module plus one line in :data:`REGISTRY` (and its name in the config
schema's enums, which a test keeps in sync with this registry). The registry itself does
not import the method modules (nor torch), so building the Snakemake DAG stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class MethodFn(Protocol):
    def __call__(
        self, content: torch.Tensor, style: torch.Tensor, *, masks, params: dict,
        device: torch.device, state: dict,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Method:
    name: str
    entry: str  # "<module in photostyle.methods>:<function>"
    weights: tuple[str, ...] = ()  # names in photostyle.weights.REGISTRY
    description: str = ""
    uses: tuple[str, ...] = ()  # further package modules the method's output depends on
    traces: bool = False  # leaves a per-output trace (loss curve) for the report
    per_style_model: bool = False  # needs a network trained per style (the train_fast rule)
    uses_regions: bool = True  # receives the matched region masks (False: a global method)
    decoders: str = ""  # decoder family trained once by the train_decoder rule ("upsample" | "unpool")
    batches: bool = False  # accepts a (B, 3, H, W) batch of same-size photos (global methods only)

    def __post_init__(self):
        if self.batches and (self.uses_regions or self.traces):
            raise ValueError(f"{self.name}: only global methods without traces can batch photos")

    def decoder_levels(self, params: dict) -> list[int]:
        """The encoder levels whose decoders the method needs with these params (none without decoders)."""
        if not self.decoders:
            return []
        return sorted(set(params["levels"]) if "levels" in params else {params["level"]})

    @property
    def modules(self) -> tuple[str, ...]:
        """Source files (relative to the package), hashed into the stylize rule's params."""
        return (f"methods/{self.entry.split(':')[0]}.py", *self.uses)

    @property
    def fn(self) -> MethodFn:
        mod, func = self.entry.split(":")
        return getattr(importlib.import_module(f"{__name__}.{mod}"), func)


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("reinhard", "colour:reinhard", description="Reinhard et al. 2001 global colour transfer"),
    Method("mkl", "colour:mkl", description="Pitié & Kokaram 2007 linear Monge-Kantorovich colour transfer"),
    Method("gatys", "optim:gatys", ("vgg19-imagenet",), "Gatys et al. 2016 neural style (image optimisation)",
           ("vgg.py",), traces=True, uses_regions=False),
    Method("dpst", "optim:dpst", ("vgg19-imagenet",),
           "Luan et al. 2017 Deep Photo Style Transfer (region style loss + matting Laplacian)",
           ("vgg.py", "matting.py"), traces=True),
    Method("fast", "fast:fast", (), "Johnson et al. 2016 feed-forward network trained per style (fast photographic)",
           ("fastnet.py",), per_style_model=True, uses_regions=False, batches=True),
    Method("wct", "universal:wct", ("vgg19-imagenet",), "Li et al. 2017 universal style transfer (multi-level WCT)",
           ("universal.py", "vgg.py"), decoders="upsample"),
    Method("photowct", "universal:photowct", ("vgg19-imagenet",),
           "Li et al. 2018 PhotoWCT (FastPhotoStyle; unpooling decoders; smoothing in refine)",
           ("universal.py", "vgg.py"), decoders="unpool"),
    Method("adain", "universal:adain", ("vgg19-imagenet",), "Huang & Belongie 2017 adaptive instance normalisation",
           ("universal.py", "vgg.py"), decoders="upsample"),
)}


def get_method(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None
