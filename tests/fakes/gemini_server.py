"""A loopback fake of the Gemini API (`POST /{version}/models/{model}:generateContent`).

Bodies are GenerateContentResponse objects. `:streamGenerateContent?alt=sse` streams one such
object per SSE `data:` line (CRLF-terminated, no [DONE]): one chunk per text delta, then a
chunk with an empty text part carrying `finishReason` and the final `usageMetadata`
(`usageMetadata` is on every chunk, cumulative). Without `alt=sse` the real API streams a JSON
array of those objects instead, and so does the fake. Errors are Google's
`{"error": {"code", "message", "status", "details"}}`.
"""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from tests.fakes.base import FakeUsage, Fault, StreamPlan, VendorFake

__all__ = ["FakeGemini", "FakeUsage", "Fault"]

_METHODS: Final = frozenset({"generateContent", "streamGenerateContent"})
_ROLES: Final = frozenset({"user", "model"})
_MALFORMED_FRAME: Final = b'data: {"candidates": [{"content": {"parts": [\r\n\r\n'
#: The canonical status name Google pairs with each HTTP status (google/rpc/code.proto).
_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_STATUS_CODES: Final = {name: code for code, name in _STATUS_NAMES.items()}
_RPC: Final = "type.googleapis.com/google.rpc."


