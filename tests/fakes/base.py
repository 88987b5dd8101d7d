"""What every loopback vendor fake shares: the server, recording, scripts and faults on demand.

A vendor fake subclasses `VendorFake` and supplies only its wire format: its routes, its
completion body and stream frames for an `Answer` (content frames marked, so faults can cut
after N of them), the checks its vendor makes (raising `Rejected`, rendered as the vendor's own
400 body), its error body for a status, and how its stream breaks in the vendor's own way. The
base serves on 127.0.0.1 (an ephemeral port), records every request it answers (with the
credential it carried) and every one it refuses, hands out the scripted answers
(`fake.script(Answer(...))`, see `tests.fakes.script`) in order, applies `Fault`s, and notices
clients that leave mid-request. Fakes that serve embeddings route them through `embeddings`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import ClassVar, Literal, Self

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.rules import Rejected
from tests.fakes.script import Answer, Minter, ToolCall, pieces

__all__ = [
    "Answer",
    "FakeUsage",
    "Fault",
    "RecordedRequest",
    "Rejected",
    "Rejection",
    "StreamPlan",
    "ToolCall",
    "VendorFake",
    "sse",
]

#: How a stream breaks once `Fault.break_after` content frames were sent: drop the connection
#: ("cut"), end the body cleanly without the terminal event ("eof"), send a frame that is not
#: JSON ("malformed"), or send the vendor's in-stream error event ("error_event").
StreamBreak = Literal["cut", "eof", "malformed", "error_event"]


@dataclass(frozen=True, slots=True)
class Fault:
    """How the fake misbehaves on one request. Fields combine; the defaults behave normally."""

    #: Answer with this HTTP status and the vendor's error body instead of a completion.
    status: int | None = None
    error_message: str = "The fake server was told to fail this request."
    #: The vendor's error type/code, where its error body has one (the fake picks a fitting
    #: default for the status when empty).
    error_type: str = ""
    error_code: str | None = None
    #: Extra response headers, such as `retry-after` or `retry-after-ms`.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds to wait before sending the status line.
    delay: float = 0.0
    #: Reply with exactly these bytes (with `status`, default 200): not JSON, or off the schema.
    raw_body: bytes | None = None
    #: Seconds to wait before each content frame of a stream.
    chunk_delay: float = 0.0
    #: Break the stream after this many content frames, the way `break_with` says.
    break_after: int | None = None
    break_with: StreamBreak = "cut"
    #: Write each stream frame in pieces of this many bytes (splits multi-byte characters).
    fragment: int | None = None


@dataclass(frozen=True, slots=True)
class FakeUsage:
    """The token counts the fake reports, in our terms; each fake renders them its vendor's way.

    `prompt_tokens` counts every prompt token, cached ones included (vendors that report
    uncached input separately get `prompt_tokens - cached_tokens - cache_creation_tokens`).
    """

    prompt_tokens: int = 12
    completion_tokens: int = 5
    cached_tokens: int = 4
    cache_creation_tokens: int = 0
    #: Of `completion_tokens`, how many the model spent reasoning (vendors that report it).
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    #: As sent; look-ups ignore case.
    headers: CIMultiDictProxy[str]
    body: dict[str, object]
    path: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    #: The credential the request carried ("" when none), read from the vendor's auth header.
    key: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request the fake refused the way its vendor would, and what it answered."""

    request: RecordedRequest
    status: int
    body: object

    @property
    def message(self) -> str:
        """The vendor's error text, wherever its error body keeps it."""
        return _error_text(self.body)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """A whole stream: `frames[:first_content]` lead in, then `content` content frames."""

    frames: list[bytes]
    first_content: int
    content: int
    content_type: str = "text/event-stream"


_NO_FAULT = Fault()


