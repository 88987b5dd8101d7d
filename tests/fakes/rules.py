"""Checks the vendor fakes share: the rejection they raise, and facts about images and schemas.

A vendor's rules module walks a request body and raises `Rejected` at the first thing the real
vendor refuses; its fake renders that as the vendor's own 400 body. The helpers here know the
bits of the wire several vendors agree on: base64, data URLs, image magic numbers, and the
JSON-schema subsets structured output accepts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

#: Image types by their first bytes (PNG, JPEG, GIF, WebP): what vendors sniff uploads for.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)
#: Keywords whose value must be an integer (a `google.protobuf.Struct` would make 1 into 1.0).
INTEGER_KEYWORDS = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)


@dataclass(slots=True)
class Rejected(Exception):  # noqa: N818 -- it reads as what happened to the request
    """The vendor refuses the request: `message` as the vendor words it, for its 400 body."""

    message: str
    param: str | None = None
    code: str | None = None
    status: int = 400
    #: Vendor-specific extras for the error body (e.g. Google's `status` name).
    extra: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def b64decode(data: object) -> bytes | None:
    """The bytes of standard (or URL-safe) base64 text, None when it is not base64."""
    if not isinstance(data, str) or not data:
        return None
    text = data.strip()
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def first_bad_base64_byte(data: str) -> int:
    """Where Go's base64 decoder gives up on `data` (the offset its error names)."""
    allowed = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    for index, byte in enumerate(data.encode()):
        if byte not in allowed:
            return index
    return len(data)


def sniff_image(data: bytes) -> str | None:
    """The image type `data` starts like (PNG, JPEG, GIF, WebP), None when none of them."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True, slots=True)
class DataUrl:
    """A parsed `data:` URL."""

    mime: str
    base64: bool
    data: str


def parse_data_url(url: str) -> DataUrl | None:
    """`url` split into media type and payload, None when it is not a `data:` URL."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    params = [p.strip() for p in match["params"].split(";") if p.strip()]
    return DataUrl(match["mime"].strip().lower(), "base64" in params, match["data"])


def is_web_url(url: object) -> bool:
    """Whether `url` is an http(s) URL."""
    return isinstance(url, str) and re.match(r"https?://[^\s/]+", url) is not None


def subschemas(
    schema: object, context: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, object]]]:
    """Every schema object inside `schema` (itself first), with the path that leads to it."""
    if not isinstance(schema, dict):
        return
    yield context, schema
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            yield from subschemas(sub, (*context, "properties", name))
    items = schema.get("items")
    if isinstance(items, dict):
        yield from subschemas(items, (*context, "items"))
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        options = schema.get(key)
        if isinstance(options, list):
            for index, sub in enumerate(options):
                yield from subschemas(sub, (*context, key, str(index)))
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict):
            for name, sub in defs.items():
                yield from subschemas(sub, (*context, key, name))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from subschemas(extra, (*context, "additionalProperties"))


def schema_types(schema: Mapping[str, object]) -> set[str]:
    """The JSON types a schema object names (`type` as a string or a list)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def non_integer_keyword(schema: object) -> tuple[tuple[str, ...], str, object] | None:
    """The first keyword that must be an integer but holds a float (path, keyword, value)."""
    for path, sub in subschemas(schema):
        for keyword in INTEGER_KEYWORDS:
            value = sub.get(keyword)
            if isinstance(value, float):
                return path, keyword, value
    return None


def openai_strict_problem(schema: object) -> str | None:
    """Why OpenAI's strict structured outputs refuse `schema` (None when they accept it).

    Strict mode needs every object closed (`additionalProperties: false`) and every property
    listed in `required`, and every schema typed. The wording is OpenAI's:
    "In context=('properties', 'a'), 'additionalProperties' is required to be supplied and to be
    false." (quoted in OpenAI developer-community threads and many client fixes).
    """
    for path, sub in subschemas(schema):
        context = repr(path)
        if not any(k in sub for k in ("type", "anyOf", "$ref", "enum", "const")):
            return f"In context={context}, schema must have a 'type' key."
        if "object" in schema_types(sub):
            if sub.get("additionalProperties") is not False:
                return (
                    f"In context={context}, 'additionalProperties' is required to be supplied "
                    "and to be false."
                )
            properties = sub.get("properties")
            names = list(properties) if isinstance(properties, dict) else []
            required = sub.get("required")
            listed = required if isinstance(required, list) else []
            missing = [name for name in names if name not in listed]
            if missing:
                return (
                    f"In context={context}, 'required' is required to be supplied and to be an "
                    f"array including every key in properties. Missing '{missing[0]}'."
                )
    return None


#: What Anthropic's structured outputs refuse, by JSON type (platform.claude.com
#: build-with-claude/structured-outputs "JSON Schema limitations"; the 400 reads
#: "For 'integer' type, property 'minimum' is not supported", agentjido/req_llm#302).
ANTHROPIC_UNSUPPORTED = {
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "string": ("minLength", "maxLength"),
    "array": ("maxItems", "uniqueItems"),
    "object": ("minProperties", "maxProperties", "patternProperties"),
}


def anthropic_schema_problem(schema: object) -> str | None:
    """Why Anthropic's `output_config.format` (or a strict tool) refuses `schema`, or None."""
    if not isinstance(schema, dict):
        return "Input should be a valid dictionary"
    for _path, sub in subschemas(schema):
        for kind in sorted(schema_types(sub)):
            for keyword in ANTHROPIC_UNSUPPORTED.get(kind, ()):
                if keyword in sub:
                    return f"For '{kind}' type, property '{keyword}' is not supported"
            if kind == "array" and sub.get("minItems") not in (None, 0, 1):
                return "For 'array' type, 'minItems' values other than 0 or 1 are not supported"
            if kind == "object" and sub.get("additionalProperties") is not False:
                return "For 'object' type, 'additionalProperties' must be explicitly set to false"
    return None
