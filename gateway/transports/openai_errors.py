"""Errors on the OpenAI-compatible routes: OpenAI's body, statuses and retry headers.

`{"error": {"message", "type", "param", "code"}}` with OpenAI's statuses (the SDKs pick their
exception class by status alone): 400 `invalid_request_error` with `param` (`code`
`unsupported_parameter` for a field that cannot be honoured), 401 `invalid_api_key`, 403, 404
`model_not_found`, 429 `rate_limit_exceeded` (a caller's limit: `retry-after` and
`retry-after-ms`) or `insufficient_quota` (a spent budget), 5xx `server_error`. The SDKs retry
429 and 5xx by themselves: where that cannot help (the gateway already retried and fell back, a
budget is spent, the deadline passed) the answer says `x-should-retry: false`, which they obey,
so client retries never multiply an outage. Shared by every OpenAI-compatible route, as is the
reading of the credential from the headers the SDKs use.
"""

from __future__ import annotations

import math
import re
from typing import Final

import orjson
from aiohttp import web

from gateway.errors import (
    DeadlineExceededError,
    GatewayError,
    InternalError,
    InvalidArgumentError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
)
from gateway.transports import http_app
from gateway.transports.http_bodies import JSON_CONTENT_TYPE

_PARAM: Final = re.compile(r"([A-Za-z_][\w.\[\]]*): ")
#: A deployment's refusal of a field (`providers.base.check_capabilities`), naming the field.
CANNOT: Final = re.compile(r"([A-Za-z_][\w.\[\]]*): provider '.*' cannot")


class UnsupportedParamError(InvalidArgumentError):
    """A field (or value) the gateway cannot honour; droppable with DROP_UNSUPPORTED_PARAMS."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


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
        unsupported = isinstance(exc, UnsupportedParamError) or CANNOT.match(exc.message)
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


def credential(request: web.Request) -> str | None:
    """The caller's credential as an `Authorization` value, from any header an SDK uses."""
    authorization = request.headers.get("authorization")
    if authorization:
        return authorization
    key = request.headers.get("api-key") or request.headers.get("x-api-key")
    return f"Bearer {key}" if key else None
