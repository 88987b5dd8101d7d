"""Proto3 JSON for the JSON shim, with the completion calls kept off `json_format`.

`google.protobuf.json_format` walks descriptors in Python for every field of every message: tens
of microseconds per request, and again for every chunk of a stream. The completion calls are the
hot path, so their messages are converted here directly, with the result `json_format` would
give and nothing else:

- `parse_completion_request` accepts the plain shape callers send (known field names in either
  spelling, values of the expected JSON type, durations such as `"1.5s"`, enum names) and builds
  the message in one constructor call. Anything outside that shape (numeric strings, enum
  numbers, `"NaN"`, unknown or repeated fields, wrong types, values the message rejects) is
  handed to `json_format`, so the result, or the error, is exactly what it always was.
- `render_completion` builds the dict `MessageToDict` builds (the same keys in the same order,
  the same value types), so the bytes are the same; a value it does not expect (an invalid
  duration) sends the whole message through `json_format` instead.

Other messages (status, usage, admin) go through `parse_message` and `render_message`, which are
`json_format` with the shim's error mapping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import orjson
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message

from gateway.errors import InvalidArgumentError
from gateway.v1 import gateway_pb2 as pb

AnyMessage = TypeVar("AnyMessage", bound=Message)
CompletionRequest = TypeVar(
    "CompletionRequest", bound=pb.CompleteRequest | pb.StreamCompleteRequest
)

_UNKNOWN_FIELD = re.compile(r'Message type "[\w.]+" has no field named "([^"]+)" at "([^"]*)"')


def parse_message(body: dict[str, Any], message: AnyMessage) -> AnyMessage:
    """Parse `body` into `message` with the proto3 JSON mapping; errors are INVALID_ARGUMENT."""
    try:
        return json_format.ParseDict(body, message)
    except json_format.ParseError as exc:
        first_line = str(exc).splitlines()[0]
        detail = _UNKNOWN_FIELD.sub(r'unknown field "\1" in \2', first_line)
        raise InvalidArgumentError(f"body: {detail}") from None


def render_message(message: Message, *, defaults: bool) -> bytes:
    """`message` as proto3 JSON with `snake_case` names (fields at their defaults when asked)."""
    return orjson.dumps(
        json_format.MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=defaults,
        )
    )


# -- parsing ---------------------------------------------------------------------------------


class _UnusualError(Exception):
    """The body is outside the shape the fast path knows; `json_format` decides."""


def parse_completion_request(
    body: dict[str, Any], message_type: type[CompletionRequest]
) -> CompletionRequest:
    """A `CompleteRequest` or `StreamCompleteRequest` from a JSON object, as `parse_message`."""
    try:
        return message_type(**_request_fields(body))
    except (_UnusualError, ValueError, TypeError, OverflowError):
        # The fast path never decides an error: json_format gives today's answer or message.
        return parse_message(body, message_type())


def _keys(descriptor: Any, names: Collection[str]) -> dict[str, str]:
    """JSON key -> field name for the fields in `names`; a field added later is not among them."""
    # json_format accepts a field's proto name and its lowerCamelCase JSON name.
    fields = [field for field in descriptor.fields if field.name in names]
    return {key: field.name for field in fields for key in (field.name, field.json_name)}


def _request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments equal to what `json_format` would set, or `_UnusualError`."""
    fields: dict[str, Any] = {}
    for key, value in body.items():
        name = _REQUEST_KEYS.get(key)
        if name is None or name in fields:  # unknown, or both spellings of one field
            raise _UnusualError
        # JSON null leaves a field unset, as json_format's ClearField does; so does None here.
        fields[name] = None if value is None else _REQUEST_CONVERTERS[name](value)
    return fields


def _string(value: Any) -> str:
    # Surrogates pass this check but make the constructor raise, as they make json_format fail.
    if type(value) is not str:
        raise _UnusualError
    return value


def _strings(value: Any) -> list[str]:
    if type(value) is not list or not all(type(item) is str for item in value):
        raise _UnusualError
    return value


def _double(value: Any) -> float:
    if (type(value) is not float and type(value) is not int) or not math.isfinite(value):
        raise _UnusualError
    return float(value)  # what json_format stores; a huge int raises OverflowError for both


def _int32(value: Any) -> int:
    if type(value) is not int:
        raise _UnusualError
    return value  # the constructor rejects what is out of range, as setattr does for json_format


def _messages(value: Any) -> list[dict[str, Any]]:
    if type(value) is not list:
        raise _UnusualError
    for item in value:
        if type(item) is not dict:
            raise _UnusualError
        for key, text in item.items():
            if key not in _MESSAGE_KEYS or (text is not None and type(text) is not str):
                raise _UnusualError
    return value  # the constructor takes dicts and, like json_format, skips None values


