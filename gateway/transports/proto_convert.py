"""Protobuf in, pipeline values out, and back: the only place the core's values meet `gateway.v1`.

Pure converters, used by the gRPC servicer and the JSON app alike: a request message becomes a
`CompletionRequest` (unset optional fields stay None: validation is the core's), an `Answer`
a response, a stream's items its messages, deployments' states a `ProviderStatusResponse`.

Only what the pipeline's values cannot say is refused here (`InvalidArgumentError`): a message
with both `content` and `parts`, an empty content part, an enum number the API does not define.
JSON Schemas (`google.protobuf.Struct`, which holds every number as a double) become plain
mappings whose integral numbers are `int`s again, so `minItems: 1` reaches a vendor as `1`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Final

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import (
    Answer,
    Attempt,
    AttemptOutcome,
    CachePolicy,
    CircuitState,
    CompletionRequest,
    DeploymentStatus,
    Done,
    MemberStatus,
    Routing,
    StreamHead,
    StreamItem,
)
from gateway.v1 import gateway_pb2 as pb
from providers.types import (
    CallIO,
    ChatRequest,
    Completion,
    ImagePart,
    JsonObject,
    Message,
    Part,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
    Usage,
)

#: Our attempt outcomes and circuit states as the API's enums.
ATTEMPT_OUTCOMES: Final = {
    outcome: pb.AttemptOutcome.Value(f"ATTEMPT_OUTCOME_{outcome.name}")
    for outcome in AttemptOutcome
}
CIRCUIT_STATES: Final = {
    state: pb.CircuitState.Value(f"CIRCUIT_STATE_{state.name}") for state in CircuitState
}
_NO_IO: Final = CallIO()
_NO_SAMPLING: Final = Sampling()
_NO_ROUTING: Final = Routing()
_NO_CACHE_POLICY: Final = CachePolicy()
_NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})
_TOOL_CHOICE_MODES: Final = {
    pb.ToolChoiceMode.Value(f"TOOL_CHOICE_MODE_{mode.name}"): mode for mode in ToolChoiceMode
}
_RESPONSE_FORMAT_TYPES: Final = {
    pb.RESPONSE_FORMAT_TYPE_UNSPECIFIED: ResponseFormatType.TEXT,
    **{
        pb.ResponseFormatType.Value(f"RESPONSE_FORMAT_TYPE_{kind.name}"): kind
        for kind in ResponseFormatType
    },
}
#: Doubles up to this size hold every integer exactly: an integral one is an `int` again.
_EXACT_INTEGERS: Final = 2.0**53

# -- requests ------------------------------------------------------------------------------------


def completion_request(message: pb.CompleteRequest | pb.StreamCompleteRequest) -> CompletionRequest:
    """The call a `CompleteRequest` or `StreamCompleteRequest` asks for (not yet validated)."""
    has = message.HasField
    sampling = _NO_SAMPLING
    if has("temperature") or has("max_tokens") or has("top_p") or message.stop or has("seed"):
        sampling = Sampling(
            message.temperature if has("temperature") else None,
            message.max_tokens if has("max_tokens") else None,
            message.top_p if has("top_p") else None,
            tuple(message.stop) if message.stop else (),
            message.seed if has("seed") else None,
        )
    messages = tuple(
        Message(m.role, (TextPart(m.content),) if m.content else ())  # nearly every message
        if not (m.parts or m.tool_calls or m.tool_call_id or m.reasoning)
        else _message(index, m)
        for index, m in enumerate(message.messages)
    )
    chat = ChatRequest(
        message.model,
        messages,
        sampling,
        _NO_IO,
        tuple(_tool(tool) for tool in message.tools) if message.tools else (),
        _tool_choice(message.tool_choice) if has("tool_choice") else None,
        message.parallel_tool_calls if has("parallel_tool_calls") else None,
        _response_format(message.response_format) if has("response_format") else None,
        message.reasoning_effort if has("reasoning_effort") else None,
    )
    return CompletionRequest(chat, *serving_fields(message))


def serving_fields(
    message: pb.CompleteRequest | pb.StreamCompleteRequest | pb.EmbedRequest,
) -> tuple[Routing, Mapping[str, str], float | None, int, CachePolicy]:
    """What every call carries beside what it asks for, in the requests' field order: routing,
    metadata, timeout, priority and cache policy. Most requests set no routing, metadata or
    cache policy: those share one value each (as requests that set no sampling field share
    one `Sampling`)."""
    routing = _NO_ROUTING
    if message.provider or message.fallback_models:
        routing = Routing(message.provider, tuple(message.fallback_models))
    return (
        routing,
        dict(message.metadata) if message.metadata else _NO_METADATA,
        seconds(message.timeout) if message.HasField("timeout") else None,
        int(message.priority),
        cache_policy(message.cache) if message.HasField("cache") else _NO_CACHE_POLICY,
    )


def cache_policy(policy: pb.CachePolicy) -> CachePolicy:
    """A request's `CachePolicy` message as the pipeline's policy."""
    return CachePolicy(
        lookup=not policy.no_cache,
        store=not policy.no_store,
        ttl=seconds(policy.ttl) if policy.HasField("ttl") else None,
    )


def seconds(duration: Duration) -> float:
    """A `Duration` in seconds."""
    return duration.seconds + duration.nanos / 1e9


def _message(index: int, message: pb.Message) -> Message:
    """A message with parts, tool calls, a tool result's id or reasoning."""
    content = message.content
    if content and message.parts:
        raise InvalidArgumentError(f"messages[{index}]: set content or parts, not both")
    parts: tuple[Part, ...] = (TextPart(content),) if content else ()
    if message.parts:
        parts = tuple(_part(index, number, part) for number, part in enumerate(message.parts))
    return Message(
        message.role,
        parts,
        tuple(ToolCall(c.id, c.name, c.arguments or "{}") for c in message.tool_calls),
        message.tool_call_id,
        tuple(
            ReasoningPart(r.text, r.signature, r.redacted, r.tool_call_id)
            for r in message.reasoning
        ),
    )


