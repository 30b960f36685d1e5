"""The one registry of stylisation methods.

A method is one function with the signature of :data:`MethodFn`::

    fn(content, style, *, masks, params, device, state) -> stylized

``content`` ``(1, 3, H, W)`` and ``style`` ``(1, 3, h, w)`` are float32 RGB in [0, 1] on
``device``; ``masks`` is ``None`` or the matched region masks of the segmentation stage;
``params`` is the method's sub-tree of ``config['methods']``; ``state`` is a dict that lives
for the whole shard job, where a method keeps loaded models and per-style statistics so
that they are built once per job, not once per photo. The result has the content's shape.

A new method is one module plus one :func:`register` call (and its name in the config
schema's enums, which a test keeps in sync with this registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch


class MethodFn(Protocol):
    def __call__(
        self, content: torch.Tensor, style: torch.Tensor, *, masks, params: dict,
        device: torch.device, state: dict,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Method:
    name: str
    fn: MethodFn
    module: str  # source file (relative to the package) hashed into the rule's params
    weights: tuple[str, ...] = ()  # names in photostyle.weights.REGISTRY
    description: str = ""


REGISTRY: dict[str, Method] = {}


def register(name: str, module: str, weights: tuple[str, ...] = (), description: str = "") -> Callable:
    def deco(fn: MethodFn) -> MethodFn:
        if name in REGISTRY:
            raise ValueError(f"method {name!r} registered twice")
        REGISTRY[name] = Method(name, fn, module, weights, description)
        return fn

    return deco


def get_method(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None


# Registration happens on import of each method module.
from . import colour  # noqa: E402,F401
