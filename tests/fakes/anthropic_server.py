"""A loopback fake of Anthropic's Messages endpoint (`POST /v1/messages`).

Bodies are `message` objects (`content` blocks, `stop_reason`, `usage` with uncached input and
cache reads/writes counted apart); streams are named SSE events (`message_start`,
`content_block_start`, a `ping`, one `content_block_delta` per piece of text,
`content_block_stop`, `message_delta`, `message_stop`); errors are
`{"type": "error", "error": {"type", "message"}, "request_id"}`. Like the real API it rejects a
body without `max_tokens` or `messages`, or with a "system" message role.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tests.fakes.base import FakeUsage, Fault, StreamPlan, VendorFake, sse

__all__ = ["FakeAnthropic", "FakeUsage", "Fault"]

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


class FakeAnthropic(VendorFake):
    """A fake Anthropic server; `finish_reason` is a `stop_reason` (None means "end_turn").

    `blocks`, when set, replaces the one text block of a whole completion (to send tool_use or
    several text blocks); streams always carry `reply` as one text block.
    """

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

    def validate(self, request: web.Request, body: object) -> web.Response | None:
        """A 400 for what the real API rejects: no `max_tokens`, no `messages`, a system role."""
        if not isinstance(body, dict):
            return self._invalid("Expected an object at the top level")
        if not isinstance(body.get("max_tokens"), int):
            return self._invalid("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return self._invalid("messages: Field required")
        for index, message in enumerate(messages):
            if isinstance(message, dict) and message.get("role") == "system":
                return self._invalid(
                    f'messages.{index}.role: Unexpected role "system". The Messages API accepts '
                    'a top-level `system` parameter, not "system" as an input message role.'
                )
        return None

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """`"stream": true` in the body."""
        return body.get("stream") is True

    def completion(self, request: web.Request, body: dict[str, object]) -> object:
        """A whole `message`."""
        blocks = self.blocks
        if blocks is None:
            blocks = [{"type": "text", "text": self.reply}] if self.reply is not None else []
        return {
            **self._envelope(body),
            "content": blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": self._stop_sequence(body),
            "usage": {**self._input_usage(), "output_tokens": self.usage.completion_tokens},
        }

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        """message_start, content_block_start, ping, the deltas, block stop, delta, stop."""
        # message_start reports the input counts and a first output count; message_delta has
        # the cumulative output count.
        usage = {**self._input_usage(), "output_tokens": 1}
        message = {
            **self._envelope(body),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        block = {"type": "text", "text": ""}
        frames = [
            _event({"type": "message_start", "message": message}),
            _event({"type": "content_block_start", "index": 0, "content_block": block}),
            _event({"type": "ping"}),
        ]
        frames += [
            _event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                }
            )
            for piece in self.deltas
        ]
        delta = {"stop_reason": self.stop_reason, "stop_sequence": self._stop_sequence(body)}
        frames += [
            _event({"type": "content_block_stop", "index": 0}),
            _event(
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": {"output_tokens": self.usage.completion_tokens},
                }
            ),
            _event({"type": "message_stop"}),
        ]
        return StreamPlan(frames, first_content=3, content=len(self.deltas))

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
        """The `stop_reason` the fake answers with."""
        return self.finish_reason or "end_turn"

    def _invalid(self, message: str) -> web.Response:
        return self.json_response(_error_object("invalid_request_error", message), status=400)

    def _envelope(self, body: dict[str, object]) -> dict[str, object]:
        return {
            "id": f"msg_fake{self.served:04d}",
            "type": "message",
            "role": "assistant",
            "model": self.model or body.get("model"),
        }

    def _stop_sequence(self, body: dict[str, object]) -> object:
        stops = body.get("stop_sequences")
        if self.stop_reason == "stop_sequence" and isinstance(stops, list) and stops:
            return stops[0]
        return None

    def _input_usage(self) -> dict[str, object]:
        u = self.usage
        return {
            "input_tokens": u.prompt_tokens - u.cached_tokens - u.cache_creation_tokens,
            "cache_creation_input_tokens": u.cache_creation_tokens,
            "cache_read_input_tokens": u.cached_tokens,
            "service_tier": "standard",
        }


def _event(obj: dict[str, object]) -> bytes:
    """An SSE event named like its data's `type`, as Anthropic sends them."""
    return sse(obj, str(obj["type"]))


def _error_object(kind: str, message: str) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_fake0123456789",
    }