def _part(index: int, number: int, part: pb.ContentPart) -> Part:
    kind = part.WhichOneof("part")
    if kind == "text":
        return TextPart(part.text)
    if kind == "image":
        image = part.image
        return ImagePart(image.url, image.data, image.media_type, image.detail)
    raise InvalidArgumentError(f"messages[{index}].parts[{number}]: must hold text or an image")


def _tool(tool: pb.Tool) -> Tool:
    parameters = json_object(tool.parameters) if tool.HasField("parameters") else {}
    return Tool(tool.name, tool.description, parameters, tool.strict)


def _tool_choice(choice: pb.ToolChoice) -> ToolChoice | None:
    if choice.mode == pb.TOOL_CHOICE_MODE_UNSPECIFIED and not choice.name:
        return None  # set but empty: the vendor's default, as when unset
    mode = _TOOL_CHOICE_MODES.get(choice.mode)
    if mode is None:
        if choice.mode == pb.TOOL_CHOICE_MODE_UNSPECIFIED:
            raise InvalidArgumentError("tool_choice.mode: required with a name (TOOL)")
        raise InvalidArgumentError(f"tool_choice.mode: unknown value {choice.mode}")
    return ToolChoice(mode, choice.name)


def _response_format(form: pb.ResponseFormat) -> ResponseFormat:
    kind = _RESPONSE_FORMAT_TYPES.get(form.type)
    if kind is None:
        raise InvalidArgumentError(f"response_format.type: unknown value {form.type}")
    schema = json_object(form.schema) if form.HasField("schema") else None
    return ResponseFormat(kind, form.name, schema, form.strict)


def json_object(struct: Struct) -> JsonObject:
    """A `Struct` as a plain JSON object, integral numbers as `int`s (`1`, not `1.0`)."""
    return {key: _json_value(value) for key, value in struct.fields.items()}


def _json_value(value: Value) -> object:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) <= _EXACT_INTEGERS else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return json_object(value.struct_value)
    if kind == "list_value":
        return [_json_value(item) for item in value.list_value.values]
    return None  # null_value, or a Value with nothing set


# -- answers -------------------------------------------------------------------------------------


def complete_response(answer: Answer) -> pb.CompleteResponse:
    """A whole answer as the `CompleteResponse` message."""
    completion = answer.completion
    response = pb.CompleteResponse(
        id=completion.id,
        model=completion.model,
        provider=answer.provider,
        content=completion.content,
        finish_reason=completion.finish_reason,
        usage=usage_message(completion.usage),
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        attempts=attempt_messages(answer.attempts),
    )
    if completion.tool_calls or completion.reasoning or completion.reasoning_parts:
        response.tool_calls.extend(
            pb.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in completion.tool_calls
        )
        response.reasoning = completion.reasoning
        response.reasoning_parts.extend(_reasoning_parts(completion))
    return response


def _reasoning_parts(completion: Completion) -> list[pb.ReasoningPart]:
    return [
        pb.ReasoningPart(
            text=p.text, signature=p.signature, redacted=p.redacted, tool_call_id=p.tool_call_id
        )
        for p in completion.reasoning_parts
    ]


