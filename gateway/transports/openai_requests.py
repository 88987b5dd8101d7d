"""An OpenAI Chat Completions request body as our `CompletionRequest`: pure conversion.

Every field of the body is honoured or refused, never ignored. A field the gateway has no
equivalent for (penalties, `logit_bias`, `logprobs`...) is accepted only with the value that
asks nothing (`0`, `null`, `false`, the default tier); any other value is refused with a 400
naming it (`UnsupportedParamError`), or, when the operator set `DROP_UNSUPPORTED_PARAMS`, dropped
and named in the answer's `x-gateway-dropped-params`. An unknown field is refused like OpenAI
refuses it. The gateway's own extras come in the body (the SDK's `extra_body`):
`fallback_models`, `cache`, `priority`, `provider`, `timeout`.

`user` becomes the metadata label "user", `metadata` the labels; messages are converted by
`openai_messages`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import CachePolicy, CompletionRequest, Priority, Routing
from gateway.transports.openai_errors import UnsupportedParamError
from gateway.transports.openai_messages import messages
from providers.types import (
    ChatRequest,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    Tool,
    ToolChoice,
    ToolChoiceMode,
)

MAX_CHOICES = 8


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A Chat Completions request, converted: the call, and how to answer it."""

    request: CompletionRequest
    stream: bool = False
    include_usage: bool = False
    #: Choices asked for (`n`): each is one call through the core.
    n: int = 1
    #: Fields dropped under DROP_UNSUPPORTED_PARAMS.
    dropped: tuple[str, ...] = field(default=())


#: Fields the gateway has no equivalent for, each with the test of the value that asks nothing.
_INERT: Final[Mapping[str, Callable[[Any], bool]]] = {
    "frequency_penalty": lambda v: v is None or v == 0,
    "presence_penalty": lambda v: v is None or v == 0,
    "logit_bias": lambda v: v is None or v == {},
    "logprobs": lambda v: v is None or v is False,
    "top_logprobs": lambda v: v is None,
    "store": lambda v: v is None or v is False,
    "service_tier": lambda v: v in (None, "auto", "default"),
    "modalities": lambda v: v is None or v == ["text"],
    "audio": lambda v: v is None,
    "prediction": lambda v: v is None,
    "web_search_options": lambda v: v is None,
    "functions": lambda v: v is None,
    "function_call": lambda v: v is None,
    "verbosity": lambda v: v is None,
    "prompt_cache_key": lambda v: v is None,
    "prompt_cache_retention": lambda v: v is None,
    "safety_identifier": lambda v: v is None,
}
_HANDLED: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "n",
        "user",
        "metadata",
        "reasoning_effort",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        # the gateway's extras
        "fallback_models",
        "cache",
        "priority",
        "provider",
        "timeout",
    }
)
_PRIORITIES: Final = {p.name.lower(): p for p in Priority} | {
    f"priority_{p.name.lower()}": p for p in Priority
}
_CHOICE_MODES: Final = {"auto": ToolChoiceMode.AUTO, "none": ToolChoiceMode.NONE}
_CHOICE_MODES["required"] = ToolChoiceMode.REQUIRED


def chat_call(body: dict[str, Any], *, drop_unsupported: bool = False) -> ChatCall:
    """The call `body` asks for; `InvalidArgumentError` (its message starting with the field)."""
    dropped: list[str] = []
    for name in body:
        if name in _HANDLED:
            continue
        inert = _INERT.get(name)
        if inert is None:
            raise InvalidArgumentError(f"{name}: unrecognized request argument")
        if not inert(body[name]):
            if not drop_unsupported:
                raise UnsupportedParamError(name, "not supported by this gateway")
            dropped.append(name)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgumentError("model: required, a string")
    stream = _flag(body, "stream")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidArgumentError("stream_options: must be an object")
        if not stream:
            raise InvalidArgumentError("stream_options: only allowed when stream is true")
        for key in options:
            if key not in ("include_usage", "include_obfuscation"):
                raise InvalidArgumentError(f"stream_options.{key}: unrecognized")
        include_usage = _flag(options, "include_usage", "stream_options.include_usage")
        if _flag(options, "include_obfuscation", "stream_options.include_obfuscation"):
            raise UnsupportedParamError("stream_options.include_obfuscation", "not supported")
    n = _integer(body, "n")
    if n is not None and not 1 <= n <= MAX_CHOICES:
        raise InvalidArgumentError(f"n: must be between 1 and {MAX_CHOICES}, got {n}")
    chat = ChatRequest(
        model,
        messages(body.get("messages")),
        _sampling(body),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=_optional_flag(body, "parallel_tool_calls"),
        response_format=_response_format(body.get("response_format")),
        reasoning_effort=_optional_text(body, "reasoning_effort"),
    )
    request = CompletionRequest(
        chat,
        _routing(body),
        _metadata(body),
        _timeout(body.get("timeout")),
        _priority(body.get("priority")),
        _cache(body.get("cache")),
    )
    return ChatCall(request, stream, include_usage, n or 1, tuple(dropped))