def _metadata(value: Any) -> dict[str, str]:
    if type(value) is not dict:
        raise _UnusualError
    for key, text in value.items():
        if type(key) is not str or type(text) is not str:
            raise _UnusualError
    return value


def _priority(value: Any) -> int:
    number = _PRIORITY_NUMBERS.get(value) if type(value) is str else None
    if number is None:
        raise _UnusualError
    return number


def _cache_policy(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _UnusualError
    policy: dict[str, Any] = {}
    for key, setting in value.items():
        name = _CACHE_KEYS.get(key)
        if name is None or name in policy:
            raise _UnusualError
        if setting is None:
            policy[name] = None
        elif name == "ttl":
            policy[name] = _duration(setting)
        elif type(setting) is bool:
            policy[name] = setting
        else:
            raise _UnusualError
    return policy  # even {} marks the policy as set, as json_format's SetInParent does


# Unsigned decimal seconds: the strings Duration.FromJsonString reads with the arithmetic below.
_DURATION = re.compile(r"([0-9]+)(\.[0-9]+)?s")
_DURATION_SECONDS_MAX = 315_576_000_000
_NANOS_PER_SECOND = 1_000_000_000


def _duration(value: Any) -> dict[str, int]:
    match = _DURATION.fullmatch(value) if type(value) is str else None
    if match is None:
        raise _UnusualError
    whole, fraction = match.groups()
    seconds = int(whole)
    # Duration.FromJsonString's own rounding, so "1.0000000005s" gives the nanos it gives.
    nanos = round(float("0" + fraction) * 1e9) if fraction else 0
    if seconds > _DURATION_SECONDS_MAX or nanos >= _NANOS_PER_SECOND:
        raise _UnusualError
    return {"seconds": seconds, "nanos": nanos}


_REQUEST_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "model": _string,
    "messages": _messages,
    "temperature": _double,
    "max_tokens": _int32,
    "top_p": _double,
    "stop": _strings,
    "provider": _string,
    "fallback_models": _strings,
    "metadata": _metadata,
    "priority": _priority,
    "cache": _cache_policy,
    "timeout": _duration,
}
_REQUEST_KEYS = _keys(pb.CompleteRequest.DESCRIPTOR, _REQUEST_CONVERTERS)
_CACHE_KEYS = _keys(pb.CachePolicy.DESCRIPTOR, ("no_cache", "no_store", "ttl"))
_MESSAGE_KEYS = frozenset(_keys(pb.Message.DESCRIPTOR, ("role", "content")))
_PRIORITY_NUMBERS = {value.name: value.number for value in pb.Priority.DESCRIPTOR.values}


# -- rendering -------------------------------------------------------------------------------


def render_completion(
    message: pb.CompleteResponse | pb.StreamCompleteResponse, *, defaults: bool
) -> bytes:
    """`render_message(message, defaults=...)`, byte for byte, without `json_format`."""
    try:
        return orjson.dumps(_completion(message, defaults))
    except _UnusualError:
        return render_message(message, defaults=defaults)


# MessageToDict lists the fields that are set in field-number order, then (with defaults) the
# ones that are not, in declaration order; each function below does the same for its message.
# "Set" is ListFields' notion: non-empty, non-zero, and -0.0 counts as set.


def _completion(
    message: pb.CompleteResponse | pb.StreamCompleteResponse, defaults: bool
) -> dict[str, Any]:
    text_key, text = (
        ("content", message.content)
        if isinstance(message, pb.CompleteResponse)
        else ("delta", message.delta)
    )
    id_, model, provider = message.id, message.model, message.provider
    finish_reason, cost_usd, cached = message.finish_reason, message.cost_usd, message.cached
    attempts, parts = message.attempts, message.reasoning_parts
    if isinstance(message, pb.CompleteResponse):
        tool_calls = message.tool_calls
        calls_key = "tool_calls"
        calls = [_tool_call(call, defaults) for call in tool_calls] if tool_calls else []
        reasoning_key, reasoning = "reasoning", message.reasoning
    else:
        deltas = message.tool_call_deltas
        calls_key = "tool_call_deltas"
        calls = [_delta(d, defaults) for d in deltas] if deltas else []
        reasoning_key, reasoning = "reasoning_delta", message.reasoning_delta
    js: dict[str, Any] = {}
    if id_:
        js["id"] = id_
    if model:
        js["model"] = model
    if provider:
        js["provider"] = provider
    if text:
        js[text_key] = text
    if finish_reason:
        js["finish_reason"] = finish_reason
    if message.HasField("usage"):
        js["usage"] = _usage(message.usage, defaults)
    cost_set = _double_is_set(cost_usd)
    if cost_set:
        js["cost_usd"] = _double_json(cost_usd)
    if cached:
        js["cached"] = True
    if attempts:
        js["attempts"] = [_attempt(attempt, defaults) for attempt in attempts]
    if calls:
        js[calls_key] = calls
    if reasoning:
        js[reasoning_key] = reasoning
    if parts:
        js["reasoning_parts"] = [_reasoning_part(part, defaults) for part in parts]
    if defaults:
        if not id_:
            js["id"] = ""
        if not model:
            js["model"] = ""
        if not provider:
            js["provider"] = ""
        if not text:
            js[text_key] = ""
        if not finish_reason:
            js["finish_reason"] = ""
        if not cost_set:
            js["cost_usd"] = 0.0
        if not cached:
            js["cached"] = False
        if not attempts:
            js["attempts"] = []
        if not calls:
            js[calls_key] = []
        if not reasoning:
            js[reasoning_key] = ""
        if not parts:
            js["reasoning_parts"] = []
    return js


