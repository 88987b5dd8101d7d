"""A loopback fake of Ollama's chat (`POST /api/chat`) and embed (`POST /api/embed`) endpoints.

Chat bodies are single chat objects (`model`, `created_at`, `message`, `done: true`,
`done_reason`, durations and token counts). `message` has `content`, `thinking` when the model
reasons, and `tool_calls` — `{"id": "call_<8 chars>", "function": {"index", "name",
"arguments": {...}}}`, whole (a call cut by the token limit never arrives) — after which
`done_reason` is still "stop" ("length" when cut) (`ollama/ollama` `api/types.go` `Message`,
`ToolCall`; `server/routes.go` `toolCallId`; `docs/api.md` "Chat request (Streaming with
tools)"). Streams are NDJSON (`application/x-ndjson`): one `{"message": {"thinking": ...},
"done": false}` line per reasoning delta, one `{"message": {"content": ...}}` line per text
delta, one line per tool call carrying it whole in `message.tool_calls`, then the `done: true`
line with the counts. Ollama streams unless the body says `"stream": false`. Errors are
`{"error": "<text>"}`, as a body or as a line of a stream already under way.

`/api/embed` answers `{"model", "embeddings", "total_duration", "load_duration",
"prompt_eval_count"}` (`api/types.go` `EmbedResponse`), vectors from
`tests.fakes.embeddings.vector`, `dimensions` honoured; Ollama has no batch limit. What the
fake refuses is listed in `tests.fakes.ollama_rules`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import orjson
from aiohttp import web

from tests.fakes import ollama_rules
from tests.fakes.base import Answer, FakeUsage, Fault, Rejected, StreamPlan, ToolCall, VendorFake
from tests.fakes.embeddings import token_count, vector
from tests.fakes.script import pieces

__all__ = ["Answer", "FakeOllama", "FakeUsage", "Fault", "ToolCall"]

_NDJSON: Final = "application/x-ndjson"
_MALFORMED_LINE: Final = b'{"model": "llama3.2", "message": {"role": "assistant", "content": \n'
#: Nanoseconds, as Ollama reports durations.
_DURATIONS: Final = {
    "total_duration": 4_883_583_458,
    "load_duration": 1_334_875,
    "prompt_eval_duration": 342_546_000,
    "eval_duration": 4_535_599_000,
}
_DONE_REASONS: Final = {
    "stop": "stop",
    "tool_calls": "stop",
    "length": "length",
    "content_filter": "stop",
}


def ndjson(obj: object) -> bytes:
    """One NDJSON line carrying `obj`."""
    return orjson.dumps(obj) + b"\n"


class FakeOllama(VendorFake):
    """A fake Ollama server. `finish_reason` is Ollama's `done_reason` (None: "stop").

    `lacks` names capabilities the model is without ("tools", "vision", "thinking"): requests
    needing them get Ollama's 400. `embedding_dimensions` sizes embeddings when the request
    names no `dimensions`.
    """

    vendor = "ollama"
    ids_optional = True
    path = "/api/chat"
    embed_path = "/api/embed"

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake Ollama",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(reply=reply, model=model, usage=usage, finish_reason=finish_reason)
        self.lacks: set[str] = set()
        self.embedding_dimensions = 16

    @property
    def base_url(self) -> str:
        """The server's root, `http://127.0.0.1:{port}`."""
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        """`POST /api/chat` and `POST /api/embed`."""
        app.router.add_post(self.path, self.handle)
        app.router.add_post(self.embed_path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The bearer token an authenticating proxy would check ("" when none)."""
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def is_embedding(self, request: web.Request) -> bool:
        """A request to `/api/embed`."""
        return request.path == self.embed_path

    def check(self, request: web.Request, body: object) -> None:
        """Ollama's checks (`tests.fakes.ollama_rules`)."""
        if self.is_embedding(request):
            ollama_rules.check_embed(body)
        else:
            ollama_rules.check_chat(body, lacks=self.lacks)

    def rejection_body(self, rejection: Rejected) -> object:
        """`{"error": "<text>"}`."""
        return {"error": str(rejection)}

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """Ollama streams unless the body says `"stream": false`."""
        return body.get("stream", True) is not False

    def mint_call_id(self, call: ToolCall) -> str:
        """`call_` and 8 lower-case letters and digits, as `server/routes.go` makes them."""
        return "call_" + self.minter.token("call", 8, lower=True)

    # -- chat ----------------------------------------------------------------------------------

    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """The whole reply: the message and the final statistics."""
        extra: dict[str, object] = {}
        if answer.reasoning is not None:
            extra["thinking"] = answer.reasoning
        if answer.whole_calls:
            extra["tool_calls"] = _calls(answer.whole_calls)
        return {**self._line(body, answer.text or "", **extra), **self._done(answer)}

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """Reasoning lines, text lines, one line per call, then the done line with the counts."""
        lines = [ndjson(self._line(body, "", thinking=p)) for p in pieces(answer.reasoning)]
        lines += [ndjson(self._line(body, piece)) for piece in pieces(answer.text)]
        lines += [
            ndjson(self._line(body, "", tool_calls=_calls([call], start=index)))
            for index, call in enumerate(answer.whole_calls)
        ]
        content = len(lines)
        lines.append(ndjson({**self._line(body, ""), **self._done(answer)}))
        return StreamPlan(lines, first_content=0, content=content, content_type=_NDJSON)

    # -- embed ---------------------------------------------------------------------------------

    def embeddings(self, request: web.Request, body: dict[str, object]) -> object:
        """`{"model", "embeddings", ...}`, one vector per input in order."""
        inputs = ollama_rules.check_embed(body)
        size = body.get("dimensions")
        dimensions = size if isinstance(size, int) and size > 0 else self.embedding_dimensions
        return {
            "model": self.model or body.get("model"),
            "embeddings": [vector(text, dimensions) for text in inputs],
            "total_duration": _DURATIONS["total_duration"],
            "load_duration": _DURATIONS["load_duration"],
            "prompt_eval_count": sum(token_count(text) for text in inputs),
        }

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, fault: Fault) -> object:
        """`{"error": "<text>"}`."""
        return {"error": fault.error_message}

    def malformed_frame(self) -> bytes:
        """A line cut off mid-JSON."""
        return _MALFORMED_LINE

    def error_frame(self, fault: Fault) -> bytes:
        """The `{"error": "<text>"}` line Ollama writes when a stream fails after it started."""
        return ndjson({"error": fault.error_message})

    def _line(self, body: dict[str, object], content: str, **message: object) -> dict[str, object]:
        return {
            "model": self.model or body.get("model"),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": content, **message},
            "done": False,
        }

    def _done(self, answer: Answer) -> dict[str, object]:
        usage = self.usage_of(answer)
        return {
            "done": True,
            "done_reason": answer.vendor_finish or _DONE_REASONS[answer.our_finish],
            **_DURATIONS,
            "prompt_eval_count": usage.prompt_tokens,
            "eval_count": usage.completion_tokens,
        }


def _calls(calls: list[ToolCall], start: int = 0) -> list[dict[str, object]]:
    """Ollama's `tool_calls`: the arguments an object, each call numbered by `index`."""
    out: list[dict[str, object]] = []
    for index, call in enumerate(calls, start):
        function = {"index": index, "name": call.name, "arguments": call.arguments_object}
        out.append({"id": call.id, "function": function} if call.id else {"function": function})
    return out