# -- what the model is asked ---------------------------------------------------------------------


def _sampling(body: dict[str, Any]) -> Sampling:
    max_tokens = _integer(body, "max_tokens")
    newer = _integer(body, "max_completion_tokens")
    if max_tokens is not None and newer is not None and max_tokens != newer:
        raise InvalidArgumentError(
            "max_completion_tokens: set max_tokens or max_completion_tokens, not both"
        )
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise InvalidArgumentError("stop: must be a string or an array of strings")
    return Sampling(
        _number(body, "temperature"),
        newer if newer is not None else max_tokens,
        _number(body, "top_p"),
        stops,
        _integer(body, "seed"),
    )


def _tools(raw: object) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidArgumentError("tools: must be an array")
    tools = []
    for number, item in enumerate(raw):
        where = f"tools[{number}]"
        if not isinstance(item, dict) or item.get("type") != "function":
            raise UnsupportedParamError(f"{where}.type", "only function tools are supported")
        function = item.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidArgumentError(f"{where}.function.name: required, a string")
        parameters = function.get("parameters") or {}
        description = function.get("description") or ""
        if not isinstance(parameters, dict) or not isinstance(description, str):
            raise InvalidArgumentError(f"{where}.function: parameters must be an object")
        strict = function.get("strict") is True
        tools.append(Tool(function["name"], description, parameters, strict))
    return tuple(tools)


def _tool_choice(raw: object) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        mode = _CHOICE_MODES.get(raw)
        if mode is None:
            raise InvalidArgumentError("tool_choice: must be auto, none, required or an object")
        return ToolChoice(mode)
    if isinstance(raw, dict) and raw.get("type") == "function":
        function = raw.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return ToolChoice(ToolChoiceMode.TOOL, function["name"])
    if isinstance(raw, dict) and raw.get("type") == "allowed_tools":
        raise UnsupportedParamError("tool_choice.type", "allowed_tools is not supported")
    raise InvalidArgumentError('tool_choice: an object must be {"type": "function", ...}')


def _response_format(raw: object) -> ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidArgumentError("response_format: must be an object")
    kind = raw.get("type")
    if kind == "text":
        return ResponseFormat(ResponseFormatType.TEXT)
    if kind == "json_object":
        return ResponseFormat(ResponseFormatType.JSON_OBJECT)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidArgumentError("response_format.json_schema: required, an object")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise InvalidArgumentError("response_format.json_schema.schema: must be an object")
        name = spec.get("name") or ""
        if not isinstance(name, str):
            raise InvalidArgumentError("response_format.json_schema.name: must be a string")
        return ResponseFormat(
            ResponseFormatType.JSON_SCHEMA, name, schema, spec.get("strict") is True
        )
    raise InvalidArgumentError("response_format.type: must be text, json_object or json_schema")


# -- how the gateway serves it -------------------------------------------------------------------


def _routing(body: dict[str, Any]) -> Routing:
    provider = _optional_text(body, "provider") or ""
    fallbacks = body.get("fallback_models")
    if fallbacks is None:
        fallbacks = []
    if not isinstance(fallbacks, list) or not all(isinstance(m, str) for m in fallbacks):
        raise InvalidArgumentError("fallback_models: must be an array of model names")
    return Routing(provider, tuple(fallbacks))


def _metadata(body: dict[str, Any]) -> dict[str, str]:
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
        lookup=not _flag(raw, "no_cache", "cache.no_cache"),
        store=not _flag(raw, "no_store", "cache.no_store"),
        ttl=_timeout(ttl) if ttl is not None else None,
    )


# -- scalars -------------------------------------------------------------------------------------


def _flag(body: Mapping[str, Any], key: str, where: str = "") -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{where or key}: must be true or false")
    return value


def _optional_flag(body: Mapping[str, Any], key: str) -> bool | None:
    return None if body.get(key) is None else _flag(body, key)


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(f"{key}: must be a string")
    return value


def _number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{key}: must be a number")
    return float(value)


def _integer(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{key}: must be an integer")
    return value