class StreamMessages:
    """A stream's items as `StreamCompleteResponse` messages, one stream at a time.

    A head is remembered (each later message carries its id, model and provider); text, a tool
    call's fragment and reasoning text are a message each; `Done` is the last message. Reasoning
    state without text (a signature, redacted data) sends nothing: the last message carries it
    whole in `reasoning_parts`.
    """

    __slots__ = ("_head",)

    def __init__(self) -> None:
        self._head = StreamHead("", "", "")

    def message(self, item: StreamItem) -> pb.StreamCompleteResponse | None:
        """The message for `item`, or None when it sends none."""
        if type(item) is TextDelta:
            head = self._head
            return pb.StreamCompleteResponse(
                id=head.id,
                model=head.model,
                provider=head.provider,
                delta=item.text,
                cached=head.cached,
            )
        if isinstance(item, StreamHead):
            self._head = item
        elif isinstance(item, Done):
            return last_message(item.answer)
        elif isinstance(item, ToolCallDelta):
            head = self._head
            return pb.StreamCompleteResponse(
                id=head.id,
                model=head.model,
                provider=head.provider,
                cached=head.cached,
                tool_call_deltas=[tool_call_delta_message(item)],
            )
        elif isinstance(item, ReasoningDelta) and item.text:
            head = self._head
            return pb.StreamCompleteResponse(
                id=head.id,
                model=head.model,
                provider=head.provider,
                cached=head.cached,
                reasoning_delta=item.text,
            )
        return None


def tool_call_delta_message(delta: ToolCallDelta) -> pb.ToolCallDelta:
    """A tool call's streamed fragment as its message."""
    return pb.ToolCallDelta(
        index=delta.index, id=delta.id, name=delta.name, arguments=delta.arguments
    )


def last_message(answer: Answer) -> pb.StreamCompleteResponse:
    """The stream's last message: finish reason, usage (if reported), cost and tries."""
    completion = answer.completion
    return pb.StreamCompleteResponse(
        id=completion.id,
        model=completion.model,
        provider=answer.provider,
        finish_reason=completion.finish_reason,
        usage=usage_message(completion.usage) if answer.usage_reported else None,
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        attempts=attempt_messages(answer.attempts),
        reasoning_parts=_reasoning_parts(completion) if completion.reasoning_parts else None,
    )


def usage_message(usage: Usage) -> pb.Usage:
    """Token counts as the `Usage` message."""
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


def attempt_messages(attempts: Sequence[Attempt]) -> list[pb.Attempt]:
    """The call's tries as `Attempt` messages."""
    messages = []
    for attempt in attempts:
        message = pb.Attempt(
            provider=attempt.provider,
            model=attempt.model,
            outcome=ATTEMPT_OUTCOMES[attempt.outcome],
            error_code=attempt.error_code,
            routing=attempt.routing,
        )
        message.latency.FromNanoseconds(int(attempt.latency * 1e9))
        messages.append(message)
    return messages


# -- deployments ---------------------------------------------------------------------------------


def provider_status_response(entries: Iterable[DeploymentStatus]) -> pb.ProviderStatusResponse:
    """Deployments' states as the `ProviderStatusResponse` message."""
    return pb.ProviderStatusResponse(providers=[_provider_info(entry) for entry in entries])


def _provider_info(entry: DeploymentStatus) -> pb.ProviderInfo:
    circuit = entry.circuit
    return pb.ProviderInfo(
        name=entry.name,
        kind=entry.kind,
        models=entry.models,
        circuit_state=CIRCUIT_STATES[circuit]
        if circuit is not None
        else pb.CIRCUIT_STATE_UNSPECIFIED,
        consecutive_failures=entry.consecutive_failures,
        opened_at=_timestamp(entry.opened_at),
        next_probe_at=_timestamp(entry.next_probe_at),
        last_error=entry.last_error,
        healthy=entry.healthy,
        configured=entry.configured,
        keys_total=entry.keys_total,
        keys_available=entry.keys_available,
        price_source=entry.price_source,
        prices=[
            pb.ModelPrice(
                model=price.model,
                source=price.source,
                input=price.input,
                output=price.output,
                cached_input=price.cached_input,
                cache_write=price.cache_write,
            )
            for price in entry.prices
        ],
        members=[_member_status(member) for member in entry.members],
    )


def _member_status(member: MemberStatus) -> pb.MemberStatus:
    message = pb.MemberStatus(
        model=member.model,
        groups=member.groups,
        in_flight=member.in_flight,
        capacity_used=member.capacity_used,
        chosen=member.chosen,
    )
    if member.latency is not None:
        message.latency.FromNanoseconds(int(member.latency * 1e9))
    if member.time_to_first_token is not None:
        message.time_to_first_token.FromNanoseconds(int(member.time_to_first_token * 1e9))
    return message


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
