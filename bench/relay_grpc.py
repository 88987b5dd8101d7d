"""Ceiling references, not gateways: the least a grpc.aio server can do, with and without upstream.

- `RelayServicer` (`python -m bench.ceiling relay-grpc`): `gateway.v1.GatewayService`'s
  `Complete` and `StreamComplete`, each forwarded to the fake upstream with aiohttp's client and
  answered in the gateway's own protobuf messages (a `StreamCompleteResponse` per upstream
  chunk, the last with the finish reason and usage). No metadata read, no auth, validation,
  limits, routing, retries, cache, metrics, logs, usage or cost.
- `FixedServicer` (`python -m bench.ceiling grpc-fixed`): the same two methods answering with
  messages built once at start-up, the same ones the relay sends for the fake's answer: what
  grpc.aio itself costs per call and per streamed message on this machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from bench.relay_upstream import PROVIDER, Piece, UpstreamCall, upstream_session
from bench.upstream import CHUNKS, COMPLETION_ID, CONTENT, MODEL, USAGE
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc


def _messages(request: pb.CompleteRequest | pb.StreamCompleteRequest) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in request.messages]


def _stream_message(piece: Piece) -> pb.StreamCompleteResponse:
    if piece.finish_reason:
        return pb.StreamCompleteResponse(
            id=piece.id,
            model=piece.model,
            provider=PROVIDER,
            finish_reason=piece.finish_reason,
            usage=pb.Usage(**piece.usage),
        )
    return pb.StreamCompleteResponse(
        id=piece.id, model=piece.model, provider=PROVIDER, delta=piece.delta
    )


class _CompletionsOnly(pb_grpc.GatewayServiceServicer):
    """The service's other methods, which the bench never calls."""

    async def ProviderStatus(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.ProviderStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ProviderStatusResponse:
        """Not served."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a ceiling reference")
        raise AssertionError("unreachable: abort raises")

    async def Embed(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedResponse:
        """Not served."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a ceiling reference")
        raise AssertionError("unreachable: abort raises")

    async def GetUsage(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetUsageResponse:
        """Not served."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a ceiling reference")
        raise AssertionError("unreachable: abort raises")

    async def GetCosts(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.GetCostsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetCostsResponse:
        """Not served."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a ceiling reference")
        raise AssertionError("unreachable: abort raises")


class RelayServicer(_CompletionsOnly):
    """Forwards each call to the upstream; answers in `gateway.v1` messages."""

    def __init__(self, upstream_url: str) -> None:
        self._url = upstream_url
        self._session = upstream_session()

    async def aclose(self) -> None:
        """Close the upstream session."""
        await self._session.close()

    async def Complete(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompleteResponse:
        """One upstream call, one answer."""
        call = UpstreamCall(self._session, self._url)
        answer = await call.complete(request.model, _messages(request))
        choice = answer["choices"][0]
        return pb.CompleteResponse(
            id=answer["id"],
            model=answer["model"],
            provider=PROVIDER,
            content=choice["message"]["content"],
            finish_reason=choice["finish_reason"],
            usage=pb.Usage(**answer["usage"]),
        )

    async def StreamComplete(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.StreamCompleteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamCompleteResponse]:
        """A message per upstream chunk."""
        call = UpstreamCall(self._session, self._url)
        async for piece in call.stream(request.model, _messages(request)):
            yield _stream_message(piece)


class FixedServicer(_CompletionsOnly):
    """Answers every call with the same prebuilt messages; calls nothing."""

    def __init__(self) -> None:
        self._answer = pb.CompleteResponse(
            id=COMPLETION_ID,
            model=MODEL,
            provider=PROVIDER,
            content=CONTENT,
            finish_reason="stop",
            usage=pb.Usage(**USAGE),
        )
        delta = CONTENT[: len(CONTENT) // CHUNKS]
        pieces = [Piece(COMPLETION_ID, MODEL, delta=delta) for _ in range(CHUNKS)]
        pieces.append(Piece(COMPLETION_ID, MODEL, finish_reason="stop", usage=dict(USAGE)))
        self._stream = [_stream_message(piece) for piece in pieces]

    async def Complete(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompleteResponse:
        """The prebuilt answer."""
        return self._answer

    async def StreamComplete(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.StreamCompleteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamCompleteResponse]:
        """The prebuilt stream, a message at a time."""
        for message in self._stream:
            yield message
