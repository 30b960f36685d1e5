"""The configuration: the schema file plus the method registry's blocks, validated with defaults.

``workflow/schemas/config.schema.yaml`` holds every section but the per-method ones; the
method enums (``stylize.methods``, ``refine.per_method``) and the blocks ``methods.<name>``
are generated from the registry (each method's ``Params`` dataclass), so a parameter is
declared in one place. Validation machinery and hashes: :mod:`photostyle.core.schema`.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import yaml

from photostyle.core.schema import (ConfigError, canonical_json, config_hash, default_config_path,  # noqa: F401
                                    load_schema, validate_against)


@lru_cache(maxsize=1)
def full_schema() -> dict:
    """The schema file with the registry's method names and per-method blocks filled in."""
    from photostyle.methods import REGISTRY

    schema = copy.deepcopy(load_schema())
    names = list(REGISTRY)
    props = schema["properties"]
    props["stylize"]["properties"]["methods"]["items"] = {"enum": names}
    props["refine"]["properties"]["per_method"]["propertyNames"] = {"enum": names}
    props["lift"]["properties"]["per_method"]["propertyNames"] = {"enum": names}
    props["methods"]["properties"] = {name: cls.schema() for name, cls in REGISTRY.items()}
    return schema


def validate_config(config: dict) -> dict:
    """A validated deep copy of ``config`` with defaults filled in; :class:`ConfigError` names
    every offending key with the allowed keys or values (and a close match for typos)."""
    return validate_against(config, full_schema())


def load_config(path: str | Path | None = None) -> dict:
    with open(path or default_config_path(), encoding="utf-8") as fh:
        return validate_config(yaml.safe_load(fh) or {})
