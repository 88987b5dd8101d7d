"""The gateway's one exception tree.

Every failure a caller can see is one of these classes. Each knows its gRPC status code and its
HTTP status, so each transport maps errors at exactly one place (the gRPC servicer's error
boundary and the aiohttp error middleware)::

    GatewayError
    ├── InvalidArgumentError           INVALID_ARGUMENT    400
    │   ├── PayloadTooLargeError       INVALID_ARGUMENT    413
    │   └── UnsupportedEncodingError   INVALID_ARGUMENT    415  (a Content-Encoding we do not read)
    ├── UnauthenticatedError           UNAUTHENTICATED     401
    ├── PermissionDeniedError          PERMISSION_DENIED   403
    ├── ModelNotFoundError             NOT_FOUND           404
    ├── RateLimitedError               RESOURCE_EXHAUSTED  429  (the caller's own limit)
    ├── DeadlineExceededError          DEADLINE_EXCEEDED   504
    │   └── BodyTimeoutError           DEADLINE_EXCEEDED   408  (the request body came too slowly)
    ├── RequestCancelledError          CANCELLED           499
    ├── ServiceUnavailableError        UNAVAILABLE         503  (draining, overloaded)
    ├── InternalError                  INTERNAL            500
    └── UpstreamError                  (a provider failed; `provider` names it)
        ├── UpstreamBadRequestError    INVALID_ARGUMENT    400  (provider rejected the request)
        ├── UpstreamNotFoundError      NOT_FOUND           404  (provider does not know the model)
        ├── UpstreamRateLimitedError   RESOURCE_EXHAUSTED  429
        ├── UpstreamAuthError          INTERNAL            500  (our credential was rejected)
        ├── UpstreamUnavailableError   UNAVAILABLE         503  (5xx, unreachable, malformed)
        │   ├── UpstreamTimeoutError   UNAVAILABLE         503
        │   └── StreamInterruptedError UNAVAILABLE         503  (stream broke after it started)
        └── ContentFilteredError       INVALID_ARGUMENT    400

Messages are written for the caller: they name the field or the provider, never carry an
upstream body verbatim, and never contain a secret.
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds the caller should wait before trying again, when the gateway knows.
        self.retry_after = retry_after
        #: Extra response headers (gRPC trailing metadata), such as `RateLimit-*`.
        self.headers: tuple[tuple[str, str], ...] = ()

    @property
    def code_name(self) -> str:
        """The gRPC status name, used as the JSON error `code`."""
        return str(self.grpc_code.name)


class InvalidArgumentError(GatewayError):
    """The request is malformed or names a value out of range."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class PayloadTooLargeError(InvalidArgumentError):
    """The request body is larger than the configured limit."""

    http_status = 413


class UnsupportedEncodingError(InvalidArgumentError):
    """The request body is encoded in a way the gateway does not decode."""

    http_status = 415


class UnauthenticatedError(GatewayError):
    """The caller's credential is missing or wrong."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401


class PermissionDeniedError(GatewayError):
    """The caller is known but may not do this (an admin call without the admin token)."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403


class NotFoundError(GatewayError):
    """The thing named does not exist (an API key id, say)."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class ModelNotFoundError(GatewayError):
    """No configured provider serves the requested model or provider name."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class RateLimitedError(GatewayError):
    """The caller is over its own rate limit or budget."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class DeadlineExceededError(GatewayError):
    """The caller's deadline passed before an answer was ready."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504


class BodyTimeoutError(DeadlineExceededError):
    """The request body did not arrive within its time bound (the connection is then closed)."""

    http_status = 408


class RequestCancelledError(GatewayError):
    """The caller cancelled or disconnected."""

    grpc_code = grpc.StatusCode.CANCELLED
    http_status = 499


class ServiceUnavailableError(GatewayError):
    """The gateway cannot take the request now (draining, saturated)."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class InternalError(GatewayError):
    """A fault inside the gateway."""


class UpstreamError(GatewayError):
    """A provider failed to answer; `provider` names the deployment."""

    def __init__(self, message: str, *, provider: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.provider = provider


class UpstreamBadRequestError(UpstreamError):
    """The provider rejected the request as invalid (its 400/413/422)."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class UpstreamNotFoundError(UpstreamError):
    """The provider does not know the model (its 404)."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class UpstreamRateLimitedError(UpstreamError):
    """The provider refused for its own rate limit or quota (its 429)."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class UpstreamAuthError(UpstreamError):
    """The provider rejected the gateway's credential (its 401/403): our fault, not the caller's."""

    grpc_code = grpc.StatusCode.INTERNAL
    http_status = 500


class UpstreamUnavailableError(UpstreamError):
    """The provider is down, erroring (5xx), unreachable, or answered something unreadable."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class UpstreamTimeoutError(UpstreamUnavailableError):
    """The provider did not answer within the per-try time."""


class StreamInterruptedError(UpstreamUnavailableError):
    """A provider stream ended early: cut, errored, or closed without its terminal marker."""


class ContentFilteredError(UpstreamError):
    """The provider refused to answer on content-policy grounds."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
