"""The OpenAI-compatible routes on the JSON port: `/v1/chat/completions` and `/v1/models`.

Any OpenAI client reaches the gateway by changing its base URL. A chat completion is converted
(`openai_requests`), served by the same core as `/v1/complete` (one call per choice, each
accounted), and rendered in OpenAI's shapes (`openai_answers`); a stream is Server-Sent
`chat.completion.chunk`s ending with `data: [DONE]`, or, when it fails after it started, with
`data: {"error": {...}}` (the SDK raises on it), with `: keep-alive` comments while nothing
comes. Every answer carries `x-request-id`; chat answers `x-gateway-provider` (the deployment
that answered), `x-gateway-cache` (hit or miss) and, unary, `x-gateway-cost-usd`.

Errors on these routes are OpenAI's `{"error": {"message", "type", "param", "code"}}` with its
statuses (`openai_error`); the SDK picks its exception class by status alone. The SDK retries
429 and 5xx on its own: where a retry cannot help (the gateway already retried and fell back, a
budget is spent, the deadline passed) the answer says `x-should-retry: false`, which the SDK
obeys, so client retries never multiply an outage; a caller's own rate limit says when to come
back (`retry-after`, `retry-after-ms`), which the SDK honours.

Credentials: `Authorization: Bearer`, or the `api-key` (Azure clients) or `x-api-key` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from aiohttp import web

from gateway.errors import (
    BodyTimeoutError,
    DeadlineExceededError,
    GatewayError,
    InternalError,
    InvalidArgumentError,
    ModelNotFoundError,
    PayloadTooLargeError,
    ProviderError,
    RateLimitedError,
)
from gateway.pipeline.call import CallContext
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import Answer, StreamHead, StreamItem
from gateway.transports import http_app
from gateway.transports.http_bodies import JSON_CONTENT_TYPE, MAX_BYTES_KEY, read_json_object
from gateway.transports.openai_answers import ChunkWriter, chat_completion
from gateway.transports.openai_requests import ChatCall, UnsupportedParamError, chat_call
from gateway.transports.sse import SSE_HEADERS
from providers.base import ProviderSettings
from providers.registry import RouteTable

log = logging.getLogger("gateway.http")

TRANSPORT = "openai"
#: Seconds without a chunk after which a stream sends an SSE comment (proxies drop idle streams).
KEEPALIVE_SECONDS = 15.0
#: `created` of every model: stable across calls and replicas (the gateway has no other date).
MODELS_CREATED = 1_700_000_000
#: Fields a deployment's capabilities may refuse that DROP_UNSUPPORTED_PARAMS may drop instead.
DROPPABLE: Final = frozenset(
    {"tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "seed"}
)
MAX_DROPS = len(DROPPABLE)

_PARAM = re.compile(r"([A-Za-z_][\w.\[\]]*): ")
_CANNOT = re.compile(r"([A-Za-z_][\w.\[\]]*): provider '.*' cannot")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One routable model as `/v1/models` lists it."""

    id: str
    owned_by: str


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    """How the OpenAI-compatible routes behave."""

    #: Drop fields a deployment cannot honour (named in `x-gateway-dropped-params`), not 400.
    drop_unsupported_params: bool = False
    models: tuple[ModelEntry, ...] = ()
    #: Seconds without a chunk after which a stream sends a `: keep-alive` comment.
    keepalive_seconds: float = KEEPALIVE_SECONDS


OPTIONS_KEY = web.AppKey("openai_options", OpenAIOptions)


def model_entries(
    providers: Iterable[ProviderSettings], aliases: Mapping[str, str]
) -> tuple[ModelEntry, ...]:
    """Every routable model: each deployment's as "<deployment>/<model>" and by its own name
    (the first deployment by name owns it), and each alias, owned by the deployment it routes
    to."""
    providers = sorted(providers, key=lambda p: p.name)
    routes = RouteTable(providers, aliases)
    entries: dict[str, str] = {}
    for deployment in providers:
        for model in deployment.models:
            entries.setdefault(f"{deployment.name}/{model}", deployment.name)
            entries.setdefault(model, deployment.name)
    for alias in aliases:
        target = routes.target(alias)
        if target is not None:
            entries.setdefault(alias, target.deployment)
    return tuple(ModelEntry(id, owner) for id, owner in sorted(entries.items()))


def add_openai_routes(app: web.Application, options: OpenAIOptions) -> None:
    """Serve the OpenAI-compatible routes on `app`."""
    app[OPTIONS_KEY] = options
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/v1/models/{model:.+}", _retrieve_model)


# -- errors --------------------------------------------------------------------------------------


def openai_error(exc: GatewayError) -> web.Response:
    """`exc` as OpenAI's error body, status and headers (`retry-after`, `x-should-retry`)."""
    response = web.Response(
        status=http_app.http_status(exc),
        body=orjson.dumps(error_object(exc)),
        content_type=JSON_CONTENT_TYPE,
    )
    for name, value in exc.headers:
        response.headers[name] = value
    if exc.retry_after is not None:
        response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        response.headers["retry-after-ms"] = str(max(1, round(exc.retry_after * 1000)))
    if not _retry_can_help(exc):
        response.headers["x-should-retry"] = "false"
    return response


