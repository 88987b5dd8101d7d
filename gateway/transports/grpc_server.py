"""The gRPC transport: `gateway.v1.GatewayService`, `grpc.health.v1.Health` and reflection.

The servicer only translates: call metadata into a `CallContext`, core errors into gRPC
statuses (here and nowhere else: a `Code` is the `grpc.StatusCode` of the same name). The
health servicer reports `NOT_SERVING` until the gateway is ready and again from the moment it
starts draining.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, NoReturn, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

from gateway.config.settings import DEFAULT_BODY_READ_TIMEOUT_SECONDS, GrpcSettings
from gateway.errors import Code, GatewayError
from gateway.pipeline.call import CallContext
from gateway.pipeline.coalesce import Coalescer
from gateway.pipeline.ids import request_id_from, request_id_var
from gateway.pipeline.service import CompletionService
from gateway.tenancy.admin import AdminCore
from gateway.transports.admin_convert import (
    costs_message,
    created_key_message,
    keys_message,
    limits_of,
    report_query,
    usage_message,
)
from gateway.transports.coalesced import COALESCING_HEADER, batch_message, merging
from gateway.transports.grpc_requests import Registrar, RequestReader
from gateway.transports.proto_convert import (
    complete_response,
    completion_request,
    provider_status_response,
)
from gateway.transports.proto_embed import embed_response, embedding_request
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from metrics.tracing import spans_recorded

log = logging.getLogger("gateway.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
ADMIN_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AdminService"].full_name
ResponseT = TypeVar("ResponseT")
REQUEST_ID_KEY = "x-request-id"
#: The metadata keys a call's context and trace are made from.
_READ: Final = frozenset(
    (
        REQUEST_ID_KEY,
        "authorization",
        "x-provider",
        "x-request-timeout",
        COALESCING_HEADER,
        *propagate.get_global_textmap().fields,
    )
)
#: Each caller error code as a gRPC status: the same name.
GRPC_STATUS: Final[dict[Code, grpc.StatusCode]] = {
    code: grpc.StatusCode[code.name] for code in Code
}


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    """`GatewayService` over gRPC, backed by the core."""

    def __init__(self, core: CompletionService, admin: AdminCore) -> None:
        self._core = core
        self._admin = admin

    async def Complete(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompleteResponse:
        """Serve one unary completion."""
        answer = await _unary(
            context, lambda c: self._core.complete(completion_request(request), c)
        )
        return complete_response(answer)

    async def StreamComplete(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.StreamCompleteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamCompleteResponse]:
        """Serve one streamed completion, coalescing what waits while a write is under way."""
        call, merge = await _begin_stream(context)
        stream = Coalescer(
            self._core.stream_complete(completion_request(request), call), merge=merge
        )
        try:
            while True:
                batches = await stream.take()
                ended = stream.finished  # then every batch is in this take
                for batch in batches:
                    # grpc resumes the generator once the message is written: the time the
                    # coalescer gathers what comes next.
                    yield batch_message(batch)
                if ended:
                    break
        finally:
            await stream.aclose()
        if stream.error is not None:
            await _abort(context, stream.error)

    async def Embed(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedResponse:
        """Serve one embedding call."""
        answer = await _unary(context, lambda c: self._core.embed(embedding_request(request), c))
        return embed_response(answer)

    async def ProviderStatus(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.ProviderStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ProviderStatusResponse:
        """Report provider deployments."""
        entries = await _unary(context, lambda c: self._core.provider_status(request.provider, c))
        return provider_status_response(entries)

    async def GetUsage(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetUsageResponse:
        """Report usage by day and model."""

        async def serve(call: CallContext) -> pb.GetUsageResponse:
            rows = await self._admin.get_usage(report_query(request), call.authorization)
            return usage_message(rows)

        return await _unary(context, serve)

    async def GetCosts(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.GetCostsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetCostsResponse:
        """Report spend."""

        async def serve(call: CallContext) -> pb.GetCostsResponse:
            costs = await self._admin.get_costs(report_query(request), call.authorization)
            return costs_message(costs)

        return await _unary(context, serve)


class AdminServicer(pb_grpc.AdminServiceServicer):
    """`AdminService` over gRPC, backed by the admin core."""

    def __init__(self, admin: AdminCore) -> None:
        self._admin = admin

    async def CreateApiKey(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.CreateApiKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateApiKeyResponse:
        """Create a key."""

        async def serve(call: CallContext) -> pb.CreateApiKeyResponse:
            created = await self._admin.create_api_key(
                request.tenant, request.name, limits_of(request), call.authorization
            )
            return created_key_message(created)

        return await _unary(context, serve)

    async def ListApiKeys(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.ListApiKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListApiKeysResponse:
        """List keys."""

        async def serve(call: CallContext) -> pb.ListApiKeysResponse:
            return keys_message(await self._admin.list_api_keys(request.tenant, call.authorization))

        return await _unary(context, serve)

    async def RevokeApiKey(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.RevokeApiKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RevokeApiKeyResponse:
        """Revoke a key."""

        async def serve(call: CallContext) -> pb.RevokeApiKeyResponse:
            key_id = await self._admin.revoke_api_key(request.id, call.authorization)
            return pb.RevokeApiKeyResponse(id=key_id)

        return await _unary(context, serve)

    async def SetTenantLimits(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: pb.SetTenantLimitsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetTenantLimitsResponse:
        """Set a tenant's limits."""

        async def serve(call: CallContext) -> pb.SetTenantLimitsResponse:
            limits = limits_of(request)
            tenant = await self._admin.set_tenant_limits(request.tenant, limits, call.authorization)
            return pb.SetTenantLimitsResponse(tenant=tenant)

        return await _unary(context, serve)


