"""JSON Schema validation with messages an operator can act on.

``validate(data, "inventory")`` checks ``data`` against ``schemas/inventory.schema.json`` and
returns it unchanged, or raises :class:`PlannerError` whose field is the dotted path of the bad
value (``vllm_tier_overrides.single.max_model_len``) and whose message gives what is allowed:
the enum values, the numeric range, or, for an unknown key, the allowed keys and the closest one.
"""

from __future__ import annotations

import difflib
import json
import os
from functools import lru_cache
from typing import Any

import jsonschema
from referencing import Registry, Resource

from .errors import PlannerError

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "schemas")
_SUFFIX = ".schema.json"


@lru_cache(maxsize=None)
def _load_all(schema_dir: str = SCHEMA_DIR) -> tuple[dict[str, dict], Registry]:
    """Every ``*.schema.json`` in ``schema_dir``, by short name, plus a registry of their ``$id``s."""
    schemas: dict[str, dict] = {}
    registry: Registry = Registry()
    for entry in sorted(os.listdir(schema_dir)):
        if not entry.endswith(_SUFFIX):
            continue
        with open(os.path.join(schema_dir, entry), encoding="utf-8") as handle:
            doc = json.load(handle)
        schemas[entry[: -len(_SUFFIX)]] = doc
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
    return schemas, registry


def schema_names() -> list[str]:
    return sorted(_load_all()[0])


def load_schema(schema_name: str) -> dict:
    schemas, _ = _load_all()
    name = schema_name[: -len(_SUFFIX)] if schema_name.endswith(_SUFFIX) else schema_name
    if name not in schemas:
        raise PlannerError("vllm_validate", "schema_name", f"unknown schema {schema_name!r}; known: {', '.join(sorted(schemas))}")
    return schemas[name]


def _resolve(schema: Any) -> Any:
    """Follow a ``$ref`` (the schemas use absolute references) to the schema it names."""
    _, registry = _load_all()
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 16:
        schema = registry.resolver().lookup(schema["$ref"]).contents
        seen += 1
    return schema


def _allowed_keys(schema: dict) -> list[str]:
    """Property names a schema accepts, including those of its ``allOf`` parts."""
    schema = _resolve(schema)
    keys: list[str] = list(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        keys.extend(_allowed_keys(part))
    return sorted(set(keys))


def _fmt_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def describe(schema: Any) -> str:
    """A short English description of what a (sub)schema accepts."""
    schema = _resolve(schema)
    if not isinstance(schema, dict):
        return "a valid value"
    if "title" in schema:
        return schema["title"]
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of: " + ", ".join(str(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(describe(part) for part in schema[key])
    kind = schema.get("type")
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        low = schema.get("exclusiveMinimum", schema.get("minimum"))
        high = schema.get("exclusiveMaximum", schema.get("maximum"))
        if low is None and high is None:
            return noun
        left = "(" if "exclusiveMinimum" in schema else "["
        right = ")" if "exclusiveMaximum" in schema else "]"
        if high is None:
            return f"{noun} {'>' if left == '(' else '>='} {_fmt_num(low)}"
        if low is None:
            return f"{noun} {'<' if right == ')' else '<='} {_fmt_num(high)}"
        return f"{noun} in {left}{_fmt_num(low)}, {_fmt_num(high)}{right}"
    if kind == "string":
        if "description" in schema:
            return schema["description"]
        if "pattern" in schema:
            return f"a string matching {schema['pattern']}"
        return "a string"
    if kind == "boolean":
        return "true or false"
    if kind == "object":
        return "a mapping"
    if kind == "array":
        return "a list"
    return schema.get("description", "a valid value")


def _path(prefix: str, parts) -> str:
    text = prefix
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text or "(top level)"


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    allowed = set(_allowed_keys(error.schema))
    return sorted(str(k) for k in instance if k not in allowed)


def _messages(error: jsonschema.ValidationError, prefix: str) -> list[tuple[str, str]]:
    """(field path, message) pairs for one jsonschema error."""
    where = list(error.absolute_path)
    value = error.instance
    validator = error.validator
    if "propertyNames" in error.schema_path and isinstance(value, str):
        # A bad key (a tier or slot name): jsonschema reports it at the parent's path.
        where = where + [value]
        choices = error.validator_value if validator == "enum" else []
        return [
            (
                _path(prefix, where),
                f"unknown name {value!r}; allowed: {describe(error.schema)}{_did_you_mean(value, list(choices))}",
            )
        ]
    if validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = _allowed_keys(error.schema)
        out = []
        for key in _unexpected_keys(error):
            out.append(
                (
                    _path(prefix, where + [key]),
                    f"unknown key {key!r}; allowed keys: {', '.join(allowed)}{_did_you_mean(key, allowed)}",
                )
            )
        # Empty when every key is a known one: a bad value inside an allOf part makes
        # unevaluatedProperties report its key again; the value's own error says it better.
        return out
    if validator == "required":
        missing = [k for k in error.validator_value if not isinstance(value, dict) or k not in value]
        props = _resolve(error.schema).get("properties", {})
        return [
            (_path(prefix, where + [k]), "is required but missing" + (f"; expected {describe(props[k])}" if k in props else ""))
            for k in missing
        ]
    if validator == "enum":
        shown = "''" if value == "" else repr(value)
        return [
            (
                _path(prefix, where),
                f"{shown} is not allowed; valid values: {', '.join(str(v) for v in error.validator_value)}"
                + _did_you_mean(value, list(error.validator_value)),
            )
        ]
    if validator == "type":
        return [(_path(prefix, where), f"{value!r} has the wrong type; expected {describe(error.schema)}")]
    parent = error.parent
    # A failed subschema (anyOf parts, numeric bounds, patterns): describe the whole field's schema.
    field_schema = error.schema
    if parent is not None and parent.validator in ("anyOf", "oneOf"):
        field_schema = parent.schema
    return [(_path(prefix, where), f"{value!r} is not allowed; expected {describe(field_schema)}")]


def errors_for(data: Any, schema_name: str, prefix: str = "") -> list[tuple[str, str]]:
    """Every problem in ``data``, as (field path, message), most specific first."""
    schema = load_schema(schema_name)
    _, registry = _load_all()
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
    found: list[tuple[str, str]] = []
    raw = list(validator.iter_errors(data))
    for error in sorted(raw, key=lambda e: list(map(str, e.absolute_path))):
        for item in _messages(error, prefix):
            if item not in found:
                found.append(item)
    return found


def validate(data: Any, schema_name: str, filter_name: str = "vllm_validate") -> Any:
    """Return ``data`` when it matches the schema, else raise naming the field and what is allowed."""
    checked = data
    if isinstance(data, dict) and schema_name.startswith("inventory"):
        # Ansible passes declared-but-unset variables as None: treat them as not given.
        checked = {k: v for k, v in data.items() if v is not None}
    problems = errors_for(checked, schema_name)
    if problems:
        field, message = problems[0]
        if len(problems) > 1:
            rest = "; ".join(f"{f}: {m}" for f, m in problems[1:])
            message = f"{message} (also: {rest})"
        raise PlannerError(filter_name, field, message)
    return data
