"""A loopback fake of Ollama's chat endpoint (`POST /api/chat`).

Bodies are single chat objects (`model`, `created_at`, `message`, `done: true`, `done_reason`,
durations and token counts); streams are NDJSON (`application/x-ndjson`): one
`{"message": {"content": "<delta>"}, "done": false}` line per delta, then the `done: true` line
with the counts. Ollama streams unless the body says `"stream": false`. Errors are
`{"error": "<text>"}`, as a body or as a line of a stream already under way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import orjson
from aiohttp import web

from tests.fakes.base import FakeUsage, Fault, StreamPlan, VendorFake

__all__ = ["FakeOllama", "FakeUsage", "Fault"]

_NDJSON: Final = "application/x-ndjson"
_MALFORMED_LINE: Final = b'{"model": "llama3.2", "message": {"role": "assistant", "content": \n'
#: Nanoseconds, as Ollama reports durations.
_DURATIONS: Final = {
    "total_duration": 4_883_583_458,
    "load_duration": 1_334_875,
    "prompt_eval_duration": 342_546_000,
    "eval_duration": 4_535_599_000,
}


def ndjson(obj: object) -> bytes:
    """One NDJSON line carrying `obj`."""
    return orjson.dumps(obj) + b"\n"


class FakeOllama(VendorFake):
    """A fake Ollama server. `finish_reason` is Ollama's `done_reason` (None: "stop")."""

    path = "/api/chat"

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake Ollama",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(reply=reply, model=model, usage=usage, finish_reason=finish_reason)

    @property
    def base_url(self) -> str:
        """The server's root, `http://127.0.0.1:{port}`."""
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        """`POST /api/chat`."""
        app.router.add_post(self.path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The bearer token an authenticating proxy would check ("" when none)."""
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def validate(self, request: web.Request, body: object) -> web.Response | None:
        """Ollama requires `model`."""
        if not isinstance(body, dict) or not body.get("model"):
            return self.json_response({"error": "model is required"}, status=400)
        return None

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """Ollama streams unless the body says `"stream": false`."""
        return body.get("stream", True) is not False

    def completion(self, request: web.Request, body: dict[str, object]) -> object:
        """The whole reply: the message and the final statistics."""
        return {**self._line(body, self.reply or ""), **self._done()}

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        """One line per delta, then the done line with an empty message and the counts."""
        lines = [ndjson(self._line(body, piece)) for piece in self.deltas]
        lines.append(ndjson({**self._line(body, ""), **self._done()}))
        return StreamPlan(lines, first_content=0, content=len(self.deltas), content_type=_NDJSON)

    def error_body(self, status: int, fault: Fault) -> object:
        """`{"error": "<text>"}`."""
        return {"error": fault.error_message}

    def malformed_frame(self) -> bytes:
        """A line cut off mid-JSON."""
        return _MALFORMED_LINE

    def error_frame(self, fault: Fault) -> bytes:
        """The `{"error": "<text>"}` line Ollama writes when a stream fails after it started."""
        return ndjson({"error": fault.error_message})

    def _line(self, body: dict[str, object], content: str) -> dict[str, object]:
        return {
            "model": self.model or body.get("model"),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": content},
            "done": False,
        }

    def _done(self) -> dict[str, object]:
        return {
            "done": True,
            "done_reason": self.finish_reason or "stop",
            **_DURATIONS,
            "prompt_eval_count": self.usage.prompt_tokens,
            "eval_count": self.usage.completion_tokens,
        }
