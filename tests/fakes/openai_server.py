"""A loopback fake of OpenAI's Chat Completions endpoint, with faults on demand.

`FakeOpenAI` is a real aiohttp server on 127.0.0.1 (an ephemeral port) that answers
`POST /v1/chat/completions` in OpenAI's wire format: `chat.completion` bodies, or SSE streams of
`chat.completion.chunk` objects ending with a usage chunk (when `stream_options.include_usage`)
and `data: [DONE]`; errors as `{"error": {"message", "type", "param", "code"}}`.

It records every request (`requests`, `request_received`) and notices clients that leave mid-request
(`client_disconnected`, `disconnects`). Misbehaviour is described by a `Fault`: queue one for the
next request with `fail_next(...)`, or set `persistent_fault` for every request after the queue.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

#: How a stream breaks once `Fault.break_after` content chunks were sent: drop the connection
#: ("cut"), end the body cleanly without `[DONE]` ("eof"), send a data line that is not JSON
#: ("malformed"), or send an OpenAI `{"error": ...}` event ("error_event").
StreamBreak = Literal["cut", "eof", "malformed", "error_event"]

_PATH = "/v1/chat/completions"
_MALFORMED_FRAME = b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
_DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Fault:
    """How the fake misbehaves on one request. Fields combine; the defaults behave normally."""

    #: Answer with this HTTP status and an OpenAI error body instead of a completion.
    status: int | None = None
    error_message: str = "The fake server was told to fail this request."
    error_type: str = "server_error"
    error_code: str | None = None
    #: Extra response headers, such as `retry-after` or `retry-after-ms`.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds to wait before sending the status line.
    delay: float = 0.0
    #: Reply with exactly these bytes (with `status`, default 200): not JSON, or off the schema.
    raw_body: bytes | None = None
    #: Seconds to wait before each content chunk of a stream.
    chunk_delay: float = 0.0
    #: Break the stream after this many content chunks, the way `break_with` says.
    break_after: int | None = None
    break_with: StreamBreak = "cut"
    #: Write each stream frame in pieces of this many bytes (splits multi-byte characters).
    fragment: int | None = None


@dataclass(frozen=True, slots=True)
class FakeUsage:
    """The token counts the fake reports."""

    prompt_tokens: int = 12
    completion_tokens: int = 5
    cached_tokens: int = 4


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    #: As sent; look-ups ignore case.
    headers: CIMultiDictProxy[str]
    body: dict[str, object]


_NO_FAULT = Fault()


class FakeOpenAI:
    """A fake OpenAI server; use `async with FakeOpenAI() as fake:` or `start()`/`close()`.

    `reply` (None sends `"content": null`), `model` (None echoes the requested model),
    `usage`, `finish_reason` and `stream_usage` (False acts like a server that ignores
    `include_usage`) may be changed between requests.
    """

    def __init__(
        self,
        *,
        reply: str | None = "Hello from fake OpenAI",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str = "stop",
        stream_usage: bool = True,
    ) -> None:
        self.reply = reply
        self.model = model
        self.usage = usage or FakeUsage()
        self.finish_reason = finish_reason
        self.stream_usage = stream_usage
        self.persistent_fault: Fault | None = None
        self.requests: list[RecordedRequest] = []
        self.request_received = asyncio.Event()
        self.client_disconnected = asyncio.Event()
        self.disconnects = 0
        self._faults: deque[Fault] = deque()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._served = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `http://127.0.0.1:{port}/v1`."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def deltas(self) -> list[str]:
        """The content pieces a stream of `reply` is split into (one per word)."""
        return re.findall(r"\S+\s*|\s+", self.reply or "")

    def fail_next(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, one each, in order."""
        self._faults.extend(faults)

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post(_PATH, self._handle)
        # handler_cancellation: a client that leaves cancels the handler, which is how we see it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._faults.popleft() if self._faults else self.persistent_fault or _NO_FAULT
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property")
        self.requests.append(RecordedRequest(request.headers, body))
        self.request_received.set()
        try:
            return await self._answer(request, body, fault)
        except asyncio.CancelledError:
            self._note_disconnect()
            raise

    async def _answer(
        self, request: web.Request, body: dict[str, object], fault: Fault
    ) -> web.StreamResponse:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.raw_body is not None:
            return web.Response(
                status=fault.status or 200,
                body=fault.raw_body,
                content_type="application/json",
                headers=fault.headers,
            )
        if fault.status is not None:
            return _error(
                fault.status,
                fault.error_message,
                kind=fault.error_type,
                code=fault.error_code,
                headers=fault.headers,
            )
        self._served += 1
        if body.get("stream") is True:
            return await self._stream(request, body, fault)
        return web.Response(
            body=orjson.dumps(self._completion(body)),
            content_type="application/json",
            headers=fault.headers,
        )

    def _completion(self, body: dict[str, object]) -> dict[str, object]:
        message: dict[str, object] = {"role": "assistant", "content": self.reply}
        message |= {"refusal": None, "annotations": []}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason,
        }
        envelope = self._envelope(body, "chat.completion")
        return {**envelope, "choices": [choice], "usage": self._usage(), "service_tier": "default"}

    def _envelope(self, body: dict[str, object], kind: str) -> dict[str, object]:
        return {
            "id": f"chatcmpl-fake{self._served}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model or body.get("model"),
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

    def _frames(self, body: dict[str, object]) -> list[bytes]:
        """The whole stream: role chunk, one chunk per delta, finish chunk, usage, [DONE]."""
        options = body.get("stream_options")
        with_usage = (
            self.stream_usage and isinstance(options, dict) and options.get("include_usage") is True
        )
        envelope = self._envelope(body, "chat.completion.chunk")
        if with_usage:
            envelope["usage"] = None  # OpenAI sends an explicit null until the usage chunk

        def frame(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _data({**envelope, "choices": [choice]})

        frames = [frame({"role": "assistant", "content": "", "refusal": None})]
        frames += [frame({"content": piece}) for piece in self.deltas]
        frames.append(frame({}, self.finish_reason))
        if with_usage:
            frames.append(_data({**envelope, "choices": [], "usage": self._usage()}))
        return [*frames, _DONE_FRAME]

    async def _stream(
        self, request: web.Request, body: dict[str, object], fault: Fault
    ) -> web.StreamResponse:
        frames = self._frames(body)
        content = len(self.deltas)
        stop = len(frames) if fault.break_after is None else 1 + min(fault.break_after, content)
        response = web.StreamResponse(headers={**fault.headers, "Cache-Control": "no-cache"})
        response.content_type = "text/event-stream"
        await response.prepare(request)
        try:
            for index, payload in enumerate(frames[:stop]):
                if fault.chunk_delay and 1 <= index <= content:
                    await asyncio.sleep(fault.chunk_delay)
                await _write(response, payload, fault.fragment)
            if fault.break_after is not None:
                await self._break(request, response, fault)
        except ConnectionResetError:  # the client left while we were writing
            self._note_disconnect()
        return response

    async def _break(
        self, request: web.Request, response: web.StreamResponse, fault: Fault
    ) -> None:
        if fault.break_with == "cut":
            if request.transport is not None:
                request.transport.close()  # flushes what was written, then drops the connection
            return
        if fault.break_with == "malformed":
            await response.write(_MALFORMED_FRAME)
        elif fault.break_with == "error_event":
            error = _error_object(fault.error_message, fault.error_type, fault.error_code)
            await response.write(_data(error))
        await response.write_eof()

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self.client_disconnected.set()


def _data(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _write(response: web.StreamResponse, payload: bytes, fragment: int | None) -> None:
    if not fragment:
        await response.write(payload)
        return
    for start in range(0, len(payload), fragment):
        await response.write(payload[start : start + fragment])
        await asyncio.sleep(0.001)  # let each piece leave as its own read on the client


def _error_object(message: str, kind: str, code: str | None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(_error_object(message, kind, code)),
        content_type="application/json",
        headers=headers,
    )
