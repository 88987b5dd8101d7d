"""The JSON transport: the same calls as the gRPC service, over HTTP/1.1 with aiohttp.

Bodies follow the proto3 JSON mapping: they are parsed into the very request messages the gRPC
server receives (both `snake_case` and `lowerCamelCase` accepted, unknown fields rejected) and
responses are rendered from the response messages with `snake_case` names (`json_codec` does
both, keeping the completion calls off `json_format`). Errors are mapped in one middleware to
`{"error": {"code", "message", "request_id"}}` with the canonical HTTP status.

Routes: `POST /v1/complete` (with `"stream": true` it streams), `POST /v1/complete:stream`
(Server-Sent Events, `sse`), `POST /v1/embed`, `GET /v1/providers/status`, the admin and usage
routes (`http_admin`), the OpenAI-compatible routes (`openai_http`), `GET /healthz` (liveness)
and `GET /readyz` (readiness).

A route with a body authenticates the caller from its headers first, then reads the body within
its time bound (`http_bodies`); the connections themselves are watched by `http_guard`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson
from aiohttp import web
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, StatusCode, get_current_span

from gateway.config.settings import (
    DEFAULT_BODY_READ_TIMEOUT_SECONDS,
    DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
)
from gateway.errors import (
    BodyTimeoutError,
    Code,
    GatewayError,
    InternalError,
    InvalidArgumentError,
    ModelNotFoundError,
    PayloadTooLargeError,
    UnsupportedEncodingError,
)
from gateway.pipeline.call import CallContext
from gateway.pipeline.ids import request_id_from, request_id_var
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import Attempt
from gateway.tenancy.admin import AdminCore
from gateway.tenancy.auth import Identity
from gateway.transports.coalesced import COALESCING_HEADER, merging
from gateway.transports.http_admin import add_admin_routes
from gateway.transports.http_bodies import (
    BODY_TIMEOUT_KEY,
    JSON_CONTENT_TYPE,
    MAX_BYTES_KEY,
    message_response,
    read_json_object,
)
from gateway.transports.http_guard import GUARD_KEY, ConnectionGuard
from gateway.transports.json_codec import (
    parse_completion_request,
    parse_message,
    render_completion,
)
from gateway.transports.proto_convert import (
    complete_response,
    completion_request,
    provider_status_response,
)
from gateway.transports.proto_embed import embed_response, embedding_request
from gateway.transports.sse import serve_sse
from gateway.v1 import gateway_pb2 as pb
from metrics.tracing import spans_recorded, tracer

if TYPE_CHECKING:
    from gateway.transports.openai_http import OpenAIOptions

log = logging.getLogger("gateway.http")

REQUEST_ID = web.RequestKey("request_id", str)
_PROBES = frozenset({"/healthz", "/readyz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORE_KEY = web.AppKey("core", CompletionService)


class Readiness(Protocol):
    """Tells the readiness probe whether the gateway takes new calls."""

    @property
    def ready(self) -> bool:
        """False while starting and draining."""
        ...


READINESS_KEY = web.AppKey("readiness", Readiness)

#: Each caller error code as an HTTP status (google/rpc/code.proto's mapping; 499 is nginx's
#: "client closed request").
HTTP_STATUS: Final[Mapping[Code, int]] = {
    Code.INVALID_ARGUMENT: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.CANCELLED: 499,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
}
#: The errors HTTP has a status of its own for (gRPC has none).
HTTP_ONLY_STATUS: Final[Mapping[type[GatewayError], int]] = {
    PayloadTooLargeError: 413,
    UnsupportedEncodingError: 415,
    BodyTimeoutError: 408,
}


def http_status(error: GatewayError) -> int:
    """The HTTP status a caller error is answered with."""
    return HTTP_ONLY_STATUS.get(type(error)) or HTTP_STATUS[error.code]


def create_app(
    core: CompletionService,
    admin: AdminCore,
    *,
    max_request_bytes: int,
    readiness: Readiness,
    header_read_timeout: float = DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
    body_read_timeout: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS,
    openai: OpenAIOptions | None = None,
) -> web.Application:
    """The JSON shim's aiohttp application (run it with `http_guard.HttpRunner`)."""
    app = web.Application(
        client_max_size=max_request_bytes,
        middlewares=[_traced, _errors],
        handler_args={"auto_decompress": False},  # `http_bodies` decodes, bounded
    )
    app[CORE_KEY] = core
    app[MAX_BYTES_KEY] = max_request_bytes
    app[BODY_TIMEOUT_KEY] = body_read_timeout
    app[GUARD_KEY] = ConnectionGuard(header_read_timeout)
    app[READINESS_KEY] = readiness
    app.on_response_prepare.append(_echo_request_id)
    app.router.add_post("/v1/complete", _complete)
    app.router.add_post("/v1/complete:stream", _stream_complete)
    app.router.add_post("/v1/embed", _embed)
    app.router.add_get("/v1/providers/status", _provider_status)
    add_admin_routes(app, admin)
    # Imported here: the OpenAI routes build on this module's keys and statuses.
    from gateway.transports.openai_http import OpenAIOptions, add_openai_routes

    add_openai_routes(app, openai or OpenAIOptions())
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


