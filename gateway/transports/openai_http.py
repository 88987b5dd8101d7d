"""The OpenAI-compatible routes on the JSON port: `/v1/chat/completions`, `/v1/embeddings`
and `/v1/models`.

Any OpenAI client reaches the gateway by changing its base URL. A chat completion is converted
(`openai_requests`), served by the same core as `/v1/complete` (one call per choice, each
accounted), and rendered in OpenAI's shapes (`openai_answers`); a stream is Server-Sent
`chat.completion.chunk`s ending with `data: [DONE]`, or, when it fails after it started, with
`data: {"error": {...}}` (the SDK raises on it), with `: keep-alive` comments while nothing
comes (`openai_sse`). Every answer carries `x-request-id`; chat answers `x-gateway-provider`
(the deployment that answered), `x-gateway-cache` (hit or miss) and, unary,
`x-gateway-cost-usd`. An embedding call is converted (`openai_embeddings`), served by the
core's embed call (one call, accounted as one) and answered with the same headers. Errors are
OpenAI's, with retry headers the SDKs obey (`openai_errors`), the field a 400 is about named as
the caller sent it (`openai_params`).

A field a deployment cannot honour is a 400 naming it; with DROP_UNSUPPORTED_PARAMS it is
dropped instead, the call made again without it (the refusal came before any provider was
called or anything charged) and the answer names it in `x-gateway-dropped-params`.

Credentials: `Authorization: Bearer`, or the `api-key` (Azure clients) or `x-api-key` header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

import orjson
from aiohttp import web

from gateway.errors import (
    BodyTimeoutError,
    GatewayError,
    InternalError,
    InvalidArgumentError,
    ModelNotFoundError,
    PayloadTooLargeError,
)
from gateway.pipeline.call import CallContext
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import Answer
from gateway.transports import http_app
from gateway.transports.http_bodies import JSON_CONTENT_TYPE, MAX_BYTES_KEY, read_json_object
from gateway.transports.openai_answers import chat_completion
from gateway.transports.openai_embeddings import embedding_list, embeddings_call
from gateway.transports.openai_errors import CANNOT, credential, openai_error
from gateway.transports.openai_params import chat_param, embeddings_param
from gateway.transports.openai_requests import ChatCall, chat_call
from gateway.transports.openai_sse import gateway_headers, serve_stream
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
    app.router.add_post("/v1/embeddings", _embeddings)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/v1/models/{model:.+}", _retrieve_model)


def _context(request: web.Request, identity: Any) -> CallContext:
    return http_app.call_context(request, identity, TRANSPORT, credential(request))


# -- /v1/chat/completions ------------------------------------------------------------------------


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    body: dict[str, Any] = {}
    try:
        core = request.app[http_app.CORE_KEY]
        identity = await core.authenticate(credential(request))
        body = await _read_body(request)
        options = request.app[OPTIONS_KEY]
        call = chat_call(body, drop_unsupported=options.drop_unsupported_params)
        ctx = _context(request, identity)
        for _ in range(MAX_DROPS + 1):
            try:
                if call.stream:
                    keepalive = options.keepalive_seconds
                    return await serve_stream(request, core, call, ctx, keepalive=keepalive)
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
        return openai_error(exc, partial(chat_param, body=body))


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
    match = CANNOT.match(exc.message)
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
    gateway_headers(response, answers, call.dropped)
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


# -- /v1/embeddings ------------------------------------------------------------------------------


async def _embeddings(request: web.Request) -> web.StreamResponse:
    body: dict[str, Any] = {}
    try:
        core = request.app[http_app.CORE_KEY]
        identity = await core.authenticate(credential(request))
        body = await _read_body(request)
        call = embeddings_call(body)
        answer = await core.embed(call.request, _context(request, identity))
    except BodyTimeoutError:
        raise  # the app's middleware closes the connection too
    except GatewayError as exc:
        return openai_error(exc, partial(embeddings_param, body=body))
    response = web.Response(
        body=embedding_list(answer, as_base64=call.base64), content_type=JSON_CONTENT_TYPE
    )
    gateway_headers(response, [answer])
    response.headers["x-gateway-cost-usd"] = f"{answer.cost_usd:.10f}"
    return response


# -- /v1/models ----------------------------------------------------------------------------------


async def _list_models(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[http_app.CORE_KEY].authenticate(credential(request))
    except GatewayError as exc:
        return openai_error(exc)
    models = [_model_object(entry) for entry in request.app[OPTIONS_KEY].models]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": models}), content_type=JSON_CONTENT_TYPE
    )


async def _retrieve_model(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[http_app.CORE_KEY].authenticate(credential(request))
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
