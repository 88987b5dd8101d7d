"""A loopback fake of OpenAI's Chat Completions endpoint (`POST /v1/chat/completions`).

Bodies are `chat.completion` objects; streams are SSE `chat.completion.chunk` objects (a role
chunk, one chunk per delta, a finish chunk, a usage chunk when `stream_options.include_usage`)
ending with `data: [DONE]`; errors are `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from tests.fakes.base import FakeUsage, Fault, StreamPlan, VendorFake, sse

__all__ = ["FakeOpenAI", "FakeUsage", "Fault"]

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
    """A fake OpenAI server. `stream_usage=False` acts like a server ignoring `include_usage`."""

    path = "/v1/chat/completions"

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

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `http://127.0.0.1:{port}/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def add_routes(self, app: web.Application) -> None:
        """`POST /v1/chat/completions`."""
        app.router.add_post(self.path, self.handle)

    def credential(self, request: web.Request) -> str:
        """The bearer token."""
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def validate(self, request: web.Request, body: object) -> web.Response | None:
        """OpenAI requires `messages`."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            error = {"message": "'messages' is a required property", "type": ""}
            return self.json_response({"error": {**error, "param": None, "code": None}}, status=400)
        return None

    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """`"stream": true` in the body."""
        return body.get("stream") is True

    def completion(self, request: web.Request, body: dict[str, object]) -> object:
        """A `chat.completion`."""
        message: dict[str, object] = {"role": "assistant", "content": self.reply}
        message |= {"refusal": None, "annotations": []}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason or "stop",
        }
        envelope = self._envelope(request, body, "chat.completion")
        return {**envelope, "choices": [choice], "usage": self._usage(), "service_tier": "default"}

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        """Role chunk, one chunk per delta, finish chunk, usage chunk, `[DONE]`."""
        options = body.get("stream_options")
        with_usage = (
            self.stream_usage and isinstance(options, dict) and options.get("include_usage") is True
        )
        envelope = self._envelope(request, body, "chat.completion.chunk")
        if with_usage:
            envelope["usage"] = None  # OpenAI sends an explicit null until the usage chunk

        def frame(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return sse({**envelope, "choices": [choice]})

        frames = [frame({"role": "assistant", "content": "", "refusal": None})]
        frames += [frame({"content": piece}) for piece in self.deltas]
        frames.append(frame({}, self.finish_reason or "stop"))
        if with_usage:
            frames.append(sse({**envelope, "choices": [], "usage": self._usage()}))
        return StreamPlan([*frames, _DONE_FRAME], first_content=1, content=len(self.deltas))

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

    def echoed_model(self, request: web.Request, body: dict[str, object]) -> object:
        """The model a reply names when `model` is None: the requested one."""
        return body.get("model")

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

    def _usage(self) -> dict[str, object]:
        u = self.usage
        return {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }


def _error_object(message: str, kind: str, code: str | None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