#: Longest `x-gateway-route` value sent (the whole decision is in the body's attempts).
_MAX_ROUTING_HEADER = 1024


async def _complete(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE_KEY]
    identity = await core.authenticate(_auth(request))  # before the body is read
    body = await read_json_object(request)
    if _pop_stream_flag(body, default=False):
        return await _serve_stream(
            request, parse_completion_request(body, pb.StreamCompleteRequest), identity
        )
    message = parse_completion_request(body, pb.CompleteRequest)
    answer = await core.complete(completion_request(message), _call_context(request, identity))
    return web.Response(
        body=render_completion(complete_response(answer), defaults=True),
        content_type=JSON_CONTENT_TYPE,
        headers=routing_headers(answer.attempts) or None,  # None: no header map to copy
    )


def routing_headers(attempts: Sequence[Attempt]) -> dict[str, str]:
    """`x-gateway-route` (why the answering deployment was chosen) and `x-gateway-tier` (the
    complexity tier), when routing chose it; printable ASCII only (a reason may quote a
    phrase of the prompt)."""
    if not attempts or not attempts[-1].routing:
        return {}
    answered = attempts[-1]
    headers = {"x-gateway-route": _header_safe(answered.routing)}
    if answered.tier:
        headers["x-gateway-tier"] = _header_safe(answered.tier)
    return headers


def _header_safe(text: str) -> str:
    text = text[:_MAX_ROUTING_HEADER]
    if text.isascii() and text.isprintable():  # nearly always: nothing to replace
        return text
    return "".join(c if " " <= c <= "~" else "?" for c in text)


async def _stream_complete(request: web.Request) -> web.StreamResponse:
    identity = await request.app[CORE_KEY].authenticate(_auth(request))
    body = await read_json_object(request)
    if not _pop_stream_flag(body, default=True):
        raise InvalidArgumentError("stream: cannot be false on /v1/complete:stream")
    message = parse_completion_request(body, pb.StreamCompleteRequest)
    return await _serve_stream(request, message, identity)


async def _embed(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE_KEY]
    identity = await core.authenticate(_auth(request))  # before the body is read
    message = parse_message(await read_json_object(request), pb.EmbedRequest())
    answer = await core.embed(embedding_request(message), _call_context(request, identity))
    return message_response(embed_response(answer))


async def _provider_status(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE_KEY]
    asked = request.query.get("provider", "")
    entries = await core.provider_status(asked, _call_context(request, None))
    return message_response(provider_status_response(entries))


def _auth(request: web.Request) -> str | None:
    return request.headers.get("authorization")