def _tool_call(call: pb.ToolCall, defaults: bool) -> dict[str, Any]:
    return _fields((("id", call.id), ("name", call.name), ("arguments", call.arguments)), defaults)


def _delta(delta: pb.ToolCallDelta, defaults: bool) -> dict[str, Any]:
    return _fields(
        (
            ("index", delta.index),
            ("id", delta.id),
            ("name", delta.name),
            ("arguments", delta.arguments),
        ),
        defaults,
    )


def _reasoning_part(part: pb.ReasoningPart, defaults: bool) -> dict[str, Any]:
    return _fields(
        (
            ("text", part.text),
            ("signature", part.signature),
            ("redacted", part.redacted),
            ("tool_call_id", part.tool_call_id),
        ),
        defaults,
    )


def _fields(values: tuple[tuple[str, str | int], ...], defaults: bool) -> dict[str, Any]:
    """A message of scalar fields: the set ones in order, then (with defaults) the others."""
    js = {key: value for key, value in values if value}
    if defaults and len(js) < len(values):
        js.update((key, value) for key, value in values if not value)
    return js


def _usage(usage: pb.Usage, defaults: bool) -> dict[str, int]:
    prompt, completion, total = usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
    cached, created = usage.cached_tokens, usage.cache_creation_tokens
    reasoning = usage.reasoning_tokens
    js: dict[str, int] = {}
    if prompt:
        js["prompt_tokens"] = prompt
    if completion:
        js["completion_tokens"] = completion
    if total:
        js["total_tokens"] = total
    if cached:
        js["cached_tokens"] = cached
    if created:
        js["cache_creation_tokens"] = created
    if reasoning:
        js["reasoning_tokens"] = reasoning
    if defaults:
        if not prompt:
            js["prompt_tokens"] = 0
        if not completion:
            js["completion_tokens"] = 0
        if not total:
            js["total_tokens"] = 0
        if not cached:
            js["cached_tokens"] = 0
        if not created:
            js["cache_creation_tokens"] = 0
        if not reasoning:
            js["reasoning_tokens"] = 0
    return js


def _attempt(attempt: pb.Attempt, defaults: bool) -> dict[str, Any]:
    provider, model, outcome = attempt.provider, attempt.model, attempt.outcome
    error_code = attempt.error_code
    js: dict[str, Any] = {}
    if provider:
        js["provider"] = provider
    if model:
        js["model"] = model
    if outcome:
        js["outcome"] = _OUTCOME_NAMES.get(outcome, outcome)  # an unknown number stays a number
    if attempt.HasField("latency"):
        js["latency"] = _duration_json(attempt.latency)
    if error_code:
        js["error_code"] = error_code
    if attempt.routing:
        js["routing"] = attempt.routing
    if defaults:
        if not provider:
            js["provider"] = ""
        if not model:
            js["model"] = ""
        if not outcome:
            js["outcome"] = _OUTCOME_NAMES[0]
        if not error_code:
            js["error_code"] = ""
        if not attempt.routing:
            js["routing"] = ""
    return js


def _double_is_set(value: float) -> bool:
    return bool(value) or math.copysign(1.0, value) < 0.0


def _double_json(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _duration_json(duration: duration_pb2.Duration) -> str:
    """Duration.ToJsonString for a valid, non-negative duration: 0, 3, 6 or 9 decimals."""
    seconds, nanos = duration.seconds, duration.nanos
    if not (0 <= seconds <= _DURATION_SECONDS_MAX and 0 <= nanos < _NANOS_PER_SECOND):
        raise _UnusualError  # negative or invalid: json_format's own wording of the result or error
    if nanos == 0:
        return f"{seconds}s"
    if nanos % 1_000_000 == 0:
        return f"{seconds}.{nanos // 1_000_000:03d}s"
    if nanos % 1_000 == 0:
        return f"{seconds}.{nanos // 1_000:06d}s"
    return f"{seconds}.{nanos:09d}s"


_OUTCOME_NAMES = {value.number: value.name for value in pb.AttemptOutcome.DESCRIPTOR.values}
