"""A loopback fake of the Gemini API (`POST /{version}/models/{model}:{method}`).

`generateContent` answers a GenerateContentResponse: one candidate whose `content.parts` are a
thought summary (`{"text", "thought": true}`) when the model reasons, the text, and one
`functionCall` part per call (`{"id"?, "name", "args"}`, whole — a call cut by the token
limit never arrives); the first call part carries the step's `thoughtSignature` on thinking
models (gemini-2.5*, gemini-3*), or the last part does when there are no calls
(ai.google.dev/gemini-api/docs/thought-signatures; python-genai `types.py` `Part`,
`FunctionCall`). `finishReason` is STOP after calls too, MAX_TOKENS when cut; `usageMetadata`
counts thoughts in `thoughtsTokenCount`. `:streamGenerateContent?alt=sse` streams one such
object per SSE `data:` line (CRLF-terminated, no [DONE]): a thought chunk, one chunk per text
delta, the calls whole (`calls_per_chunk` to a chunk, parts without index), then a chunk with
an empty text part carrying `finishReason` and the final `usageMetadata` (`usageMetadata` is on
every chunk, cumulative). Without `alt=sse` the real API streams a JSON array of those
objects instead, and so does the fake. Errors are Google's
`{"error": {"code", "message", "status", "details"}}`.

`:embedContent` answers `{"embedding": {"values"}}` and `:batchEmbedContents`
`{"embeddings": [{"values"}]}` (ai.google.dev/api/embeddings; no token usage), vectors from
`tests.fakes.embeddings.vector`. What the fake refuses is listed in `tests.fakes.gemini_rules`;
thought signatures it hands out are remembered, and Gemini 3 models want them back.
"""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from tests.fakes import gemini_rules
from tests.fakes.base import Answer, FakeUsage, Fault, Rejected, StreamPlan, ToolCall, VendorFake
from tests.fakes.embeddings import vector
from tests.fakes.script import pieces

__all__ = ["Answer", "FakeGemini", "FakeUsage", "Fault", "ToolCall"]

_CHAT_METHODS: Final = frozenset({"generateContent", "streamGenerateContent"})
_EMBED_METHODS: Final = frozenset({"embedContent", "batchEmbedContents"})
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
_FINISH: Final = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


