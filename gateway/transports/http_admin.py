"""The admin and usage routes on the JSON port: `/v1/admin/...` and `/v1/usage...`.

Each route turns its path, query or body into the request message gRPC would receive (proto3
JSON mapping, unknown fields refused), hands the admin core its values (`admin_convert`) and
renders the answer message back, so both transports read and answer alike. A route with a
body authenticates the caller before reading it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import InvalidArgumentError
from gateway.tenancy.admin import AdminCore
from gateway.transports.admin_convert import (
    costs_message,
    created_key_message,
    keys_message,
    limits_of,
    report_query,
    usage_message,
)
from gateway.transports.http_bodies import message_response, read_json_object
from gateway.transports.json_codec import parse_message
from gateway.v1 import gateway_pb2 as pb

ADMIN_KEY = web.AppKey("admin", AdminCore)


def add_admin_routes(app: web.Application, admin: AdminCore) -> None:
    """Serve the admin and usage calls of `admin` on `app`."""
    app[ADMIN_KEY] = admin
    app.router.add_get("/v1/usage", _get_usage)
    app.router.add_get("/v1/usage/costs", _get_costs)
    app.router.add_post("/v1/admin/keys", _create_key)
    app.router.add_get("/v1/admin/keys", _list_keys)
    app.router.add_post("/v1/admin/keys/{id}:revoke", _revoke_key)
    app.router.add_post("/v1/admin/tenants/{tenant}/limits", _set_limits)


async def _get_usage(request: web.Request) -> web.StreamResponse:
    message = parse_message(_query(request, "tenant", "since", "until"), pb.GetUsageRequest())
    rows = await request.app[ADMIN_KEY].get_usage(report_query(message), _auth(request))
    return message_response(usage_message(rows))


async def _get_costs(request: web.Request) -> web.StreamResponse:
    message = parse_message(_query(request, "tenant", "since", "until"), pb.GetCostsRequest())
    costs = await request.app[ADMIN_KEY].get_costs(report_query(message), _auth(request))
    return message_response(costs_message(costs))


async def _create_key(request: web.Request) -> web.StreamResponse:
    admin = request.app[ADMIN_KEY]
    await admin.authenticate(_auth(request))  # before the body is read
    message = parse_message(await read_json_object(request), pb.CreateApiKeyRequest())
    created = await admin.create_api_key(
        message.tenant, message.name, limits_of(message), _auth(request)
    )
    return message_response(created_key_message(created))


async def _list_keys(request: web.Request) -> web.StreamResponse:
    message = parse_message(_query(request, "tenant"), pb.ListApiKeysRequest())
    keys = await request.app[ADMIN_KEY].list_api_keys(message.tenant, _auth(request))
    return message_response(keys_message(keys))


async def _revoke_key(request: web.Request) -> web.StreamResponse:
    key_id = await request.app[ADMIN_KEY].revoke_api_key(request.match_info["id"], _auth(request))
    return message_response(pb.RevokeApiKeyResponse(id=key_id))


async def _set_limits(request: web.Request) -> web.StreamResponse:
    admin = request.app[ADMIN_KEY]
    await admin.authenticate(_auth(request))  # before the body is read
    body = await read_json_object(request) if request.can_read_body else {}
    body["tenant"] = request.match_info["tenant"]
    message = parse_message(body, pb.SetTenantLimitsRequest())
    tenant = await admin.set_tenant_limits(message.tenant, limits_of(message), _auth(request))
    return message_response(pb.SetTenantLimitsResponse(tenant=tenant))


def _query(request: web.Request, *allowed: str) -> dict[str, Any]:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise InvalidArgumentError(f"{unknown[0]}: unknown query parameter")
    return {name: request.query[name] for name in allowed if name in request.query}


def _auth(request: web.Request) -> str | None:
    return request.headers.get("authorization")
