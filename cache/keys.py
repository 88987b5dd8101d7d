"""Cache keys: SHA-256 over a canonical form of everything that changes the answer.

The key covers the tenant (one tenant never reads another's answers), the deployment, and the
whole `ChatRequest` the deployment is asked (the provider's model name, every message with all
its parts, tool calls and ids, every sampling setting) except its per-call I/O (time limit,
headers), which never changes the answer. Every field of the request's values is in the key by
construction: a field added later is hashed without anyone remembering to add it here. An
embedding call's key is the same over its `EmbedRequest` (model, inputs, dimensions, input
type); the value's type name is part of the canonical form, so chat and embedding keys never meet.

The canonical form is JSON of our own values, after parsing, so field order, `lowerCamelCase`
vs `snake_case` and omitted-vs-default values that mean the same do not change it: each value
is written as its type's name and its fields, `top_p` 1.0 is the same as no `top_p`, stop
sequences are a set, and bytes (image data) are hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Final

import orjson

from providers.embed_types import EmbedRequest
from providers.types import ChatRequest, Sampling

KEY_VERSION: Final = "v2"
_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SORT_KEYS
#: Fields that say how a call travels, not what it asks.
_IO_FIELDS: Final = {(ChatRequest, "io"), (EmbedRequest, "io")}


def cache_key(tenant: str, deployment: str, request: ChatRequest | EmbedRequest) -> str:
    """The cache key of `request` for `tenant` on `deployment`: "v2:<tenant>:<request>"."""
    canonical = orjson.dumps([deployment, request], default=_canonical, option=_OPTIONS)
    tenant_part = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    return f"{KEY_VERSION}:{tenant_part}:{hashlib.sha256(canonical).hexdigest()}"


def _canonical(value: object) -> object:
    """What orjson writes for a value it does not write itself: our dataclasses and bytes."""
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    kind = type(value)
    names = _FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(kind):
            raise TypeError(f"no canonical form for {kind.__name__}")
        names = _FIELDS[kind] = tuple(
            f.name for f in dataclasses.fields(kind) if (kind, f.name) not in _IO_FIELDS
        )
    fields = {name: getattr(value, name) for name in names}
    if kind is Sampling:
        fields["top_p"] = None if fields["top_p"] == 1.0 else fields["top_p"]
        fields["stop"] = sorted(set(fields["stop"]))
    return [kind.__name__, fields]


#: The fields written for each dataclass, found once per type.
_FIELDS: dict[type, tuple[str, ...]] = {}
