"""JSON Schemas as Anthropic takes them: structured outputs' subset, and integral numbers.

Anthropic's structured outputs (`output_config.format`, and strict tools) accept a subset of
JSON Schema: every object closed (`additionalProperties: false`), `oneOf` only as `anyOf`,
string `format`s from a fixed list, `minItems` only 0 or 1, and no numeric or length bounds
(the API refuses them: "For 'integer' type, property 'minimum' is not supported"). The keywords
it does not take are moved into the schema's `description`, so the model still reads them —
the rule `anthropic-sdk-python` v2.17 `lib/_parse/_transform.py` applies to its own schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from providers.wire import integral

#: Keywords kept on every schema (the rest of a schema's own keywords depend on its type).
_KEPT: Final = frozenset({"type", "description", "title", "enum", "const", "$ref"})
#: String formats structured outputs take.
_STRING_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
#: `minItems` values structured outputs take.
_MIN_ITEMS: Final = (0, 1)


def output_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """`schema` in structured outputs' subset (a new object; `schema` is left as it is)."""
    adjusted: dict[str, object] = {}
    rest: dict[str, object] = {}
    types = _types(schema.get("type"))
    if not types and "properties" in schema and "$ref" not in schema:
        types = frozenset({"object"})  # an object schema that does not say its type
        adjusted["type"] = "object"
    for key, value in schema.items():
        if key in _KEPT:
            adjusted[key] = integral(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            name = "allOf" if key == "allOf" else "anyOf"
            adjusted[name] = [output_schema(v) if isinstance(v, Mapping) else v for v in value]
        elif _is_schema_map(key, types) and isinstance(value, Mapping):
            adjusted[key] = {k: _sub(v) for k, v in value.items()}
        elif key == "required" and "object" in types:
            adjusted[key] = value
        elif key == "additionalProperties" and "object" in types:
            continue  # set below: every object is closed
        elif key == "items" and "array" in types and isinstance(value, Mapping):
            adjusted[key] = output_schema(value)
        elif key == "minItems" and "array" in types and value in _MIN_ITEMS:
            adjusted[key] = int(value) if isinstance(value, int | float) else value
        elif key == "format" and "string" in types and value in _STRING_FORMATS:
            adjusted[key] = value
        else:
            rest[key] = integral(value)
    if "object" in types:
        adjusted["additionalProperties"] = False
    if rest:
        said = ", ".join(f"{key}: {value}" for key, value in rest.items())
        description = adjusted.get("description")
        lead = f"{description}\n\n" if isinstance(description, str) and description else ""
        adjusted["description"] = f"{lead}{{{said}}}"
    return adjusted


def _is_schema_map(key: str, types: frozenset[str]) -> bool:
    """Whether `key` holds named subschemas (definitions, or an object's properties)."""
    return key in ("$defs", "definitions") or (key == "properties" and "object" in types)


def _sub(value: object) -> object:
    return output_schema(value) if isinstance(value, Mapping) else value


def _types(kind: object) -> frozenset[str]:
    """The JSON types `type` names (a string or a list of them)."""
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list):
        return frozenset(k for k in kind if isinstance(k, str))
    return frozenset()
