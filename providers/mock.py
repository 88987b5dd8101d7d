"""The built-in mock provider: deterministic answers, no network.

It answers every model it is asked for the same way for the same request, paced by a
configurable first-token latency (`latency_ms`) and token rate (`tokens_per_second`, 0 for no
pacing). Tokens are whitespace-separated words. It is what the gateway serves when no real
provider is configured (or next to them with `MOCK_ENABLED=true`), and what demos and benchmarks
use.

What it answers, so a demo of an agent's loop goes the same way every time:
- given tools (and a tool choice other than NONE) and a conversation whose last turn is not a
  tool result, it calls tools: the named one (choice TOOL), else each tool whose name the last
  user message says, else the first; one only when `parallel_tool_calls` is false. The
  arguments are sample values for the schema's required properties; the finish reason is
  "tool_calls".
- after tool results, it says what each tool returned;
- asked for a JSON object, `{"answer": <what the user said>}`; for JSON following a schema, a
  sample value of the schema (its free strings say what the user said);
- otherwise it echoes the last user message, and says which images it was given.
With a reasoning effort other than "none" it reasons first, in a few words (counted as reasoning
tokens), closed by a signature like a vendor's. Deployments with `capabilities: text`
(`MOCK_CAPABILITIES=text`) take text only, like the simplest vendor.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Final

from providers.base import TEXT_ONLY, AdapterSpec, Capabilities, ProviderSettings
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.mock_samples import sample_value
from providers.types import (
    REASONING_EFFORTS,
    ChatRequest,
    Completion,
    Finish,
    ImagePart,
    Message,
    Meta,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormatType,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from providers.wire import UnsupportedContentError, text_of, unsupported_content

REPLY_PREFIX = "This is a mock completion from ai-gateway. You said:"
ECHO_WORDS = 48
TOKENS_PER_MESSAGE = 3
#: Characters of a tool call's arguments per streamed fragment (and per token counted).
ARGUMENT_FRAGMENT = 16
#: What a deployment that takes everything the wave-2 shape carries can do.
EVERYTHING: Final = Capabilities(
    tools=True,
    tool_choices=frozenset(ToolChoiceMode),
    parallel_tool_calls_off=True,
    images=True,
    tool_result_images=True,
    json_object=True,
    json_schema=True,
    reasoning_efforts=frozenset(REASONING_EFFORTS),
    seed=True,
)


@dataclass(frozen=True, slots=True)
class _Reply:
    """What the mock answers a request, before it is paced out."""

    id: str
    words: list[str]
    finish_reason: str
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: tuple[str, ...] = ()
    signature: str = ""


class MockProvider:
    """A `Provider` that makes its answers up, the same way every time."""

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient | None = None,
        keys: KeyPool | None = None,
    ) -> None:
        self._name = settings.name
        self._latency = settings.number_option("latency_ms", 0.0) / 1000.0
        rate = settings.number_option("tokens_per_second", 0.0)
        self._token_interval = 1.0 / rate if rate > 0 else 0.0
        text_only = settings.option("capabilities", "all") == "text"
        self._capabilities = TEXT_ONLY if text_only else EVERYTHING

    @property
    def name(self) -> str:
        """The deployment name."""
        return self._name

    @property
    def kind(self) -> str:
        """Always "mock"."""
        return "mock"

    def capabilities(self, model: str) -> Capabilities:
        """Everything but fetching image URLs itself (the gateway inlines them); or text only."""
        return self._capabilities

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole mock answer after the time its tokens would take."""
        reply = self._reply(request)
        tokens = len(reply.words) + len(reply.reasoning) + len(reply.tool_calls)
        await asyncio.sleep(self._latency + self._token_interval * tokens)
        reasoning = " ".join(reply.reasoning)
        return Completion(
            id=reply.id,
            model=request.model,
            content=" ".join(reply.words),
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            tool_calls=reply.tool_calls,
            reasoning=reasoning,
            reasoning_parts=(ReasoningPart(reasoning, reply.signature),) if reasoning else (),
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield the mock answer a word (or an argument fragment) at a time, then the finish
        reason and usage."""
        reply = self._reply(request)
        yield Meta(reply.id, request.model)
        await asyncio.sleep(self._latency)
        for index, event in enumerate(_events(reply)):
            if index and self._token_interval:
                await asyncio.sleep(self._token_interval)
            yield event
        yield Finish(reply.finish_reason, reply.usage)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _reply(self, request: ChatRequest) -> _Reply:
        if self._capabilities is TEXT_ONLY:
            try:
                texts = [text_of(m) for m in request.messages]
            except UnsupportedContentError as exc:
                raise unsupported_content(exc, provider=self._name, kind=SPEC.kind) from None
        else:
            texts = [_text_of(m) for m in request.messages]
        return _reply(request, texts)


def _reply(request: ChatRequest, texts: list[str]) -> _Reply:
    reply_id = _completion_id(request, texts)
    calls = _tool_calls(request, reply_id)
    prompt = sum(len(text.split()) + TOKENS_PER_MESSAGE for text in texts)
    effort = request.reasoning_effort
    reasoning: list[str] = []
    if effort is not None and effort != "none":
        reasoning = f"Reasoning ({effort}): I will {_intent(request, calls)}.".split()
    words: list[str] = []
    finish_reason = "tool_calls" if calls else "stop"
    completion = sum(1 + len(call.arguments) // ARGUMENT_FRAGMENT for call in calls)
    if not calls:
        words = _answer_words(request, texts)
        completion = len(words)
    max_tokens = request.sampling.max_tokens
    if max_tokens is not None and completion > max_tokens:
        finish_reason, completion = "length", max_tokens
        words = words[:max_tokens]
        calls = tuple(ToolCall(c.id, c.name, c.arguments[: max_tokens * 4]) for c in calls)
    completion += len(reasoning)
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        reasoning_tokens=len(reasoning),
    )
    signature = "mock-signature-" + reply_id[5:21] if reasoning else ""
    return _Reply(reply_id, words, finish_reason, usage, calls, tuple(reasoning), signature)


def _events(reply: _Reply) -> Iterator[StreamEvent]:
    """The reply as stream events: reasoning, then text or tool calls in fragments."""
    for index, word in enumerate(reply.reasoning):
        yield ReasoningDelta(word if index == 0 else " " + word)
    if reply.signature:
        yield ReasoningDelta(signature=reply.signature)
    for index, word in enumerate(reply.words):
        yield TextDelta(word if index == 0 else " " + word)
    for index, call in enumerate(reply.tool_calls):
        yield ToolCallDelta(index, call.id, call.name)
        arguments = call.arguments
        for start in range(0, len(arguments), ARGUMENT_FRAGMENT):
            yield ToolCallDelta(index, arguments=arguments[start : start + ARGUMENT_FRAGMENT])


def _tool_calls(request: ChatRequest, reply_id: str) -> tuple[ToolCall, ...]:
    """The tools the mock calls: none once the last turn is a tool result."""
    tools, choice = request.tools, request.tool_choice
    if not tools or (choice is not None and choice.mode is ToolChoiceMode.NONE):
        return ()
    if request.messages and request.messages[-1].role == "tool":
        return ()
    if choice is not None and choice.mode is ToolChoiceMode.TOOL:
        chosen = [t for t in tools if t.name == choice.name][:1]
    else:
        said = _last_user_text(request)
        chosen = [t for t in tools if t.name in said] or [tools[0]]
    if request.parallel_tool_calls is False:
        chosen = chosen[:1]
    return tuple(
        ToolCall(f"call_{reply_id[5:17]}_{index}", tool.name, _arguments(tool))
        for index, tool in enumerate(chosen)
    )


def _arguments(tool: Tool) -> str:
    return json.dumps(sample_value(tool.parameters) if tool.parameters else {})


def _answer_words(request: ChatRequest, texts: list[str]) -> list[str]:
    """The text answer: what the tools returned, JSON, or the echo of the user."""
    results = _tool_results(request, texts)
    if results:
        return results
    said = _last_user_text(request).split()[:ECHO_WORDS]
    form = request.response_format
    if form is not None and form.type is ResponseFormatType.JSON_OBJECT:
        return json.dumps({"answer": " ".join(said)}).split()
    if form is not None and form.type is ResponseFormatType.JSON_SCHEMA:
        value = sample_value(form.schema or {"type": "object"}, text=" ".join(said) or "nothing")
        return json.dumps(value).split()
    images = [_describe(p) for m in request.messages[-1:] for p in m.parts if type(p) is ImagePart]
    return REPLY_PREFIX.split() + (said or ["nothing."]) + images


def _tool_results(request: ChatRequest, texts: list[str]) -> list[str]:
    """What the tool results closing the conversation say, naming each tool."""
    if not request.messages or request.messages[-1].role != "tool":
        return []
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    words: list[str] = []
    for message, text in reversed([*zip(request.messages, texts, strict=True)]):
        if message.role != "tool":
            break
        name = names.get(message.tool_call_id, message.tool_call_id)
        said = text.split()[:ECHO_WORDS] or ["nothing."]
        words[:0] = [f"The tool {name} returned:", *said]
    return " ".join(words).split()


def _intent(request: ChatRequest, calls: tuple[ToolCall, ...]) -> str:
    if calls:
        return "call " + " and ".join(call.name for call in calls)
    if request.messages and request.messages[-1].role == "tool":
        return "report what the tools returned"
    form = request.response_format
    if form is not None and form.type is not ResponseFormatType.TEXT:
        return "answer in JSON"
    return "echo what the user said"


def _last_user_text(request: ChatRequest) -> str:
    users = [m for m in request.messages if m.role == "user"]
    return users[-1].text if users else ""


def _describe(image: ImagePart) -> str:
    """An image as the mock saw it: its media type and size (a URL it would have to fetch, as
    the URL's scheme and host)."""
    data, media_type = image.data, image.media_type
    if image.url.startswith("data:"):
        header, _, encoded = image.url.partition(",")
        media_type = header[5:].split(";", 1)[0]
        data = base64.b64decode(encoded)
    if data:
        return f"[image {media_type or 'unknown'} {len(data)} bytes]"
    return f"[image at {image.url.split('/', 3)[2] if '//' in image.url else 'a URL'}]"


def _text_of(message: Message) -> str:
    """The text a message says, tool calls included, for the token count and the answer's id."""
    parts = message.parts
    if len(parts) == 1 and type(parts[0]) is TextPart and not message.tool_calls:
        return parts[0].text
    said = [p.text if type(p) is TextPart else "[image]" for p in parts]
    said += [f"{c.name}({c.arguments})" for c in message.tool_calls]
    return " ".join(said)


def _completion_id(request: ChatRequest, texts: list[str]) -> str:
    digest = hashlib.sha256()
    for message, text in zip(request.messages, texts, strict=True):
        digest.update(message.role.encode() + b"\0" + text.encode() + b"\0")
        if len(message.parts) > 1 or message.tool_calls or message.tool_call_id:
            digest.update(repr((message.parts, message.tool_call_id)).encode())
    if request.tools or request.response_format or request.reasoning_effort:
        extras = (request.tools, request.tool_choice, request.parallel_tool_calls)
        digest.update(repr((*extras, request.response_format, request.reasoning_effort)).encode())
    return "mock-" + digest.hexdigest()[:24]


SPEC: Final = AdapterSpec(
    kind="mock",
    factory=MockProvider,
    env_prefix="MOCK",
    default_models=("mock",),
    env_options={
        "latency_ms": "LATENCY_MS",
        "tokens_per_second": "TOKENS_PER_SECOND",
        "capabilities": "CAPABILITIES",
    },
    number_options=frozenset({"latency_ms", "tokens_per_second"}),
    built_in=True,
)
