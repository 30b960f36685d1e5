"""The method contract: what a stylisation method declares and what it implements.

A method is one subclass of :class:`Method` in a module of :mod:`photostyle.methods`. Its
class attributes are *declarations* that the workflow reads while it builds the DAG (so this
module, and the method modules at import time, import no torch):

* ``name``, ``description``, ``citation``;
* ``Params``: a dataclass of its config block ``methods.<name>``; each field is declared with
  :func:`param`, whose keyword arguments are the field's JSON schema. The config schema's
  per-method blocks, the method enums and their defaults are generated from these
  (:func:`photostyle.config.full_schema`), so the dataclass is the one place a parameter lives;
* ``weights``: names in the pretrained-weights registry (:mod:`photostyle.core.weights`) that
  the stylize job resolves before any photo and records in every output's provenance;
  :meth:`weights_for` narrows them to the given params, and :meth:`resolve_weights` resolves
  them (by default each name; a method whose network has several candidate files, such as
  ``vgg16`` -- the Oxford file, else torchvision's -- keeps only the one actually resolved, so
  the provenance names the file that was used);
* :meth:`artifacts`: models that a training rule must produce first (a per-style network, a
  decoder), as :class:`Artifact` (trainer, key, settings); the rules derive the training jobs,
  the stylize job's inputs and their params from these;
* a method whose result is a (per-region) colour map of the content leaves it in
  ``style.colour_map`` (:class:`photostyle.ops.colour.ColourMap`) with each output: the stylize
  stage stores it beside the image, and the lift applies it at full resolution (exact) instead
  of fitting one;
* ``uses_regions`` (receives matched region masks from the segment stage; its rule then
  takes the label maps as inputs and the matching settings as params), ``traces`` (leaves a
  per-output loss trace), ``batches`` (accepts a batch of same-size photos), ``uses_gpu``
  (its work is worth a GPU: its stylize jobs request the ``gpu`` resource unless the config's
  ``device`` is ``cpu``; a method that does not runs its jobs on the CPU, beside GPU jobs).

At run time the stylize job makes one instance per job (``Method(params, device, seed=...,
weights=..., artifacts=...)``: models load once), calls :meth:`prepare_style` once per style
(statistics, per-style networks) and then ``method(content, style_state, masks)`` per photo or
batch. :meth:`provenance` says what produced an output (weights and trained-model digests).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch


def param(default: Any, description: str = "", **schema: Any):
    """A ``Params`` field: its default and its JSON schema (``type``, ``minimum``, ``enum``, ...)."""
    meta = {"schema": {**schema, **({"description": description} if description else {})}}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


def params_schema(params_cls: type) -> dict:
    """The JSON schema of a ``Params`` dataclass: an object of its fields, each with its default."""
    props = {}
    for f in dataclasses.fields(params_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        props[f.name] = {**f.metadata.get("schema", {}), "default": default}
    return {"type": "object", "additionalProperties": False, "default": {}, "properties": props}


@dataclass(frozen=True)
class Artifact:
    """A trained model a method needs: ``results/train/<trainer>/<key>/model.pt``.

    ``trainer`` names an entry of :data:`photostyle.stages.train.TRAINERS`; ``key`` is its
    folder (``<style id>`` for per-style networks, ``<family>/relu<k>_1`` for decoders);
    ``style`` is the style it belongs to (None for models shared by all styles); ``args`` are
    what the trainer needs besides its config section (e.g. family and level)."""

    trainer: str
    key: str
    style: str | None = None
    args: tuple[tuple[str, Any], ...] = ()

    def path(self, train_root: str | Path) -> Path:
        return Path(train_root) / self.trainer / self.key / "model.pt"


@dataclass
class StyleState:
    """What a method keeps per style for one job: the style image, its statistics, its network."""

    id: str
    image: "torch.Tensor"
    cache: dict = field(default_factory=dict)
    trace: list | None = None  # the last output's trace (loss per iteration), if the method leaves one
    colour_map: Any = None  # the last output's ColourMap (photostyle.ops.colour), if it is a colour map of the content
    shared: Any = None  # scoped methods: the current photo's folder/collection fit (ops.colour.SharedFit), or None


@dataclass(frozen=True)
class NoParams:
    """A method without parameters."""


class Method:
    """Base class of every stylisation method (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    weights: ClassVar[tuple[str, ...]] = ()
    uses_regions: ClassVar[bool] = True
    traces: ClassVar[bool] = False
    batches: ClassVar[bool] = False
    uses_gpu: ClassVar[bool] = True  # networks and optimisation; colour statistics and quilting: False
    scoped: ClassVar[bool] = False  # stylize.scope applies: one transform per folder/collection (colour maps)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.batches and (cls.uses_regions or cls.traces):
            raise TypeError(f"{cls.__name__}: only global methods without traces can batch photos")

    # --- declarations (read while building the DAG) ----------------------------------------
    @classmethod
    def schema(cls) -> dict:
        """The JSON schema of the config block ``methods.<name>``."""
        return params_schema(cls.Params)

    @classmethod
    def parse(cls, block: dict | None) -> Any:
        """``Params`` from a (validated) config block; unknown keys are an error."""
        return cls.Params(**(block or {}))

    @classmethod
    def weights_for(cls, params: Any) -> tuple[str, ...]:
        """The registry names this method resolves with ``params`` (``weights`` by default)."""
        return cls.weights

    @classmethod
    def resolve_weights(cls, params: Any, weights_cfg: dict, seed: int) -> dict:
        """``{registry name: Resolved}`` that a job with ``params`` runs on: each of
        :meth:`weights_for` by default (the keys must be among those names)."""
        from photostyle.core.weights import resolve_cfg

        return {n: resolve_cfg(n, weights_cfg, seed) for n in cls.weights_for(params)}

    @classmethod
    def artifacts(cls, params: Any, styles: list[str]) -> list[Artifact]:
        """The trained models this method needs with ``params`` for ``styles`` (none by default)."""
        return []

    @classmethod
    def module(cls) -> str:
        """The module that holds the method, relative to the package (for its code version)."""
        return cls.__module__.removeprefix("photostyle.")

    # --- run time ---------------------------------------------------------------------------
    def __init__(self, params: Any, device: "torch.device", *, seed: int = 0, weights: dict | None = None,
                 artifacts: dict[Artifact, Path] | None = None):
        self.params = params if not isinstance(params, dict) else self.parse(params)
        self.device = device
        self.seed = seed
        self.resolved = dict(weights or {})  # name -> photostyle.core.weights.Resolved
        self.artifact_paths = dict(artifacts or {})
        self._digests: dict[Artifact, str] = {}

    @classmethod
    def for_job(cls, settings: dict, device: "torch.device", styles: list[str], train_root) -> "Method":
        """The instance a stylize job uses: ``settings`` as the rule passes them (``params``,
        ``seed``, ``weights``), the declared weights resolved once (recorded in every output's
        provenance, random ones included) and the artifacts of ``styles`` under ``train_root``."""
        params, seed, w = cls.parse(settings["params"]), settings["seed"], settings.get("weights", {})
        weights = cls.resolve_weights(params, w, seed)
        artifacts = {a: a.path(train_root) for a in cls.artifacts(params, styles)}
        return cls(params, device, seed=seed, weights=weights, artifacts=artifacts)

    def prepare_style(self, style: "torch.Tensor", style_id: str) -> StyleState:
        """Per-style state, made once per style and job (statistics are filled lazily)."""
        return StyleState(style_id, style)

    def __call__(self, content: "torch.Tensor", style: StyleState, masks=None) -> "torch.Tensor":
        """``content`` ``(B, 3, H, W)`` float32 RGB in [0, 1] (B > 1 only if ``batches``);
        ``masks`` the matched region masks (:class:`photostyle.ops.regions.MatchedMasks`) or
        None. Returns the stylised batch, same shape."""
        raise NotImplementedError

    def artifact_digest(self, artifact: Artifact) -> str:
        from photostyle.core.weights import sha256_file

        if artifact not in self._digests:
            self._digests[artifact] = sha256_file(self.artifact_paths[artifact])
        return self._digests[artifact]

    def provenance(self, style_id: str) -> str:
        """What the outputs for ``style_id`` were made with: pretrained weights (``none``,
        ``sha256:...`` or ``random, seed N``) and the digests of trained models."""
        parts = [f"{name}={r.provenance}" for name, r in self.resolved.items()]
        for art in self.artifact_paths:
            if art.style in (None, style_id):
                parts.append(f"{art.trainer}/{art.key}=sha256:{self.artifact_digest(art)}")
        return "; ".join(parts) or "none"
