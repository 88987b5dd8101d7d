"""A loopback fake of OpenAI's Chat Completions (`POST /v1/chat/completions`) and Embeddings.

Chat bodies are `chat.completion` objects: one choice per `n`, `message.content` (null when the
model only called tools), `message.tool_calls` (`{"id": "call_...", "type": "function",
"function": {"name", "arguments": "<JSON text>"}}`), `finish_reason` ("tool_calls" after calls,
"length" when cut), `usage` with `prompt_tokens_details.cached_tokens` and
`completion_tokens_details.reasoning_tokens` (the only trace of reasoning OpenAI sends).
Streams are SSE `chat.completion.chunk` objects: a role chunk, one chunk per text delta, for
each tool call a chunk with `index`, `id`, `type` and `function.name` (arguments "") then one
chunk per argument fragment (`index` and `function.arguments` only), a finish chunk, a usage
chunk (`choices: []`) when `stream_options.include_usage`, then `data: [DONE]`
(`openai-python` `types/chat/chat_completion_chunk.py`, `lib/streaming/chat/_completions.py`).
Errors are `{"error": {"message", "type", "param", "code"}}`.

Embeddings (`POST /v1/embeddings`) answer `{"object": "list", "data": [{"object": "embedding",
"index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}`, each embedding a
float list or, for `encoding_format: "base64"`, little-endian float32 bytes in base64
(`openai-python` `lib/_parsing/_embeddings.py`); vectors come from
`tests.fakes.embeddings.vector`. What the fake refuses is listed in `tests.fakes.openai_rules`.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from tests.fakes import openai_rules
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

__all__ = ["Answer", "FakeOpenAI", "FakeUsage", "Fault", "ToolCall"]

_MALFORMED_FRAME: Final = b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
_DONE_FRAME: Final = b"data: [DONE]\n\n"
_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


class FakeOpenAI(VendorFake):
    """A fake OpenAI server. `stream_usage=False` acts like a server ignoring `include_usage`.

    `vision=False` makes the model refuse image parts; `embedding_dimensions` is the length of
    an embedding when the request names no `dimensions`. `reasoning_field` set (e.g.
    "reasoning_content") acts like an OpenAI-compatible server that returns the model's
    reasoning text in that field of the message and of stream deltas (vLLM, DeepSeek,
    llama.cpp); OpenAI itself sends none.
    """

    vendor = "openai"
    path = "/v1/chat/completions"
    embeddings_path = "/v1/embeddings"

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake OpenAI",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = "stop",
        stream_usage: bool = True,
    ) -> None:
        super().__init__(reply=reply, model=model, usage=usage, finish_reason=finish_reason)
        self.stream_usage = stream_usage
        self.vision = True
        self.embedding_dimensions = 16
        self.reasoning_field: str | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `http://127.0.0.1:{port}/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def add_routes(self, app: web.Application) -> None:
        """`POST /v1/chat/completions` and `POST /v1/embeddings`."""
        app.router.add_post(self.path, self.handle)
        app.router.add_post(self.embeddings_path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The bearer token."""
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def is_embedding(self, request: web.Request) -> bool:
        """A request to the embeddings path."""
        return request.path.endswith("/embeddings")

    def check(self, request: web.Request, body: object) -> None:
        """OpenAI's checks (`tests.fakes.openai_rules`)."""
        if self.is_embedding(request):
            openai_rules.check_embeddings(body, sizable=self.sizable(request, body))
        else:
            openai_rules.check_chat(body, vision=self.vision)

    def sizable(self, request: web.Request, body: object) -> bool:
        """Whether the embedding model takes `dimensions`: OpenAI's text-embedding-3 models."""
        return str(self.echoed_model(request, body)).startswith("text-embedding-3")

    def rejection_body(self, rejection: Rejected) -> object:
        """OpenAI's `invalid_request_error` with the `param` and `code` of the refusal."""
        error = {
            "message": rejection.message,
            "type": "invalid_request_error",
            "param": rejection.param,
            "code": rejection.code,
        }
        return {"error": error}

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """`"stream": true` in the body."""
        return body.get("stream") is True

    # -- chat ----------------------------------------------------------------------------------

    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """A `chat.completion` with one choice per `n`."""
        message: dict[str, object] = {"role": "assistant", "content": answer.text}
        if self.reasoning_field and answer.reasoning:
            message[self.reasoning_field] = answer.reasoning
        if answer.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in answer.tool_calls
            ]
        message |= {"refusal": None, "annotations": []}
        choices = [
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": self._finish(answer),
            }
            for index in range(_choices(body))
        ]
        envelope = self._envelope(request, body, "chat.completion")
        usage = self._usage(self.usage_of(answer), _choices(body))
        return {**envelope, "choices": choices, "usage": usage, "service_tier": "default"}

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """Role chunk, text and tool-call deltas, finish chunk, usage chunk, `[DONE]`."""
        options = body.get("stream_options")
        with_usage = (
            self.stream_usage and isinstance(options, dict) and options.get("include_usage") is True
        )
        envelope = self._envelope(request, body, "chat.completion.chunk")
        if with_usage:
            envelope["usage"] = None  # OpenAI sends an explicit null until the usage chunk
        n = _choices(body)

        def frames(delta: dict[str, object], finish_reason: str | None = None) -> list[bytes]:
            return [
                sse(
                    {
                        **envelope,
                        "choices": [
                            {
                                "index": index,
                                "delta": delta,
                                "logprobs": None,
                                "finish_reason": finish_reason,
                            }
                        ],
                    }
                )
                for index in range(n)
            ]

        first_text = "" if answer.text is not None or not answer.tool_calls else None
        lead = frames({"role": "assistant", "content": first_text, "refusal": None})
        content = []
        if self.reasoning_field:
            field = self.reasoning_field
            content += [f for piece in pieces(answer.reasoning) for f in frames({field: piece})]
        content += [f for piece in pieces(answer.text) for f in frames({"content": piece})]
        for delta in self._tool_call_deltas(answer):
            content += frames({"tool_calls": [delta]})
        tail = frames({}, self._finish(answer))
        if with_usage:
            usage = self._usage(self.usage_of(answer), n)
            tail.append(sse({**envelope, "choices": [], "usage": usage}))
        return StreamPlan([*lead, *content, *tail, _DONE_FRAME], len(lead), len(content))

    def _tool_call_deltas(self, answer: Answer) -> list[dict[str, object]]:
        """Each call's opening delta (id, name, empty arguments), then its argument fragments."""
        deltas: list[dict[str, object]] = []
        for index, call in enumerate(answer.tool_calls):
            head = {"name": call.name, "arguments": ""}
            deltas.append({"index": index, "id": call.id, "type": "function", "function": head})
            deltas += [
                {"index": index, "function": {"arguments": fragment}}
                for fragment in answer.argument_fragments(call)
            ]
        return deltas

    def mint_call_id(self, call: ToolCall) -> str:
        """`call_` and 24 letters and digits, like OpenAI's."""
        return "call_" + self.minter.token("call", 24)

    def _finish(self, answer: Answer) -> str:
        return answer.vendor_finish or answer.our_finish

    # -- embeddings ----------------------------------------------------------------------------

    def embeddings(self, request: web.Request, body: dict[str, object]) -> object:
        """An embedding `list`, float lists or base64 float32 as `encoding_format` asks."""
        inputs = openai_rules.check_embeddings(body, sizable=self.sizable(request, body))
        size = body.get("dimensions")
        dimensions = size if isinstance(size, int) else self.embedding_dimensions
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, object]] = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            tokens += token_count(item) if isinstance(item, str) else len(item)
            values = vector(text, dimensions)
            embedding: object = float32_base64(values) if as_base64 else values
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": self.model or self.echoed_model(request, body),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, fault: Fault) -> object:
        """`{"error": {"message", "type", "param", "code"}}`."""
        kind = fault.error_type or _ERROR_TYPES.get(status, "server_error")
        return _error_object(fault.error_message, kind, fault.error_code)

    def malformed_frame(self) -> bytes:
        """A data line cut off mid-JSON."""
        return _MALFORMED_FRAME

    def error_frame(self, fault: Fault) -> bytes:
        """OpenAI's in-stream `{"error": ...}` event."""
        kind = fault.error_type or "server_error"
        return sse(_error_object(fault.error_message, kind, fault.error_code))

    def echoed_model(self, request: web.Request, body: object) -> object:
        """The model a reply names when `model` is None: the requested one."""
        return body.get("model") if isinstance(body, dict) else None

    def _envelope(
        self, request: web.Request, body: dict[str, object], kind: str
    ) -> dict[str, object]:
        return {
            "id": f"chatcmpl-fake{self.served}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model or self.echoed_model(request, body),
            "system_fingerprint": "fp_fake",
        }

    def _usage(self, u: FakeUsage, choices: int = 1) -> dict[str, object]:
        completion = u.completion_tokens * choices
        return {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": u.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": u.reasoning_tokens * choices,
                "audio_tokens": 0,
            },
        }


def _choices(body: dict[str, object]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 1 else 1


def _error_object(message: str, kind: str, code: str | None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
