"""A loopback fake of Cohere's v2 Chat (`POST /v2/chat`) and Embed (`POST /v2/embed`).

Chat bodies are `{"id", "finish_reason", "message": {"role", "content", "tool_plan"?,
"tool_calls"?}, "usage": {"billed_units", "tokens", "cached_tokens"}}` and name no model.
`content` holds a `{"type": "thinking", "thinking"}` item when the model reasons, then the
text; when the model calls tools its text is the `tool_plan` and each call is `{"id":
"<name>_<12 chars>", "type": "function", "function": {"name", "arguments": "<JSON text>"}}`
with `finish_reason` TOOL_CALL (MAX_TOKENS when cut) (`cohere-python` v7.3
`types/assistant_message_response.py`, `tool_call_v2.py`, `chat_finish_reason.py`). Streams
are SSE events, each with an `event:` line and the same name in the data's `type`:
`message-start`; `content-start` / `content-delta` (`delta.message.content.thinking` or
`.text`) / `content-end` per content item; for calls `tool-plan-delta` pieces, then per call
`tool-call-start` (the call with empty arguments, `delta.message.tool_calls` an object, not a
list), `tool-call-delta` argument fragments and `tool-call-end`, each with the call's `index`;
then `message-end` (finish reason and usage) (`v2/types/v2chat_stream_response.py`). Errors are
`{"id", "message"}`. An in-stream failure is a `message-end` whose finish reason is `ERROR`,
with the text in `delta.error`.

Embed answers `{"id", "embeddings": {<type>: [...]}, "texts", "meta": {"api_version",
"billed_units"}, "response_type": "embeddings_by_type"}` for each requested embedding type
(`types/embed_by_type_response.py`), vectors from `tests.fakes.embeddings.vector`. What the
fake refuses is listed in `tests.fakes.cohere_rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aiohttp import web

from tests.fakes import cohere_rules
from tests.fakes.base import (
    Answer,
    FakeUsage,
    Fault,
    Rejected,
    StreamPlan,
    ToolCall,
    VendorFake,
    sse,
)
from tests.fakes.embeddings import float32_base64, token_count, vector
from tests.fakes.script import pieces

__all__ = ["Answer", "FakeCohere", "FakeUsage", "Fault", "ToolCall"]

_MALFORMED_FRAME: Final = b'event: content-delta\ndata: {"type": "content-delta", "delta": {\n\n'
_DONE_FRAME: Final = b"data: [DONE]\n\n"
_FINISH: Final = {
    "stop": "COMPLETE",
    "length": "MAX_TOKENS",
    "tool_calls": "TOOL_CALL",
    "content_filter": "ERROR",  # Cohere's finish reasons have no filter of their own
}


class FakeCohere(VendorFake):
    """A fake Cohere server; `finish_reason` is in Cohere's words (None: "COMPLETE").

    Knobs for stream shapes Cohere's docs allow: `extra_events` are sent (as they are) between
    the text's `content-start` and its first delta; `event_lines=False` drops the `event:`
    lines, `type_fields=False` drops the data's `type`; `done_marker` sends `data: [DONE]` last.
    `vision=False` makes the model refuse images; `embedding_dimensions` sizes embeddings when
    the request names no `output_dimension`.
    """

    vendor = "cohere"
    path = "/v2/chat"
    embed_path = "/v2/embed"

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake Cohere",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(reply=reply, model=model, usage=usage, finish_reason=finish_reason)
        self.extra_events: list[bytes] = []
        self.event_lines = True
        self.type_fields = True
        self.done_marker = False
        self.vision = True
        self.embedding_dimensions = 16

    @property
    def base_url(self) -> str:
        """Cohere's base URL style, `http://127.0.0.1:{port}` (the adapter adds `/v2/chat`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def reply_id(self) -> str:
        """The id of the latest reply (a UUID, as Cohere's are)."""
        return f"c0e1e2e3-0000-4000-8000-{self.served:012d}"

    def add_routes(self, app: web.Application) -> None:
        """`POST /v2/chat` and `POST /v2/embed`."""
        app.router.add_post(self.path, self.handle)
        app.router.add_post(self.embed_path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The bearer token."""
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def is_embedding(self, request: web.Request) -> bool:
        """A request to `/v2/embed`."""
        return request.path == self.embed_path

    def check(self, request: web.Request, body: object) -> None:
        """Cohere's checks (`tests.fakes.cohere_rules`)."""
        if self.is_embedding(request):
            cohere_rules.check_embed(body)
        else:
            cohere_rules.check_chat(body, vision=self.vision)

    def rejection_body(self, rejection: Rejected) -> object:
        """`{"id", "message"}`."""
        return {"id": self.reply_id, "message": str(rejection)}

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """`"stream": true` in the body."""
        return body.get("stream") is True

    def mint_call_id(self, call: ToolCall) -> str:
        """The function's name and 12 letters and digits, like Cohere's."""
        return f"{call.name}_{self.minter.token('call', 12, lower=True)}"

    # -- chat ----------------------------------------------------------------------------------

    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """A v2 Chat reply."""
        content: list[dict[str, object]] = []
        if answer.reasoning is not None:
            content.append({"type": "thinking", "thinking": answer.reasoning})
        message: dict[str, object] = {"role": "assistant", "content": content}
        if answer.tool_calls:
            if answer.text is not None:
                message["tool_plan"] = answer.text
            message["tool_calls"] = [_call(call) for call in answer.tool_calls]
        elif answer.text is not None:
            content.append({"type": "text", "text": answer.text})
        return {
            "id": self.reply_id,
            "message": message,
            "finish_reason": self._finish(answer),
            "usage": self._usage(answer),
        }

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """message-start, the content items or tool plan and calls, message-end."""
        start = {
            "role": "assistant",
            "content": [],
            "tool_plan": "",
            "tool_calls": [],
            "citations": [],
        }
        out = _Frames(self)
        out.add("message-start", {"id": self.reply_id, "delta": {"message": start}})
        index = 0
        if answer.reasoning is not None:
            self._item(out, index, "thinking", pieces(answer.reasoning))
            index += 1
        if answer.tool_calls:
            for piece in pieces(answer.text):
                out.add("tool-plan-delta", {"delta": {"message": {"tool_plan": piece}}}, delta=True)
            for number, call in enumerate(answer.tool_calls):
                opening = {**_call(call), "function": {"name": call.name, "arguments": ""}}
                out.add(
                    "tool-call-start",
                    {"index": number, "delta": {"message": {"tool_calls": opening}}},
                )
                for fragment in answer.argument_fragments(call):
                    arguments = {"function": {"arguments": fragment}}
                    out.add(
                        "tool-call-delta",
                        {"index": number, "delta": {"message": {"tool_calls": arguments}}},
                        delta=True,
                    )
                out.add("tool-call-end", {"index": number})
        elif answer.text is not None:
            self._item(out, index, "text", pieces(answer.text), extra=self.extra_events)
        end = {"finish_reason": self._finish(answer), "usage": self._usage(answer)}
        out.add("message-end", {"delta": end})
        if self.done_marker:
            out.frames.append(_DONE_FRAME)
        return out.plan()

    def _item(
        self, out: _Frames, index: int, kind: str, texts: list[str], extra: Sequence[bytes] = ()
    ) -> None:
        """One content item: its start, any extra events, its deltas, its end."""
        opening = {"content": {"type": kind, kind: ""}}
        out.add("content-start", {"index": index, "delta": {"message": opening}})
        out.frames.extend(extra)
        for piece in texts:
            delta = {"message": {"content": {kind: piece}}}
            out.add("content-delta", {"index": index, "delta": delta}, delta=True)
        out.add("content-end", {"index": index})

    def _finish(self, answer: Answer) -> str:
        return answer.vendor_finish or _FINISH[answer.our_finish]

    # -- embed ---------------------------------------------------------------------------------

    def embeddings(self, request: web.Request, body: dict[str, object]) -> object:
        """Embeddings by type, with the texts and billed input tokens."""
        texts = cohere_rules.check_embed(body)
        size = body.get("output_dimension")
        dimensions = size if isinstance(size, int) else self.embedding_dimensions
        vectors = [vector(text, dimensions) for text in texts]
        kinds = body.get("embedding_types")
        assert isinstance(kinds, list)  # checked by cohere_rules.check_embed
        by_type = {str(kind): _encode(str(kind), vectors) for kind in kinds}
        tokens = sum(token_count(text) for text in texts)
        return {
            "id": self.reply_id,
            "embeddings": by_type,
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        }

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, fault: Fault) -> object:
        """`{"id", "message"}` (Cohere's error bodies have no type or code)."""
        return {"id": self.reply_id, "message": fault.error_message}

    def malformed_frame(self) -> bytes:
        """A data line cut off mid-JSON."""
        return _MALFORMED_FRAME

    def error_frame(self, fault: Fault) -> bytes:
        """A `message-end` reporting the generation failed (`fault.error_type` or "ERROR")."""
        reason = fault.error_type or "ERROR"
        return self.event(
            "message-end", {"delta": {"error": fault.error_message, "finish_reason": reason}}
        )

    def event(self, kind: str, body: dict[str, object]) -> bytes:
        """One stream event as this fake renders it (also for `extra_events`)."""
        data = {"type": kind, **body} if self.type_fields else body
        return sse(data, kind if self.event_lines else None)

    def _usage(self, answer: Answer) -> dict[str, object]:
        u = self.usage_of(answer)
        counts = {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}
        return {"billed_units": counts, "tokens": dict(counts), "cached_tokens": u.cached_tokens}


