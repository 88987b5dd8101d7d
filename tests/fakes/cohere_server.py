"""A loopback fake of Cohere's v2 Chat endpoint (`POST /v2/chat`).

Bodies are `{"id", "finish_reason", "message": {"role", "content": [{"type": "text", "text"}]},
"usage": {"billed_units", "tokens", "cached_tokens"}}` and name no model. Streams are SSE
events, each with an `event:` line and the same name in the data's `type`: `message-start`,
`content-start`, one `content-delta` per piece, `content-end`, `message-end` (finish reason and
usage). Errors are `{"id", "message"}`. An in-stream failure is a `message-end` whose finish
reason is `ERROR`, with the text in `delta.error`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tests.fakes.base import FakeUsage, Fault, StreamPlan, VendorFake, sse

__all__ = ["FakeCohere", "FakeUsage", "Fault"]

_MALFORMED_FRAME: Final = b'event: content-delta\ndata: {"type": "content-delta", "delta": {\n\n'
_DONE_FRAME: Final = b"data: [DONE]\n\n"


class FakeCohere(VendorFake):
    """A fake Cohere server; `finish_reason` is in Cohere's words (None: "COMPLETE").

    Knobs for stream shapes Cohere's docs allow: `extra_events` are sent (as they are) between
    `content-start` and the first delta; `event_lines=False` drops the `event:` lines,
    `type_fields=False` drops the data's `type`; `done_marker` sends `data: [DONE]` last.
    """

    path = "/v2/chat"

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

    @property
    def base_url(self) -> str:
        """Cohere's base URL style, `http://127.0.0.1:{port}` (the adapter adds `/v2/chat`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def reply_id(self) -> str:
        """The id of the latest reply (a UUID, as Cohere's are)."""
        return f"c0e1e2e3-0000-4000-8000-{self.served:012d}"

    def add_routes(self, app: web.Application) -> None:
        """`POST /v2/chat`."""
        app.router.add_post(self.path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The bearer token."""
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def validate(self, request: web.Request, body: object) -> web.Response | None:
        """Cohere v2 requires `model` and `messages`."""
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return self._invalid("invalid request: model must be specified")
        if not isinstance(body.get("messages"), list):
            return self._invalid("invalid request: messages must be specified")
        return None

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """`"stream": true` in the body."""
        return body.get("stream") is True

    def completion(self, request: web.Request, body: dict[str, object]) -> object:
        """A v2 Chat reply."""
        content = [] if self.reply is None else [{"type": "text", "text": self.reply}]
        return {
            "id": self.reply_id,
            "message": {"role": "assistant", "content": content},
            "finish_reason": self.finish_reason or "COMPLETE",
            "usage": self._usage(),
        }

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        """message-start, content-start, [extra events], deltas, content-end, message-end."""
        start = {
            "role": "assistant",
            "content": [],
            "tool_plan": "",
            "tool_calls": [],
            "citations": [],
        }
        lead = [
            self.event("message-start", {"id": self.reply_id, "delta": {"message": start}}),
            self.event(
                "content-start",
                {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
            ),
            *self.extra_events,
        ]
        deltas = [
            self.event(
                "content-delta", {"index": 0, "delta": {"message": {"content": {"text": piece}}}}
            )
            for piece in self.deltas
        ]
        end = {"finish_reason": self.finish_reason or "COMPLETE", "usage": self._usage()}
        tail = [
            self.event("content-end", {"index": 0}),
            self.event("message-end", {"delta": end}),
            *([_DONE_FRAME] if self.done_marker else []),
        ]
        return StreamPlan([*lead, *deltas, *tail], first_content=len(lead), content=len(deltas))

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

    def _invalid(self, message: str) -> web.Response:
        return self.json_response({"id": self.reply_id, "message": message}, status=400)

    def _usage(self) -> dict[str, object]:
        u = self.usage
        counts = {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}
        return {"billed_units": counts, "tokens": dict(counts), "cached_tokens": u.cached_tokens}
