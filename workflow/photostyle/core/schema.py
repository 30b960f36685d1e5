"""JSON-schema validation with defaults and clear messages, and stable hashes of settings.

The full schema (with the method registry's blocks) and ``validate_config``: :mod:`photostyle.config`."""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem found."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:  # libyaml's loader where PyYAML has it: this runs at every DAG build
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        return {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def fill_defaults(instance: Any, schema: dict, root: dict | None = None) -> Any:
    """Fill missing keys from ``default`` values in the schema, recursively."""
    root = root or schema
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return instance
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults(instance[key], sub, root)
    return instance


# Scientific notation as people write it: YAML 1.1 (PyYAML) reads ``1e4``, ``1.0e9`` or ``1e-6``
# (no dot, or no sign on the exponent) as strings, where YAML 1.2, JSON and Python read numbers.
# Only these are coerced: a quoted plain number ("500") stays a string, and an error.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _types(schema: dict) -> set:
    t = schema.get("type", ())
    return {t} if isinstance(t, str) else set(t)


def _as_number(value: str, types: set):
    """``value`` as a number if it is one and ``types`` want a number (or an integer) and no
    string; otherwise ``value`` unchanged (validation then names it)."""
    text = value.strip()
    if "string" in types or not _NUMBER.fullmatch(text):
        return value
    f = float(text)
    if "number" in types:
        return f
    return int(f) if "integer" in types and f.is_integer() else value


def coerce_numbers(instance: Any, schema: dict, root: dict | None = None) -> Any:
    """Turn numeric strings into numbers wherever the schema wants a number or an integer
    (``photorealism_weight: 1e4`` in a YAML file); returns the (possibly new) instance."""
    root = root or schema
    schema = _resolve(schema, root)
    if isinstance(instance, str):
        return _as_number(instance, _types(schema))
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                instance[key] = coerce_numbers(value, sub, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        instance[:] = [coerce_numbers(v, schema["items"], root) for v in instance]
    return instance


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: jsonschema.ValidationError) -> str:
    where = _key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        msgs = []
        for key in extra:
            full = f"{where}.{key}" if err.absolute_path else key
            hint = difflib.get_close_matches(key, allowed, n=1)
            did = f" Did you mean '{hint[0]}'?" if hint else ""
            msgs.append(f"unknown config key '{full}'.{did} Allowed keys here: {', '.join(allowed)}.")
        return "\n".join(msgs)
    if err.validator == "enum":
        allowed = [str(v) for v in err.validator_value]
        hint = difflib.get_close_matches(str(err.instance), allowed, n=1)
        did = f" Did you mean '{hint[0]}'?" if hint else ""
        return f"config key '{where}' has value {err.instance!r}, which is not allowed.{did} Allowed values: {', '.join(allowed)}."
    if err.validator == "type" and isinstance(err.instance, str) and {"number", "integer"} & set(
            [err.validator_value] if isinstance(err.validator_value, str) else err.validator_value):
        return (f"config key '{where}' has value {err.instance!r}, which is not a number "
                f"(write it as e.g. 10000, 1e4, 1.5e-3).")
    if err.validator == "propertyNames":
        return f"config key '{where}': {err.message}"
    return f"config key '{where}': {err.message}"


def validate_against(config: dict, schema: dict) -> dict:
    """Return a validated deep copy of ``config`` with defaults filled in.

    Raises :class:`ConfigError` naming every offending key with the allowed keys or values.
    """
    cfg = coerce_numbers(fill_defaults(copy.deepcopy(dict(config)), schema), schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        body = "\n".join(f"  - {_message(e)}" for e in errors)
        raise ConfigError(f"invalid photostyle configuration:\n{body}")
    return cfg


def default_config_path() -> Path:
    return Path(__file__).resolve().parents[3] / "config" / "config.yaml"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    """Short, stable hash of a config sub-tree (key order does not matter)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:12]
