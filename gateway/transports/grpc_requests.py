"""Request messages read by the gateway itself: bounded in time, decoded without surprises.

grpc's own unary handling receives and decodes the request before any of our code runs. A
message that does not decode (truncated, corrupted, invalid UTF-8) then ends UNKNOWN with the
parser's exception text, and grpc logs a traceback per call; a message cut short by END_STREAM
(its length prefix longer than its data) is never answered at all; a message that never comes
holds the call forever.

So every method is registered request-streaming (identical on the wire: one message, then the
half-close) and its handler reads the message itself, within `read_timeout` seconds, and decodes
it: a missing, incomplete or undecodable message is INVALID_ARGUMENT, one not sent in time is
DEADLINE_EXCEEDED, each with one short log line (`LogBudget`) and a metric. Request-streaming
methods (reflection) get each of their messages decoded the same way.

This wraps the generated `add_*Servicer_to_server` functions (ours, health, reflection): they
register with a `Registrar` standing in for the server, which guards each handler on its way in.

What grpc core handles before any handler exists stays out of reach: a malformed `grpc-timeout`
or `grpc-encoding` header, and a compressed-flag message without a usable encoding, are refused
by core with INTERNAL (and one line of its own on stderr).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from gateway.transports.log_budget import LogBudget
from metrics import REQUEST_READS_CUT, UNDECODABLE_REQUESTS, labeled

log = logging.getLogger("gateway.grpc")

Decode = Callable[[bytes], Any]
MISSING = "request message: missing or incomplete"
UNDECODABLE = "request message: undecodable (truncated, corrupted or not UTF-8)"


class RequestReader:
    """Reads and decodes request messages for the guarded handlers."""

    def __init__(self, read_timeout: float) -> None:
        self._timeout = read_timeout
        self._budget = LogBudget(log)

    def guard(self, method: str, handler: Any) -> Any:
        """`handler` (a `grpc.RpcMethodHandler`) made request-streaming, reading for itself."""
        decode: Decode = handler.request_deserializer or _as_is
        serialize = handler.response_serializer
        if handler.request_streaming:
            stream = handler.stream_stream or handler.stream_unary
            return _factory(handler)(
                self._decoding(method, stream, decode),
                request_deserializer=None,
                response_serializer=serialize,
            )
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streamed(method, handler.unary_stream, decode),
                request_deserializer=None,
                response_serializer=serialize,
            )
        return grpc.stream_unary_rpc_method_handler(
            self._unary(method, handler.unary_unary, decode),
            request_deserializer=None,
            response_serializer=serialize,
        )

    async def one(self, context: Any, method: str, decode: Decode) -> Any:
        """The call's one request message, decoded; aborts the call when it cannot be had."""
        # A bare timer, not `asyncio.timeout`: its object and bookkeeping cost every call
        # several microseconds for a bound that almost never fires.
        task = asyncio.current_task()
        assert task is not None  # a handler always runs in a task
        cut: list[bool] = []
        timer = asyncio.get_running_loop().call_later(self._timeout, _cut_read, task, cut)
        try:
            raw = await context.read()
        except asyncio.CancelledError:
            if not cut:
                raise
            task.uncancel()  # our own cancel: the read timed out
            labeled(REQUEST_READS_CUT, "grpc", "message").inc()
            self._budget.warning(
                "request message not received in time: call cut",
                rpc=method,
                seconds=self._timeout,
                peer=context.peer(),
            )
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"request message: not received within {self._timeout:g}s",
            )
        finally:
            timer.cancel()
        if raw is grpc.aio.EOF:
            return await self._refuse(context, method, MISSING, 0)
        return await self._decode(context, method, decode, raw)

    async def _decode(self, context: Any, method: str, decode: Decode, raw: bytes) -> Any:
        try:
            return decode(raw)
        except Exception:  # any deserializer's failure: the bytes are the caller's
            return await self._refuse(context, method, UNDECODABLE, len(raw))

    async def _refuse(self, context: Any, method: str, message: str, size: int) -> Any:
        labeled(UNDECODABLE_REQUESTS, "grpc").inc()
        self._budget.warning(
            "request message refused", rpc=method, reason=message, bytes=size, peer=context.peer()
        )
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    def _unary(self, method: str, behavior: Any, decode: Decode) -> Any:
        async def unary(requests: object, context: Any) -> Any:
            return await behavior(await self.one(context, method, decode), context)

        return unary

    def _streamed(self, method: str, behavior: Any, decode: Decode) -> Any:
        # grpc tells the two kinds of streaming handler apart by their function type.
        if inspect.isasyncgenfunction(behavior):

            async def generated(requests: object, context: Any) -> AsyncIterator[Any]:
                request = await self.one(context, method, decode)
                async for response in behavior(request, context):
                    yield response

            return generated

        async def written(requests: object, context: Any) -> None:
            await behavior(await self.one(context, method, decode), context)

        return written

    def _decoding(self, method: str, behavior: Any, decode: Decode) -> Any:
        async def requests(raw_requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[Any]:
            async for raw in raw_requests:
                yield await self._decode(context, method, decode, raw)

        if inspect.isasyncgenfunction(behavior):

            async def generated(raw_requests: Any, context: Any) -> AsyncIterator[Any]:
                async for response in behavior(requests(raw_requests, context), context):
                    yield response

            return generated

        async def awaited(raw_requests: Any, context: Any) -> Any:
            return await behavior(requests(raw_requests, context), context)

        return awaited


class Registrar:
    """Stands in for the server in generated `add_*Servicer_to_server` functions.

    Each service's handlers reach the server guarded by `reader`. A service registered only as
    a generic handler (older generated code) passes through as it is.
    """

    def __init__(self, server: grpc.aio.Server, reader: RequestReader) -> None:
        self._server = server
        self._reader = reader
        self._generic: list[Any] = []
        self._guarded: set[str] = set()

    def add(self, add_servicer: Callable[[Any, Any], None], servicer: object) -> None:
        """Register `servicer` through its generated `add_servicer` function."""
        self._generic.clear()
        add_servicer(servicer, self)
        for handler in self._generic:
            if handler.service_name() not in self._guarded:
                self._server.add_generic_rpc_handlers((handler,))

    def add_generic_rpc_handlers(self, handlers: tuple[Any, ...]) -> None:
        """What generated code calls first; held until we know whether it registers methods."""
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """What generated code calls with each method's handler: each is guarded."""
        guarded = {
            name: self._reader.guard(f"/{service}/{name}", handler)
            for name, handler in handlers.items()
        }
        self._guarded.add(service)
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, guarded),)
        )
        self._server.add_registered_method_handlers(service, guarded)


def _cut_read(task: asyncio.Task[Any], cut: list[bool]) -> None:
    cut.append(True)
    task.cancel()


def _as_is(raw: bytes) -> bytes:
    return raw


def _factory(handler: Any) -> Any:
    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler
    return grpc.stream_unary_rpc_method_handler