async def _unary(
    context: grpc.aio.ServicerContext[Any, Any],
    serve: Callable[[CallContext], Awaitable[ResponseT]],
) -> ResponseT:
    """Serve a unary call from its metadata, mapping errors to statuses (here, once)."""
    call = _begin(context)
    try:
        return await serve(call)
    except GatewayError as exc:
        await _abort(context, exc)
    except Exception:
        await _abort_internal(context)


def create_server(
    core: CompletionService,
    admin: AdminCore,
    *,
    max_message_bytes: int,
    connections: GrpcSettings | None = None,
    reuse_port: bool = False,
    read_timeout: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS,
) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    """A gRPC server with the gateway, health and reflection services added (not started).

    `reuse_port` lets worker processes bind the same port (the kernel spreads connections).
    Every method reads its request message itself, within `read_timeout` (`grpc_requests`).
    """
    server = grpc.aio.server(
        interceptors=_tracing_interceptors(),
        options=server_options(max_message_bytes, connections, reuse_port=reuse_port),
    )
    services = Registrar(server, RequestReader(read_timeout))
    services.add(pb_grpc.add_GatewayServiceServicer_to_server, GatewayServicer(core, admin))
    services.add(pb_grpc.add_AdminServiceServicer_to_server, AdminServicer(admin))
    health = health_aio.HealthServicer()
    services.add(health_pb2_grpc.add_HealthServicer_to_server, health)
    reflected = (
        SERVICE_NAME,
        ADMIN_SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    services.add(
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer(reflected),
    )
    return server, health


def _tracing_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """A server span per GatewayService call when spans are recorded; else none at all.

    With the API's no-op tracer the interceptor's span would be thrown away, yet it costs
    several percent of a call: `_begin` then only continues the caller's trace context.
    """
    if not spans_recorded():
        return []
    # Only ours: the interceptor assumes async-generator handlers, which Health.Watch is not.
    only_ours = filters.service_name(SERVICE_NAME)
    return [aio_server_interceptor(filter_=only_ours)]  # type: ignore[no-untyped-call]


def server_options(
    max_message_bytes: int, connections: GrpcSettings | None, *, reuse_port: bool = False
) -> list[tuple[str, int]]:
    """gRPC core options: message sizes, connection age and keepalive enforcement."""
    c = connections or GrpcSettings()
    ms = 1000
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", c.max_send_message_bytes),
        # Off unless asked: a second gateway started by mistake must fail to bind, not share.
        ("grpc.so_reuseport", int(reuse_port)),
        # Close connections past this age (GOAWAY, then in-flight calls get the grace): a client
        # holding one connection for hours would otherwise never reach new replicas.
        ("grpc.max_connection_age_ms", round(c.max_connection_age * ms)),
        ("grpc.max_connection_age_grace_ms", round(c.max_connection_age_grace * ms)),
        ("grpc.keepalive_time_ms", round(c.keepalive_time * ms)),
        ("grpc.keepalive_timeout_ms", round(c.keepalive_timeout * ms)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Clients pinging more often than this are told off (GOAWAY after repeated strikes).
        ("grpc.http2.min_recv_ping_interval_without_data_ms", round(c.min_ping_interval * ms)),
        ("grpc.http2.max_ping_strikes", 2),
    ]


async def set_serving(health: health_aio.HealthServicer, serving: bool) -> None:
    """Report the overall and per-service health as SERVING or NOT_SERVING."""
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else (health_pb2.HealthCheckResponse.NOT_SERVING)
    )
    for service in ("", SERVICE_NAME):
        await health.set(service, status)