def error_object(exc: GatewayError) -> dict[str, object]:
    """`{"error": {"message", "type", "param", "code"}}` for `exc`."""
    kind, code = _kind_and_code(exc, http_app.http_status(exc))
    return {"error": {"message": exc.message, "type": kind, "param": _param(exc), "code": code}}


def _kind_and_code(exc: GatewayError, status: int) -> tuple[str, str | None]:
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 403:
        return "permission_error", "permission_denied"
    if isinstance(exc, ModelNotFoundError):
        return "invalid_request_error", "model_not_found"
    if status == 429:
        code = "insufficient_quota" if _budget_spent(exc) else "rate_limit_exceeded"
        return code, code
    if status < 500:
        unsupported = isinstance(exc, UnsupportedParamError) or _CANNOT.match(exc.message)
        return "invalid_request_error", "unsupported_parameter" if unsupported else None
    return "server_error", exc.code_name.lower()


def _param(exc: GatewayError) -> str | None:
    if isinstance(exc, UnsupportedParamError):
        return exc.param
    if not isinstance(exc, InvalidArgumentError):
        return None
    match = _PARAM.match(exc.message)
    return match.group(1) if match else None


def _budget_spent(exc: GatewayError) -> bool:
    """A caller's spent budget (it renews next month), unlike a rate limit (a retry-after)."""
    return isinstance(exc, RateLimitedError) and exc.retry_after is None


def _retry_can_help(exc: GatewayError) -> bool:
    """Whether an SDK's own retry could succeed where this call failed."""
    if isinstance(exc, ProviderError):
        return exc.retry_after is not None  # the gateway already retried and fell back
    if isinstance(exc, InternalError | DeadlineExceededError):
        return False
    return not _budget_spent(exc)


def _credential(request: web.Request) -> str | None:
    """The caller's credential as an `Authorization` value, from any header an SDK uses."""
    authorization = request.headers.get("authorization")
    if authorization:
        return authorization
    key = request.headers.get("api-key") or request.headers.get("x-api-key")
    return f"Bearer {key}" if key else None


def _context(request: web.Request, identity: Any) -> CallContext:
    return CallContext(
        transport=TRANSPORT,
        request_id=request[http_app.REQUEST_ID],
        authorization=_credential(request),
        provider_pin=request.headers.get("x-provider") or None,
        timeout_header=request.headers.get("x-request-timeout"),
        identity=identity,
    )


# -- /v1/chat/completions ------------------------------------------------------------------------


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        core = request.app[http_app.CORE_KEY]
        identity = await core.authenticate(_credential(request))
        body = await _read_body(request)
        options = request.app[OPTIONS_KEY]
        call = chat_call(body, drop_unsupported=options.drop_unsupported_params)
        ctx = _context(request, identity)
        for _ in range(MAX_DROPS + 1):
            try:
                if call.stream:
                    return await _serve_stream(request, core, call, ctx)
                return await _serve_unary(core, call, ctx)
            except InvalidArgumentError as exc:
                dropped = _droppable(exc, options)
                if dropped is None:
                    raise
                call = _without(call, dropped)
        raise InternalError("too many unsupported fields dropped")
    except BodyTimeoutError:
        raise  # the app's middleware closes the connection too
    except GatewayError as exc:
        return openai_error(exc)


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        return await read_json_object(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BYTES_KEY]
        raise PayloadTooLargeError(f"body: larger than the limit of {limit} bytes") from None


def _droppable(exc: InvalidArgumentError, options: OpenAIOptions) -> str | None:
    """The field a deployment refused that may be dropped instead, or None."""
    if not options.drop_unsupported_params:
        return None
    match = _CANNOT.match(exc.message)
    if match is None:
        return None
    field = match.group(1).split(".")[0]
    return field if field in DROPPABLE else None


def _without(call: ChatCall, field: str) -> ChatCall:
    chat = call.request.chat
    if field == "seed":
        chat = replace(chat, sampling=replace(chat.sampling, seed=None))
    elif field == "tool_choice":
        chat = replace(chat, tool_choice=None)
    elif field == "parallel_tool_calls":
        chat = replace(chat, parallel_tool_calls=None)
    elif field == "response_format":
        chat = replace(chat, response_format=None)
    else:
        chat = replace(chat, reasoning_effort=None)
    request = replace(call.request, chat=chat)
    return replace(call, request=request, dropped=(*call.dropped, field))


async def _serve_unary(core: CompletionService, call: ChatCall, ctx: CallContext) -> web.Response:
    answers = await _all_or_none([core.complete(call.request, ctx) for _ in range(call.n)])
    response = web.Response(
        body=chat_completion(answers, call.request.model, int(time.time())),
        content_type=JSON_CONTENT_TYPE,
    )
    _gateway_headers(response, call, answers)
    response.headers["x-gateway-cost-usd"] = f"{sum(a.cost_usd for a in answers):.10f}"
    return response