class FakeGemini(VendorFake):
    """A fake Gemini API server.

    `finish_reason` is Gemini's (None: "STOP"); `reply=None` sends a candidate without content
    (what a SAFETY stop with no text looks like). `block_reason` ("SAFETY"...) blocks the prompt:
    `promptFeedback.blockReason` and no candidates. `thought` adds a thought-summary part before
    the answer and `thoughts_tokens` reports thinking tokens in `thoughtsTokenCount`.
    """

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake Gemini",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(reply=reply, model=model, usage=usage, finish_reason=finish_reason)
        self.block_reason: str | None = None
        self.thought: str | None = None
        self.thoughts_tokens = 0

    @property
    def base_url(self) -> str:
        """The API root, `http://127.0.0.1:{port}` (the version is part of each path)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def query_keys(self) -> list[str]:
        """The `?key=` query parameter of each request ("" when absent): must stay all empty."""
        return [r.query.get("key", "") for r in self.requests]

    def add_routes(self, app: web.Application) -> None:
        """`POST /{version}/models/{model}:{method}` (the method rides in the last segment)."""
        app.router.add_post("/{version}/models/{target}", self.handle)

    def credential(self, request: web.Request) -> str:
        """The `x-goog-api-key` header (a `?key=` parameter is recorded, not accepted here)."""
        return request.headers.get("x-goog-api-key", "")

    def validate(self, request: web.Request, body: object) -> web.Response | None:
        """Gemini's 404 for an unknown method, and 400 for a body without valid `contents`."""
        if _method(request) not in _METHODS:
            return self._error(404, "NOT_FOUND", "The requested URL was not found on this server.")
        contents = body.get("contents") if isinstance(body, dict) else None
        if not isinstance(contents, list) or not contents:
            return self._error(400, "INVALID_ARGUMENT", "* contents: contents is not specified")
        if any(not isinstance(c, dict) or c.get("role") not in _ROLES for c in contents):
            return self._error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model.")
        return None

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """The `:streamGenerateContent` method."""
        return _method(request) == "streamGenerateContent"

    def completion(self, request: web.Request, body: dict[str, object]) -> object:
        """A whole GenerateContentResponse."""
        if self.block_reason:
            return self._blocked(request)
        candidate = self._candidate(self._parts([self.reply] if self.reply is not None else []))
        return self._chunk(request, [candidate], self._usage())

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        """A thought chunk if set, one chunk per delta, then the finishReason chunk."""
        if self.block_reason:
            return self._plan(request, [self._blocked(request)], 0, 0)
        lead = [self._thought_chunk(request)] if self.thought else []
        chunks = [
            self._chunk(request, [self._candidate([{"text": piece}], None)], self._usage(i + 1))
            for i, piece in enumerate(self.deltas)
        ]
        last = self._candidate([{"text": ""}] if self.reply is not None else [])
        chunks.append(self._chunk(request, [last], self._usage()))
        return self._plan(request, [*lead, *chunks], len(lead), len(self.deltas))

    def error_body(self, status: int, fault: Fault) -> object:
        """`{"error": {code, message, status, details}}`, with an ErrorInfo for `error_code`."""
        name = fault.error_type or _STATUS_NAMES.get(status, "UNKNOWN")
        details: list[object] = []
        if fault.error_code:
            details.append(_error_info(fault.error_code))
        if fault.error_code == "API_KEY_INVALID":
            localized = {"locale": "en-US", "message": fault.error_message}
            details.append({"@type": _RPC + "LocalizedMessage", **localized})
        if status == 429:
            details.append({"@type": _RPC + "RetryInfo", "retryDelay": "1s"})
        error = {"code": status, "message": fault.error_message, "status": name}
        return {"error": {**error, "details": details}} if details else {"error": error}

    def malformed_frame(self) -> bytes:
        """A data line cut off mid-JSON."""
        return _MALFORMED_FRAME

    def error_frame(self, fault: Fault) -> bytes:
        """An in-stream `{"error": ...}` data line (500 INTERNAL unless `error_type` says)."""
        name = fault.error_type or "INTERNAL"
        return _sse(self.error_body(_STATUS_CODES.get(name, 500), fault))

    # -- the wire shapes -------------------------------------------------------------------

    def _error(self, status: int, name: str, message: str) -> web.Response:
        error = {"code": status, "message": message, "status": name}
        return self.json_response({"error": error}, status=status)

    def _parts(self, texts: list[str]) -> list[dict[str, object]]:
        parts: list[dict[str, object]] = [{"text": t} for t in texts]
        return [{"text": self.thought, "thought": True}, *parts] if self.thought else parts

    def _candidate(self, parts: list[dict[str, object]], finish: str | None = "") -> object:
        candidate: dict[str, object] = {"index": 0}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish is not None:
            candidate["finishReason"] = finish or self.finish_reason or "STOP"
        return candidate

    def _thought_chunk(self, request: web.Request) -> object:
        part: dict[str, object] = {"text": self.thought, "thought": True}
        return self._chunk(request, [self._candidate([part], None)], self._usage(0))

    def _blocked(self, request: web.Request) -> object:
        feedback: dict[str, object] = {"blockReason": self.block_reason, "safetyRatings": []}
        prompt = self.usage.prompt_tokens
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        return {**self._envelope(request), "promptFeedback": feedback, "usageMetadata": usage}

    def _chunk(self, request: web.Request, candidates: list[object], usage: object) -> object:
        return {"candidates": candidates, "usageMetadata": usage, **self._envelope(request)}

    def _envelope(self, request: web.Request) -> dict[str, object]:
        model = self.model or request.match_info["target"].rpartition(":")[0]
        return {"modelVersion": model, "responseId": f"fake-response-{self.served}"}

    def _usage(self, produced: int | None = None) -> dict[str, object]:
        """`usageMetadata`: final, or after `produced` deltas (counts are cumulative)."""
        u, thoughts = self.usage, self.thoughts_tokens  # thinking comes before the answer
        answer = u.completion_tokens if produced is None else min(produced, u.completion_tokens)
        usage: dict[str, object] = {
            "promptTokenCount": u.prompt_tokens,
            "candidatesTokenCount": answer,
            "totalTokenCount": u.prompt_tokens + answer + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.prompt_tokens}],
        }
        if u.cached_tokens:  # proto3 JSON leaves zero counts out
            usage["cachedContentTokenCount"] = u.cached_tokens
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _plan(
        self, request: web.Request, chunks: list[object], first: int, content: int
    ) -> StreamPlan:
        if request.query.get("alt") == "sse":
            return StreamPlan([_sse(chunk) for chunk in chunks], first, content)
        # Without alt=sse: one JSON array, written element by element as it is generated.
        frames = [(b"[" if i == 0 else b",\r\n") + orjson.dumps(c) for i, c in enumerate(chunks)]
        return StreamPlan([*frames, b"]"], first, content, content_type="application/json")


def _method(request: web.Request) -> str:
    return request.match_info["target"].rpartition(":")[2]


def _error_info(reason: str) -> dict[str, object]:
    metadata = {"service": "generativelanguage.googleapis.com"}
    return {
        "@type": _RPC + "ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": metadata,
    }


def _sse(obj: object) -> bytes:
    """One SSE event the way the Gemini API writes it: a `data:` line, CRLF line endings."""
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"
