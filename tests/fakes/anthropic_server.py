"""A loopback fake of Anthropic's Messages endpoint (`POST /v1/messages`).

Bodies are `message` objects: `content` blocks in the order the model produces them —
`thinking` (`thinking`, `signature`), `redacted_thinking` (`data`), `text`, `tool_use` (`id`
"toolu_...", `name`, `input` object; a call cut by the token limit carries what of its input
parsed) — then `stop_reason` (`end_turn`, `max_tokens`, `tool_use`, `refusal`, ...) and
`usage` with uncached input and cache reads/writes counted apart (`anthropic-sdk-python`
`types/message.py`, `thinking_block.py`, `tool_use_block.py`, `stop_reason.py`). Streams are
named SSE events: `message_start`, then per block `content_block_start` (a `ping` after the
first), its deltas — `thinking_delta` pieces then one `signature_delta`, `text_delta` pieces,
`input_json_delta` fragments (none for a call without arguments) — and `content_block_stop`;
then `message_delta` (stop reason, cumulative output tokens) and `message_stop`
(`types/raw_message_stream_event.py`, `raw_content_block_delta.py`). Errors are
`{"type": "error", "error": {"type", "message"}, "request_id"}`.

Signatures and redacted data the fake hands out are remembered: a later request must send them
back unaltered, with the thinking text they signed (`tests.fakes.anthropic_rules` lists every
check, with sources).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tests.fakes import anthropic_rules
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
from tests.fakes.script import pieces

__all__ = ["Answer", "FakeAnthropic", "FakeUsage", "Fault", "ToolCall"]

_MALFORMED_FRAME: Final = (
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'
)
#: Anthropic's error type for each HTTP status it documents.
_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_Json = dict[str, object]
_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


class FakeAnthropic(VendorFake):
    """A fake Anthropic server; `finish_reason` is a `stop_reason` (None means "end_turn").

    `blocks`, when set, replaces the content of an unscripted whole completion (raw blocks, as
    the test wrote them); unscripted streams always carry `reply` as one text block.
    """

    vendor = "anthropic"
    path = "/v1/messages"

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake Anthropic",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(reply=reply, model=model, usage=usage, finish_reason=finish_reason)
        self.blocks: list[dict[str, object]] | None = None
        self._scripted = False

    @property
    def base_url(self) -> str:
        """The API root, `http://127.0.0.1:{port}` (the adapter appends `/v1/messages`)."""
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        """`POST /v1/messages`."""
        app.router.add_post(self.path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The `x-api-key` header."""
        return request.headers.get("x-api-key", "")

    def check(self, request: web.Request, body: object) -> None:
        """Anthropic's checks (`tests.fakes.anthropic_rules`)."""
        betas = [
            beta.strip()
            for header in request.headers.getall("anthropic-beta", [])
            for beta in header.split(",")
        ]
        anthropic_rules.check(body, betas=betas, minter=self.minter)

    def rejection_body(self, rejection: Rejected) -> object:
        """Anthropic's `invalid_request_error` body."""
        return _error_object(
            _ERROR_TYPES.get(rejection.status, "invalid_request_error"), str(rejection)
        )

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """`"stream": true` in the body."""
        return body.get("stream") is True

    def take_answer(self) -> Answer:
        """The next answer, noting whether it was scripted (unscripted ones honour `blocks`)."""
        self._scripted = bool(self.answers)
        return super().take_answer()

    def mint_call_id(self, call: ToolCall) -> str:
        """`toolu_01` and 22 letters and digits, like Anthropic's."""
        return "toolu_01" + self.minter.token("toolu", 22)

    # -- rendering -----------------------------------------------------------------------------

    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """A whole `message`."""
        blocks = self._content(answer)
        if not self._scripted and self.blocks is not None:
            blocks = self.blocks
        usage = {**self._input_usage(answer), **self._output_usage(answer)}
        return {
            **self._envelope(body),
            "content": blocks,
            "stop_reason": self._stop_reason(answer),
            "stop_sequence": self._stop_sequence(body, answer),
            "usage": usage,
        }

    def _content(self, answer: Answer) -> list[dict[str, object]]:
        """The answer's blocks, signatures minted (and remembered) once."""
        blocks: list[dict[str, object]] = []
        if answer.reasoning is not None:
            signature = self._signature(answer)
            blocks.append(
                {"type": "thinking", "thinking": answer.reasoning, "signature": signature}
            )
        if answer.redacted is not None:
            data = self.minter.remember(answer.redacted, "")
            blocks.append({"type": "redacted_thinking", "data": data})
        if answer.text is not None:
            blocks.append({"type": "text", "text": answer.text})
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_object}
            for call in answer.tool_calls
        ]
        return blocks

    def _signature(self, answer: Answer) -> str:
        assert answer.reasoning is not None
        if answer.signature is None:
            return self.minter.signature(answer.reasoning)
        return self.minter.remember(answer.signature, answer.reasoning)

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """message_start, each block's start/deltas/stop (a ping after the first), the end."""
        if not self._scripted and answer.text is None:
            answer = Answer(text="", vendor_finish=answer.vendor_finish, usage=answer.usage)
        # message_start reports the input counts and a first output count; message_delta has
        # the cumulative output count.
        message = {
            **self._envelope(body),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**self._input_usage(answer), "output_tokens": 1},
        }
        frames = [_event({"type": "message_start", "message": message})]
        content: list[int] = []  # positions of the delta frames
        for index, (start, deltas) in enumerate(self._stream_blocks(answer)):
            frames.append(
                _event({"type": "content_block_start", "index": index, "content_block": start})
            )
            if index == 0:
                frames.append(_event({"type": "ping"}))
            for delta in deltas:
                content.append(len(frames))
                frames.append(
                    _event({"type": "content_block_delta", "index": index, "delta": delta})
                )
            frames.append(_event({"type": "content_block_stop", "index": index}))
        if len(frames) == 1:
            frames.append(_event({"type": "ping"}))
        delta = {
            "stop_reason": self._stop_reason(answer),
            "stop_sequence": self._stop_sequence(body, answer),
        }
        frames += [
            _event({"type": "message_delta", "delta": delta, "usage": self._output_usage(answer)}),
            _event({"type": "message_stop"}),
        ]
        first = content[0] if content else min(3, len(frames) - 2)
        count = content[-1] - first + 1 if content else 0
        return StreamPlan(frames, first_content=first, content=count)

    def _stream_blocks(self, answer: Answer) -> list[tuple[_Json, list[_Json]]]:
        """Each block's `content_block_start` payload and its deltas."""
        blocks: list[tuple[_Json, list[_Json]]] = []
        if answer.reasoning is not None:
            deltas: list[_Json] = [
                {"type": "thinking_delta", "thinking": p} for p in pieces(answer.reasoning)
            ]
            deltas.append({"type": "signature_delta", "signature": self._signature(answer)})
            blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        if answer.redacted is not None:
            data = self.minter.remember(answer.redacted, "")
            blocks.append(({"type": "redacted_thinking", "data": data}, []))
        if answer.text is not None:
            text: list[_Json] = [{"type": "text_delta", "text": p} for p in pieces(answer.text)]
            blocks.append(({"type": "text", "text": ""}, text))
        for call in answer.tool_calls:
            start: _Json = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            fragments = [] if call.arguments_json == "{}" else answer.argument_fragments(call)
            json: list[_Json] = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
            blocks.append((start, json))
        return blocks

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, fault: Fault) -> object:
        """`{"type": "error", "error": {"type", "message"}, "request_id"}`."""
        default = "invalid_request_error" if status < 500 else "api_error"
        kind = fault.error_type or _ERROR_TYPES.get(status, default)
        return _error_object(kind, fault.error_message)

    def malformed_frame(self) -> bytes:
        """A content_block_delta whose data is cut off mid-JSON."""
        return _MALFORMED_FRAME

    def error_frame(self, fault: Fault) -> bytes:
        """Anthropic's in-stream `event: error` (overloaded_error unless told otherwise)."""
        kind = fault.error_type or "overloaded_error"
        return sse(_error_object(kind, fault.error_message), "error")

    @property
    def stop_reason(self) -> str:
        """The `stop_reason` an unscripted answer ends with."""
        return self.finish_reason or "end_turn"

    def _stop_reason(self, answer: Answer) -> str:
        return answer.vendor_finish or _STOP_REASONS[answer.our_finish]

    def _envelope(self, body: dict[str, object]) -> dict[str, object]:
        return {
            "id": f"msg_fake{self.served:04d}",
            "type": "message",
            "role": "assistant",
            "model": self.model or body.get("model"),
        }

    def _stop_sequence(self, body: dict[str, object], answer: Answer) -> object:
        stops = body.get("stop_sequences")
        if self._stop_reason(answer) == "stop_sequence" and isinstance(stops, list) and stops:
            return stops[0]
        return None

    def _input_usage(self, answer: Answer) -> dict[str, object]:
        u = self.usage_of(answer)
        return {
            "input_tokens": u.prompt_tokens - u.cached_tokens - u.cache_creation_tokens,
            "cache_creation_input_tokens": u.cache_creation_tokens,
            "cache_read_input_tokens": u.cached_tokens,
            "service_tier": "standard",
        }

    def _output_usage(self, answer: Answer) -> dict[str, object]:
        u = self.usage_of(answer)
        usage: dict[str, object] = {"output_tokens": u.completion_tokens}
        if u.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
        return usage


def _event(obj: dict[str, object]) -> bytes:
    """An SSE event named like its data's `type`, as Anthropic sends them."""
    return sse(obj, str(obj["type"]))


def _error_object(kind: str, message: str) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_fake0123456789",
    }