class VendorFake(ABC):
    """A fake vendor server; use `async with Fake() as fake:` or `start()`/`close()`.

    What the model says comes from `script(...)`'s queue, one `Answer` per chat request; with
    the queue empty it is `reply` (None: no text) with `finish_reason` (in the vendor's words;
    None for the vendor's normal stop). `model` (None echoes the requested model) and `usage`
    may be changed between requests. `requests` holds what the fake answered, `rejections`
    what it refused as its vendor would.
    """

    #: The vendor's name: seeds the ids and signatures the fake mints.
    vendor: ClassVar[str] = "vendor"
    #: Whether the vendor may send a tool call without an id (`ToolCall(with_id=False)`).
    ids_optional: ClassVar[bool] = False

    def __init__(
        self,
        *,
        reply: str | None = "Hello from the fake",
        model: str | None = None,
        usage: FakeUsage | None = None,
        finish_reason: str | None = None,
    ) -> None:
        self.reply = reply
        self.model = model
        self.usage = usage or FakeUsage()
        self.finish_reason = finish_reason
        self.persistent_fault: Fault | None = None
        self.requests: list[RecordedRequest] = []
        self.rejections: list[Rejection] = []
        self.answers: deque[Answer] = deque()
        #: The answer of the request being answered (set just before it is rendered).
        self.answer = Answer()
        self.minter = Minter(self.vendor)
        self.request_received = asyncio.Event()
        self.client_disconnected = asyncio.Event()
        self.disconnects = 0
        self.served = 0
        self._faults: deque[Fault] = deque()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- what a vendor fake supplies -------------------------------------------------------

    @property
    @abstractmethod
    def base_url(self) -> str:
        """The base URL an adapter is configured with."""

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Route the vendor's paths to `self.handle`."""

    @abstractmethod
    def credential(self, request: web.Request) -> str:
        """The key the request carried, from the vendor's auth header ("" when none)."""

    @abstractmethod
    def is_stream(self, request: web.Request, body: dict[str, object]) -> bool:
        """Whether the request asks for a stream."""

    @abstractmethod
    def render_completion(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> object:
        """The vendor's JSON body for a whole completion saying `answer`."""

    @abstractmethod
    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        """Every frame of a normal stream saying `answer`."""

    def completion(self, request: web.Request, body: dict[str, object]) -> object:
        """The JSON body of a whole completion saying the answer being given (`self.answer`)."""
        return self.render_completion(request, body, self.answer)

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        """Every frame of a normal stream saying the answer being given (`self.answer`)."""
        return self.render_stream(request, body, self.answer)

    @abstractmethod
    def error_body(self, status: int, fault: Fault) -> object:
        """The vendor's JSON error body for `status`."""

    @abstractmethod
    def malformed_frame(self) -> bytes:
        """A stream frame that does not parse."""

    @abstractmethod
    def error_frame(self, fault: Fault) -> bytes:
        """The vendor's in-stream error event."""

    def check(self, request: web.Request, body: object) -> None:  # noqa: B027 -- most vendors check
        """Raise `Rejected` for a body the vendor would refuse (the base refuses nothing)."""

    def rejection_body(self, rejection: Rejected) -> object:
        """The vendor's error body for a request it refuses (its error body for the status)."""
        return self.error_body(rejection.status, Fault(error_message=rejection.message))

    def validate(self, request: web.Request, body: object) -> web.Response | None:
        """The vendor's error response for a body it would refuse, else None."""
        try:
            self.check(request, body)
        except Rejected as rejection:
            return self.json_response(self.rejection_body(rejection), status=rejection.status)
        return None

    def is_embedding(self, request: web.Request) -> bool:
        """Whether the request is for the vendor's embeddings endpoint."""
        return False

    def embeddings(self, request: web.Request, body: dict[str, object]) -> object:
        """The vendor's JSON body answering an embeddings request."""
        raise NotImplementedError(f"{type(self).__name__} serves no embeddings")

    def mint_call_id(self, call: ToolCall) -> str:
        """A new tool-call id in the vendor's style."""
        return "call_" + self.minter.token("call", 24)

    def default_answer(self) -> Answer:
        """What the model says when no answer is scripted: `reply`, `finish_reason`, `usage`."""
        return Answer(text=self.reply, vendor_finish=self.finish_reason)

    # -- shared behaviour ------------------------------------------------------------------

    @property
    def deltas(self) -> list[str]:
        """The text pieces a stream of `reply` is split into: one word and its spaces each."""
        return pieces(self.reply)

    def script(self, *answers: Answer) -> None:
        """Say these answers to the next chat requests, one each, in order."""
        self.answers.extend(answers)

    def take_answer(self) -> Answer:
        """The next scripted answer (else `default_answer()`), each call given its id."""
        answer = self.answers.popleft() if self.answers else self.default_answer()
        calls = [
            call
            if call.id is not None or (self.ids_optional and not call.with_id)
            else replace(call, id=self.mint_call_id(call))
            for call in answer.tool_calls
        ]
        return replace(answer, tool_calls=tuple(calls))

    def usage_of(self, answer: Answer) -> FakeUsage:
        """The token counts reported for `answer`: its own, else the fake's."""
        return answer.usage or self.usage

    @property
    def keys_seen(self) -> list[str]:
        """The credential of each request, in order."""
        return [r.key for r in self.requests]

    def fail_next(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, one each, in order."""
        self._faults.extend(faults)

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        self.add_routes(app)
        # handler_cancellation: a client that leaves cancels the handler, which is how we see it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def json_response(
        self, body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """A JSON response (orjson-encoded)."""
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers=headers,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The one handler: record, apply the fault, answer the vendor's way."""
        fault = self._faults.popleft() if self._faults else self.persistent_fault or _NO_FAULT
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            refused = self.json_response(self.error_body(400, _NO_FAULT), status=400)
            self._note_rejection(request, {}, refused)
            return refused
        record = RecordedRequest(
            request.headers, body, request.path, dict(request.query), self.credential(request)
        )
        rejected = self.validate(request, body)
        if rejected is not None:
            self.rejections.append(Rejection(record, rejected.status, _body_of(rejected)))
            return rejected
        self.requests.append(record)
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
            error = self.error_body(fault.status, fault)
            return self.json_response(error, status=fault.status, headers=fault.headers)
        self.served += 1
        if self.is_embedding(request):
            return self.json_response(self.embeddings(request, body), headers=fault.headers)
        self.answer = self.take_answer()
        if self.is_stream(request, body):
            return await self._stream(request, body, fault)
        return self.json_response(self.completion(request, body), headers=fault.headers)

    async def _stream(
        self, request: web.Request, body: dict[str, object], fault: Fault
    ) -> web.StreamResponse:
        plan = self.stream_plan(request, body)
        first, content = plan.first_content, plan.content
        stop = len(plan.frames)
        if fault.break_after is not None:
            stop = first + min(fault.break_after, content)
        response = web.StreamResponse(headers={**fault.headers, "Cache-Control": "no-cache"})
        response.content_type = plan.content_type
        await response.prepare(request)
        try:
            for index, payload in enumerate(plan.frames[:stop]):
                if fault.chunk_delay and first <= index < first + content:
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
            await response.write(self.malformed_frame())
        elif fault.break_with == "error_event":
            await response.write(self.error_frame(fault))
        await response.write_eof()

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self.client_disconnected.set()

    def _note_rejection(
        self, request: web.Request, body: dict[str, object], refused: web.Response
    ) -> None:
        record = RecordedRequest(
            request.headers, body, request.path, dict(request.query), self.credential(request)
        )
        self.rejections.append(Rejection(record, refused.status, _body_of(refused)))


def _body_of(response: web.Response) -> object:
    """The JSON a refusal carried."""
    raw = response.body
    return orjson.loads(raw) if isinstance(raw, bytes) and raw else None


def _error_text(body: object) -> str:
    """The message of any vendor's error body: `error.message`, `message`, or `error`."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return ""


def sse(obj: object, event: str | None = None) -> bytes:
    """One Server-Sent Event carrying `obj` as JSON (with an `event:` line when named)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


async def _write(response: web.StreamResponse, payload: bytes, fragment: int | None) -> None:
    if not fragment:
        await response.write(payload)
        return
    for start in range(0, len(payload), fragment):
        await response.write(payload[start : start + fragment])
        await asyncio.sleep(0.001)  # let each piece leave as its own read on the client