class _Frames:
    """A stream being built: its frames, and where its delta (content) frames are."""

    def __init__(self, fake: FakeCohere) -> None:
        self.fake = fake
        self.frames: list[bytes] = []
        self.deltas: list[int] = []

    def add(self, kind: str, body: dict[str, object], *, delta: bool = False) -> None:
        if delta:
            self.deltas.append(len(self.frames))
        self.frames.append(self.fake.event(kind, body))

    def plan(self) -> StreamPlan:
        """The stream; its content runs from the first delta frame to the last."""
        if not self.deltas:
            # No deltas: the content region is empty, just before the closing frames.
            end = len(self.frames) - (2 if self.fake.done_marker else 1)
            return StreamPlan(self.frames, first_content=max(0, end - 1), content=0)
        first = self.deltas[0]
        return StreamPlan(self.frames, first_content=first, content=self.deltas[-1] - first + 1)


def _call(call: ToolCall) -> dict[str, object]:
    function = {"name": call.name, "arguments": call.arguments_json}
    return {"id": call.id, "type": "function", "function": function}


def _encode(kind: str, vectors: list[list[float]]) -> list[object]:
    """`vectors` in one of Cohere's embedding types."""
    if kind == "float":
        return list(vectors)
    if kind == "base64":
        return [float32_base64(v) for v in vectors]
    if kind == "int8":
        return [[round(x * 127) for x in v] for v in vectors]
    if kind == "uint8":
        return [[round((x + 1) * 127.5) for x in v] for v in vectors]
    packed = [_pack_bits(v) for v in vectors]  # binary / ubinary: one bit per dimension
    if kind == "ubinary":
        return list(packed)
    return [[b - 128 for b in row] for row in packed]


def _pack_bits(values: list[float]) -> list[int]:
    out = []
    for start in range(0, len(values), 8):
        byte = 0
        for x in values[start : start + 8]:
            byte = (byte << 1) | (1 if x > 0 else 0)
        out.append(byte)
    return out
