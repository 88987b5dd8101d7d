"""Reading the body of an OpenAI-compatible route: the gateway's extras, and typed values.

The gateway's own extras come in the body (the SDK's `extra_body`) on every route:
`fallback_models`, `cache`, `priority`, `provider`, `timeout`; `user` becomes the metadata label
"user" and `metadata` the labels (`serving`). The readers of typed values refuse a value of
the wrong type with an `InvalidArgumentError` naming its field.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import CachePolicy, Priority, Routing

#: The body fields `serving` reads: every OpenAI route accepts them besides its own.
SERVING_FIELDS: Final = frozenset(
    {"fallback_models", "cache", "priority", "provider", "timeout", "user", "metadata"}
)
_PRIORITIES: Final = {p.name.lower(): p for p in Priority} | {
    f"priority_{p.name.lower()}": p for p in Priority
}


class Serving(NamedTuple):
    """How the gateway serves a call, in the order `CompletionRequest` and `EmbeddingRequest`
    take it after what the model is asked."""

    routing: Routing
    metadata: dict[str, str]
    timeout: float | None
    priority: int
    cache: CachePolicy


def serving(body: Mapping[str, Any]) -> Serving:
    """The extras of `body` (and its `user` and `metadata`)."""
    return Serving(
        _routing(body),
        _metadata(body),
        _timeout(body.get("timeout")),
        _priority(body.get("priority")),
        _cache(body.get("cache")),
    )


# -- how the gateway serves it -------------------------------------------------------------------


def _routing(body: Mapping[str, Any]) -> Routing:
    provider = optional_text(body, "provider") or ""
    fallbacks = body.get("fallback_models")
    if fallbacks is None:
        fallbacks = []
    if not isinstance(fallbacks, list) or not all(isinstance(m, str) for m in fallbacks):
        raise InvalidArgumentError("fallback_models: must be an array of model names")
    return Routing(provider, tuple(fallbacks))


def _metadata(body: Mapping[str, Any]) -> dict[str, str]:
    raw = body.get("metadata")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise InvalidArgumentError("metadata: must be an object of strings")
    labels = dict(raw)
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise InvalidArgumentError("user: must be a string")
        labels.setdefault("user", user)
    return labels


def _timeout(raw: object) -> float | None:
    if raw is None:
        return None
    seconds = math.nan
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
    elif isinstance(raw, str):
        text = raw.strip().lower()
        scale = 0.001 if text.endswith("ms") else 1.0
        with contextlib.suppress(ValueError):
            seconds = float(text.removesuffix("ms").removesuffix("s")) * scale
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError("timeout: seconds (a number, or a string such as '1.5s')")
    return seconds


def _priority(raw: object) -> int:
    if raw is None:
        return Priority.UNSPECIFIED
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw  # validation refuses one that is not a Priority
    if isinstance(raw, str) and raw.lower() in _PRIORITIES:
        return _PRIORITIES[raw.lower()]
    raise InvalidArgumentError("priority: must be low, normal or high")


def _cache(raw: object) -> CachePolicy:
    if raw is None:
        return CachePolicy()
    if not isinstance(raw, dict):
        raise InvalidArgumentError("cache: must be an object")
    for key in raw:
        if key not in ("no_cache", "no_store", "ttl"):
            raise InvalidArgumentError(f"cache.{key}: unrecognized (no_cache, no_store, ttl)")
    ttl = raw.get("ttl")
    return CachePolicy(
        lookup=not flag(raw, "no_cache", "cache.no_cache"),
        store=not flag(raw, "no_store", "cache.no_store"),
        ttl=_timeout(ttl) if ttl is not None else None,
    )


# -- scalars -------------------------------------------------------------------------------------


def flag(body: Mapping[str, Any], key: str, where: str = "") -> bool:
    """`body[key]` as a boolean, False when absent (`where` names it in an error)."""
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{where or key}: must be true or false")
    return value


def optional_flag(body: Mapping[str, Any], key: str) -> bool | None:
    """`body[key]` as a boolean, None when absent."""
    return None if body.get(key) is None else flag(body, key)


def optional_text(body: Mapping[str, Any], key: str) -> str | None:
    """`body[key]` as a string, None when absent."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(f"{key}: must be a string")
    return value


def optional_float(body: Mapping[str, Any], key: str) -> float | None:
    """`body[key]` as a number, None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{key}: must be a number")
    return float(value)


def optional_int(body: Mapping[str, Any], key: str) -> int | None:
    """`body[key]` as an integer, None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{key}: must be an integer")
    return value