class FakeGemini(VendorFake):
    """A fake Gemini API server.

    `finish_reason` is Gemini's (None: "STOP"); `reply=None` sends a candidate without content
    (what a SAFETY stop with no text looks like). `block_reason` ("SAFETY"...) blocks the prompt:
    `promptFeedback.blockReason` and no candidates. `thought` adds a thought-summary part before
    the answer and `thoughts_tokens` reports thinking tokens in `thoughtsTokenCount`.
    `fetches_urls=True` lets `fileData` name any https URL; `calls_per_chunk` groups streamed
    calls; `embedding_dimensions` sizes embeddings when the request names none.
    """

    vendor = "gemini"
    ids_optional = True

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
        self.fetches_urls = False
        self.calls_per_chunk = 1
        self.embedding_dimensions = 16

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

    def check(self, request: web.Request, body: object) -> None:
        """Gemini's 404 for an unknown method, then its checks (`tests.fakes.gemini_rules`)."""
        method = _method(request)
        if method in _EMBED_METHODS:
            gemini_rules.check_embed(
                body, model=_model(request), batch=method == "batchEmbedContents"
            )
            return
        if method not in _CHAT_METHODS:
            raise Rejected("The requested URL was not found on this server.", status=404)
        gemini_rules.check_generate(
            body, model=_model(request), minter=self.minter, fetches_urls=self.fetches_urls
        )

    def rejection_body(self, rejection: Rejected) -> object:
        """Google's `{"error": {"code", "message", "status"}}`."""
        name = _STATUS_NAMES.get(rejection.status, "INVALID_ARGUMENT")
        return {"error": {"code": rejection.status, "message": str(rejection), "status": name}}

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """The `:streamGenerateContent` method."""
        return _method(request) == "streamGenerateContent"

    def is_embedding(self, request: web.Request) -> bool:
        """The `:embedContent` and `:batchEmbedContents` methods."""
        return _method(request) in _EMBED_METHODS

    def default_answer(self) -> Answer:
        """`reply`, with the `thought` summary before it and no signature (as before scripts)."""
        return Answer(
            text=self.reply, reasoning=self.thought, signature="", vendor_finish=self.finish_reason
        )

    def mint_call_id(self, call: ToolCall) -> str:
        """A call id (the API's are optional and opaque; this style is unconfirmed)."""
        return "call_" + self.minter.token("fc", 8, lower=True)

    # -- generateContent -----------------------------------------------------------------------

    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """A whole GenerateContentResponse."""
        if self.block_reason:
            return self._blocked(request)
        signature = self._signature(request, answer)
        parts = self._thought_parts(answer)
        if answer.text is not None:
            parts.append({"text": answer.text})
        calls = self._call_parts(answer.whole_calls)
        if calls and signature:
            calls[0]["thoughtSignature"] = signature
        elif signature and parts and not parts[-1].get("thought"):
            parts[-1]["thoughtSignature"] = signature
        candidate = self._candidate([*parts, *calls], answer)
        return self._chunk(request, [candidate], self._usage(answer))

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """A thought chunk, one chunk per text delta, the calls, then the finishReason chunk."""
        if self.block_reason:
            return self._plan(request, [self._blocked(request)], 0, 0)
        signature = self._signature(request, answer)
        thoughts = self._thought_parts(answer)
        lead = (
            [
                self._chunk(
                    request, [self._candidate(thoughts, answer, None)], self._usage(answer, 0)
                )
            ]
            if thoughts
            else []
        )
        texts = pieces(answer.text)
        chunks = [
            self._chunk(
                request, [self._candidate([{"text": p}], answer, None)], self._usage(answer, i + 1)
            )
            for i, p in enumerate(texts)
        ]
        calls = self._call_parts(answer.whole_calls)
        if calls and signature:
            calls[0]["thoughtSignature"] = signature
        step = max(1, self.calls_per_chunk)
        for start in range(0, len(calls), step):
            group = calls[start : start + step]
            candidate = self._candidate(group, answer, None)
            chunks.append(self._chunk(request, [candidate], self._usage(answer, len(texts))))
        last_parts: list[dict[str, object]] = [{"text": ""}] if answer.text is not None else []
        if signature and not calls and last_parts:
            last_parts[0]["thoughtSignature"] = signature
        last = self._candidate(last_parts, answer)
        content = len(chunks)
        chunks.append(self._chunk(request, [last], self._usage(answer)))
        return self._plan(request, [*lead, *chunks], len(lead), content)

    def _signature(self, request: web.Request, answer: Answer) -> str:
        """The step's thought signature ("" for none): minted on thinking models."""
        if answer.signature is not None:
            return self.minter.remember(answer.signature, "") if answer.signature else ""
        model = _model(request)
        thinking = model.startswith(("gemini-2.5", "gemini-3"))
        if thinking and (answer.whole_calls or answer.reasoning is not None):
            return self.minter.signature(answer.reasoning or "", kind="thoughtSignature")
        return ""

    def _thought_parts(self, answer: Answer) -> list[dict[str, object]]:
        if answer.reasoning is None:
            return []
        return [{"text": answer.reasoning, "thought": True}]

    def _call_parts(self, calls: list[ToolCall]) -> list[dict[str, object]]:
        parts: list[dict[str, object]] = []
        for call in calls:
            function: dict[str, object] = {"name": call.name, "args": call.arguments_object}
            if call.id is not None:
                function = {"id": call.id, **function}
            parts.append({"functionCall": function})
        return parts

    # -- embeddings ----------------------------------------------------------------------------

    def embeddings(self, request: web.Request, body: dict[str, object]) -> object:
        """`{"embedding": {"values"}}`, or `{"embeddings": [...]}` for a batch."""
        batch = _method(request) == "batchEmbedContents"
        requests = gemini_rules.check_embed(body, model=_model(request), batch=batch)
        embeddings = []
        for item in requests:
            content = item["content"]
            assert isinstance(content, dict)
            text = " ".join(str(p.get("text")) for p in content.get("parts", []))
            size = item.get("outputDimensionality")
            dimensions = size if isinstance(size, int) else self.embedding_dimensions
            embeddings.append({"values": vector(text, dimensions)})
        return {"embeddings": embeddings} if batch else {"embedding": embeddings[0]}

    # -- errors --------------------------------------------------------------------------------

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

    # -- the wire shapes -----------------------------------------------------------------------

    def _candidate(
        self, parts: list[dict[str, object]], answer: Answer, finish: str | None = ""
    ) -> object:
        candidate: dict[str, object] = {"index": 0}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        if finish is not None:
            candidate["finishReason"] = finish or answer.vendor_finish or _FINISH[answer.our_finish]
        return candidate

    def _blocked(self, request: web.Request) -> object:
        feedback: dict[str, object] = {"blockReason": self.block_reason, "safetyRatings": []}
        prompt = self.usage.prompt_tokens
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        return {**self._envelope(request), "promptFeedback": feedback, "usageMetadata": usage}

    def _chunk(self, request: web.Request, candidates: list[object], usage: object) -> object:
        return {"candidates": candidates, "usageMetadata": usage, **self._envelope(request)}

    def _envelope(self, request: web.Request) -> dict[str, object]:
        return {
            "modelVersion": self.model or _model(request),
            "responseId": f"fake-response-{self.served}",
        }

    def _usage(self, answer: Answer, produced: int | None = None) -> dict[str, object]:
        """`usageMetadata`: final, or after `produced` deltas (counts are cumulative)."""
        u = self.usage_of(answer)
        thoughts = self.thoughts_tokens or u.reasoning_tokens  # thinking comes before the answer
        # `FakeUsage` counts reasoning within `completion_tokens`; Gemini's candidates count
        # leaves the thoughts out (`thoughts_tokens` adds them on top instead).
        candidates = u.completion_tokens - (0 if self.thoughts_tokens else u.reasoning_tokens)
        answered = candidates if produced is None else min(produced, candidates)
        usage: dict[str, object] = {
            "promptTokenCount": u.prompt_tokens,
            "candidatesTokenCount": answered,
            "totalTokenCount": u.prompt_tokens + answered + thoughts,
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


def _model(request: web.Request) -> str:
    return request.match_info["target"].rpartition(":")[0]


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