def _begin(context: grpc.aio.ServicerContext[Any, Any]) -> CallContext:
    """Read a unary call's metadata and bind its request id to the logs.

    The id goes back in the trailing metadata, which leaves with the answer (or the error): a
    separate initial-metadata write would cost every call a batch of its own.
    """
    call, _ = _call_context(context)
    context.set_trailing_metadata(((REQUEST_ID_KEY, call.request_id),))
    return call


async def _begin_stream(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[CallContext, bool]:
    """Read a stream's metadata, bind its request id to the logs and send the id back at once.

    Also says whether the stream is coalesced (the caller's `x-stream-coalescing`).
    """
    call, metadata = _call_context(context)
    await context.send_initial_metadata(((REQUEST_ID_KEY, call.request_id),))
    return call, merging(metadata.get(COALESCING_HEADER))


def _call_context(
    context: grpc.aio.ServicerContext[Any, Any],
) -> tuple[CallContext, dict[str, str]]:
    metadata = _metadata(context.invocation_metadata() or ())
    if "traceparent" in metadata and not spans_recorded():
        # No interceptor span: continue the caller's trace (logs, upstream calls) by hand.
        otel_context.attach(propagate.extract(metadata))
    request_id = request_id_from(metadata.get(REQUEST_ID_KEY))
    request_id_var.set(request_id)
    remaining = context.time_remaining()
    deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
    call = CallContext(
        transport="grpc",
        request_id=request_id,
        authorization=metadata.get("authorization"),
        provider_pin=metadata.get("x-provider") or None,
        deadline=deadline,
        timeout_header=metadata.get("x-request-timeout"),
    )
    return call, metadata


def _metadata(pairs: Sequence[tuple[str, str | bytes]]) -> dict[str, str]:
    """The metadata the gateway reads; the rest (user agent, grpc's own) is not copied."""
    return {key: value for key, value in pairs if key in _READ and isinstance(value, str)}


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: GatewayError) -> NoReturn:
    trailing = _id_trailer() + tuple((k.lower(), v) for k, v in exc.headers)
    if exc.retry_after is not None:
        # gRPC's own pushback trailer (read by clients' retry policies), and the plain seconds.
        seconds = max(exc.retry_after, 0.0)
        trailing += (
            ("grpc-retry-pushback-ms", str(round(seconds * 1000))),
            ("retry-after", str(max(1, math.ceil(seconds)))),
        )
    await context.abort(GRPC_STATUS[exc.code], exc.message, trailing_metadata=trailing)
    raise AssertionError("unreachable: abort raises")


async def _abort_internal(context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
    log.exception("unexpected error while serving a call")
    await context.abort(grpc.StatusCode.INTERNAL, "internal error", trailing_metadata=_id_trailer())
    raise AssertionError("unreachable: abort raises")


def _id_trailer() -> tuple[tuple[str, str], ...]:
    """The call's request id for an abort's trailers (they replace those set at the start)."""
    request_id = request_id_var.get()
    return () if request_id is None else ((REQUEST_ID_KEY, request_id),)
