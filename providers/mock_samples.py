"""Sample JSON values that follow a JSON Schema: what the mock provider fills tool arguments and
structured answers with.

Only what a simple schema says is honoured: `const`, `enum`, `default`, `type` (the first
non-null one of a list), `anyOf`/`oneOf` (the first), `allOf` (merged objects), an object's
`required` properties (optional ones are left out), an array's `minItems`, a string's
`minLength`/`maxLength` and common `format`s, a number's `minimum`/`maximum`. Local `$ref`s
(`#/$defs/...`) are followed. A schema it cannot read gives `None`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from providers.types import JsonObject

#: How deep a recursive schema is followed before its value is cut to null.
_MAX_DEPTH: Final = 8
_FORMATS: Final[Mapping[str, str]] = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def sample_value(schema: JsonObject, *, text: str = "sample") -> object:
    """A value following `schema`; its strings say `text` where the schema leaves them free."""
    return _Sampler(schema, text).value(schema, 0)


class _Sampler:
    __slots__ = ("_root", "_text")

    def __init__(self, root: JsonObject, text: str) -> None:
        self._root = root
        self._text = text

    def value(self, schema: object, depth: int) -> object:
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return None
        schema = self._resolved(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        if "default" in schema:
            return schema["default"]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.value(options[0], depth + 1)
        return self._typed(schema, _type_of(schema), depth)

    def _typed(self, schema: Mapping[str, object], kind: str, depth: int) -> object:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            count = max(_int(schema.get("minItems"), 1), 1)
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            low, high = schema.get("minimum"), schema.get("maximum")
            number: int | float = 1
            if isinstance(low, int | float) and not isinstance(low, bool):
                number = low
            elif isinstance(high, int | float) and not isinstance(high, bool):
                number = min(1, high)
            return int(number) if kind == "integer" else number
        if kind == "boolean":
            return True
        return None

    def _object(self, schema: Mapping[str, object], depth: int) -> dict[str, object]:
        properties: dict[str, object] = {}
        required: list[str] = []
        for part in [schema, *_list(schema.get("allOf"))]:
            if isinstance(part, Mapping):
                part = self._resolved(part)
                properties.update(_dict(part.get("properties")))
                required += [name for name in _list(part.get("required")) if isinstance(name, str)]
        return {name: self.value(properties.get(name, {}), depth + 1) for name in required}

    def _string(self, schema: Mapping[str, object]) -> str:
        fmt = schema.get("format")
        text = _FORMATS.get(fmt, self._text) if isinstance(fmt, str) else self._text
        shortest, longest = _int(schema.get("minLength"), 0), _int(schema.get("maxLength"), -1)
        if len(text) < shortest:
            text = text + "x" * (shortest - len(text))
        return text[:longest] if longest >= 0 else text

    def _resolved(self, schema: Mapping[str, object]) -> Mapping[str, object]:
        """The schema a local `$ref` points at (itself when it has none, or one not found)."""
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: object = self._root
        for step in ref[2:].split("/"):
            target = target.get(step) if isinstance(target, Mapping) else None
        return target if isinstance(target, Mapping) else schema


def _type_of(schema: Mapping[str, object]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema or "allOf" in schema:
        return "object"
    return ("items" in schema and "array") or "string"


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, Mapping) else {}