async def _all_or_none(calls: Sequence[Any]) -> list[Answer]:
    """Every call's answer; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _gateway_headers(response: web.StreamResponse, call: ChatCall, answers: Sequence[Any]) -> None:
    providers = dict.fromkeys(a.provider for a in answers)
    response.headers["x-gateway-provider"] = ",".join(providers)
    response.headers["x-gateway-cache"] = "hit" if all(a.cached for a in answers) else "miss"
    if call.dropped:
        response.headers["x-gateway-dropped-params"] = ",".join(call.dropped)


async def _serve_stream(
    request: web.Request, core: CompletionService, call: ChatCall, ctx: CallContext
) -> web.StreamResponse:
    """Stream `call.n` choices; a failure before every choice started is raised (a status)."""
    writer = ChunkWriter(
        call.request.model, int(time.time()), include_usage=call.include_usage, choices=call.n
    )
    queue: asyncio.Queue[_Event] = asyncio.Queue()
    producers = [
        asyncio.create_task(_produce(index, core.stream_complete(call.request, ctx), writer, queue))
        for index in range(call.n)
    ]
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        held, ended = await _until_started(queue, call.n)
        heads = [head for head in writer.heads if head is not None]
        _gateway_headers(response, call, heads)
        await response.prepare(request)
        await response.write(b"".join(held))
        keepalive = request.app[OPTIONS_KEY].keepalive_seconds
        await _relay(response, queue, call.n - ended, writer, keepalive)
        return response
    except ConnectionResetError:
        log.info("client went away during a stream")
        return response
    finally:
        for task in producers:
            task.cancel()
        await asyncio.gather(*producers, return_exceptions=True)


_Event = tuple[str, object]


async def _produce(
    index: int,
    items: AsyncGenerator[StreamItem, None],
    writer: ChunkWriter,
    queue: asyncio.Queue[_Event],
) -> None:
    """Drive one choice's call in this task, from its first step to its last."""
    async with contextlib.aclosing(items):
        try:
            announced = False
            async for item in items:
                data = writer.render(index, item)
                if data:
                    queue.put_nowait(("data", data))
                elif isinstance(item, StreamHead) and not announced:
                    announced = True
                    queue.put_nowait(("head", index))
        except GatewayError as exc:
            queue.put_nowait(("error", exc))
            return
        except Exception:
            log.exception("unexpected error during a stream")
            queue.put_nowait(("error", InternalError("internal error")))
            return
    if writer.heads[index] is None:
        queue.put_nowait(("error", InternalError("the stream ended before it started")))
        return
    queue.put_nowait(("end", index))


async def _until_started(queue: asyncio.Queue[_Event], choices: int) -> tuple[list[bytes], int]:
    """Wait until every choice's call has its head; what came meanwhile is held back (the
    events, and how many choices already ended)."""
    started, ended, held = 0, 0, []
    while started < choices:
        kind, payload = await queue.get()
        if kind == "error":
            assert isinstance(payload, GatewayError)
            raise payload
        if kind == "head":
            started += 1
        elif kind == "data":
            assert isinstance(payload, bytes)
            held.append(payload)
        else:
            ended += 1
    return held, ended


async def _relay(
    response: web.StreamResponse,
    queue: asyncio.Queue[_Event],
    choices: int,
    writer: ChunkWriter,
    keepalive: float,
) -> None:
    """Send the choices' chunks until each has ended (what piled up meanwhile in one write)."""
    ended = 0
    while ended < choices:
        try:
            events = [await asyncio.wait_for(queue.get(), keepalive)]
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        while not queue.empty():
            events.append(queue.get_nowait())
        data = []
        for kind, payload in events:
            if kind == "data":
                assert isinstance(payload, bytes)
                data.append(payload)
            elif kind == "end":
                ended += 1
            elif kind == "error":
                assert isinstance(payload, GatewayError)
                error = b"data: " + orjson.dumps(error_object(payload)) + b"\n\n"
                await response.write_eof(b"".join(data) + error)
                return
        if data:
            await response.write(b"".join(data))
    await response.write_eof(writer.closing())


# -- /v1/models ----------------------------------------------------------------------------------


async def _list_models(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[http_app.CORE_KEY].authenticate(_credential(request))
    except GatewayError as exc:
        return openai_error(exc)
    models = [_model_object(entry) for entry in request.app[OPTIONS_KEY].models]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": models}), content_type=JSON_CONTENT_TYPE
    )


async def _retrieve_model(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[http_app.CORE_KEY].authenticate(_credential(request))
        wanted = request.match_info["model"]
        for entry in request.app[OPTIONS_KEY].models:
            if entry.id == wanted:
                return web.Response(
                    body=orjson.dumps(_model_object(entry)), content_type=JSON_CONTENT_TYPE
                )
        raise ModelNotFoundError(f"The model {wanted!r} does not exist")
    except GatewayError as exc:
        return openai_error(exc)


def _model_object(entry: ModelEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "object": "model",
        "created": MODELS_CREATED,
        "owned_by": entry.owned_by,
    }