async def _healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.StreamResponse:
    if request.app[READINESS_KEY].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not ready"}, status=503)


async def _serve_stream(
    request: web.Request, message: pb.StreamCompleteRequest, identity: Identity
) -> web.StreamResponse:
    core = request.app[CORE_KEY]
    items = core.stream_complete(completion_request(message), _call_context(request, identity))
    return await serve_sse(
        request,
        items,
        lambda exc: _error_body(exc.code_name, exc.message, request),
        merge=merging(request.headers.get(COALESCING_HEADER)),
    )


@web.middleware
async def _traced(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One server span per call, continuing a W3C `traceparent` the caller sent."""
    if request.path in _PROBES:
        return await handler(request)
    parent = propagate.extract(request.headers)
    if not spans_recorded() and not get_current_span(parent).get_span_context().is_valid:
        # The no-op tracer's span would be the invalid span: nothing to record or to continue.
        return await handler(request)
    route = request.match_info.route.resource
    path = route.canonical if route is not None else request.path
    with tracer().start_as_current_span(
        f"{request.method} {path}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "url.path": request.path},
    ) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(StatusCode.ERROR)
        return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id to the logs and turn every error into the JSON error shape."""
    request_id = request_id_from(request.headers.get("x-request-id"))
    request[REQUEST_ID] = request_id
    request_id_var.set(request_id)
    guard = request.app[GUARD_KEY]
    guard.request_started(request)
    try:
        return await handler(request)
    except BodyTimeoutError as exc:
        guard.body_cut(request, request.app[BODY_TIMEOUT_KEY])
        return await _send_and_close(_error_response(exc, request), request)
    except GatewayError as exc:
        return _error_response(exc, request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BYTES_KEY]
        too_large = PayloadTooLargeError(f"body: larger than the limit of {limit} bytes")
        return _error_response(too_large, request)
    except web.HTTPNotFound:
        return _error_response(
            ModelNotFoundError(f"no route {request.method} {request.path}"), request
        )
    except web.HTTPMethodNotAllowed:
        return _http_error(405, "UNIMPLEMENTED", f"{request.method} not allowed here", request)
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unexpected error while serving a request")
        return _error_response(InternalError("internal error"), request)
    finally:
        guard.request_ended(request)


async def _send_and_close(response: web.Response, request: web.Request) -> web.Response:
    """Send `response`, then close the connection (no lingering for the rest of a slow body)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["x-request-id"] = request_id


def _pop_stream_flag(body: dict[str, Any], *, default: bool) -> bool:
    """Take the JSON-only `stream` switch out of `body` (it is not a request message field)."""
    stream = body.pop("stream", default)
    if not isinstance(stream, bool):
        raise InvalidArgumentError("stream: must be true or false")
    return stream


def _call_context(request: web.Request, identity: Identity | None) -> CallContext:
    return call_context(request, identity, "http", request.headers.get("authorization"))


def call_context(
    request: web.Request, identity: Identity | None, transport: str, authorization: str | None
) -> CallContext:
    """The call's context: its request id, identity and credential, and the routing headers."""
    return CallContext(
        transport=transport,
        request_id=request[REQUEST_ID],
        authorization=authorization,
        provider_pin=request.headers.get("x-provider") or None,
        timeout_header=request.headers.get("x-request-timeout"),
        identity=identity,
    )


def _error_body(code: str, message: str, request: web.Request) -> bytes:
    return orjson.dumps(
        {"error": {"code": code, "message": message, "request_id": request.get(REQUEST_ID, "")}}
    )


def _error_response(exc: GatewayError, request: web.Request) -> web.Response:
    response = _http_error(http_status(exc), exc.code_name, exc.message, request)
    for name, value in exc.headers:
        response.headers[name] = value
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


def _http_error(status: int, code: str, message: str, request: web.Request) -> web.Response:
    return web.Response(
        status=status,
        body=_error_body(code, message, request),
        content_type=JSON_CONTENT_TYPE,
    )
