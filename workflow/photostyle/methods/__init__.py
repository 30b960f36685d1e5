"""The method registry: every :class:`~photostyle.methods.base.Method` subclass with a ``name``
in the modules of this package, found by name (``pkgutil``), so a new method is one new module
(see ``docs/architecture.md``). Importing the registry imports no torch: method modules keep
their heavy imports inside their functions, so building the Snakemake DAG stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

from photostyle.methods.base import Artifact, Method, StyleState, param

__all__ = ["REGISTRY", "Artifact", "Method", "StyleState", "get_method", "param"]


def _discover() -> dict[str, type[Method]]:
    found: dict[str, type[Method]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, Method) and obj.name and obj.__module__ == mod.__name__:
                if obj.name in found:
                    raise RuntimeError(f"method name {obj.name!r} is defined twice: {found[obj.name]} and {obj}")
                found[obj.name] = obj
    return dict(sorted(found.items()))


REGISTRY: dict[str, type[Method]] = _discover()


def get_method(name: str) -> type[Method]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None
