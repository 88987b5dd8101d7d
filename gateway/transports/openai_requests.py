"""An OpenAI Chat Completions request body as our `CompletionRequest`: pure conversion.

Every field of the body is honoured or refused, never ignored. A field the gateway has no
equivalent for (penalties, `logit_bias`, `logprobs`...) is accepted only with the value that
asks nothing (`0`, `null`, `false`, the default tier); any other value is refused with a 400
naming it (`UnsupportedParamError`), or, when the operator set `DROP_UNSUPPORTED_PARAMS`, dropped
and named in the answer's `x-gateway-dropped-params`. An unknown field is refused like OpenAI
refuses it. The gateway's own extras come in the body (the SDK's `extra_body`):
`fallback_models`, `cache`, `priority`, `provider`, `timeout` (read by `openai_fields`, as on
every OpenAI route).

`user` becomes the metadata label "user", `metadata` the labels; messages are converted by
`openai_messages`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import CompletionRequest
from gateway.transports.openai_errors import UnsupportedParamError
from gateway.transports.openai_fields import (
    SERVING_FIELDS,
    flag,
    optional_flag,
    optional_float,
    optional_int,
    optional_text,
    serving,
)
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
_HANDLED: Final = (
    frozenset(
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
            "reasoning_effort",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
        }
    )
    | SERVING_FIELDS
)
_CHOICE_MODES: Final = {
    "auto": ToolChoiceMode.AUTO,
    "none": ToolChoiceMode.NONE,
    "required": ToolChoiceMode.REQUIRED,
}


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
    stream = flag(body, "stream")
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
        include_usage = flag(options, "include_usage", "stream_options.include_usage")
        if flag(options, "include_obfuscation", "stream_options.include_obfuscation"):
            raise UnsupportedParamError("stream_options.include_obfuscation", "not supported")
    n = optional_int(body, "n")
    if n is not None and not 1 <= n <= MAX_CHOICES:
        raise InvalidArgumentError(f"n: must be between 1 and {MAX_CHOICES}, got {n}")
    chat = ChatRequest(
        model,
        messages(body.get("messages")),
        _sampling(body),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=optional_flag(body, "parallel_tool_calls"),
        response_format=_response_format(body.get("response_format")),
        reasoning_effort=optional_text(body, "reasoning_effort"),
    )
    request = CompletionRequest(chat, *serving(body))
    return ChatCall(request, stream, include_usage, n or 1, tuple(dropped))


# -- what the model is asked ---------------------------------------------------------------------


def _sampling(body: dict[str, Any]) -> Sampling:
    max_tokens = optional_int(body, "max_tokens")
    newer = optional_int(body, "max_completion_tokens")
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
        optional_float(body, "temperature"),
        newer if newer is not None else max_tokens,
        optional_float(body, "top_p"),
        stops,
        optional_int(body, "seed"),
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
