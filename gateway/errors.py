"""The gateway's caller errors: what a caller can be told, and with which code.

Every failure a caller can see is one of these classes, each with a `Code` (named as gRPC names
its status codes). Each transport maps codes once: the gRPC servicer to `grpc.StatusCode` by
name, the JSON app to an HTTP status (the canonical mapping of google/rpc/code.proto, plus the
few statuses only HTTP has: 413, 415, 408)::

    GatewayError
    ├── InvalidArgumentError           INVALID_ARGUMENT
    │   ├── PayloadTooLargeError       INVALID_ARGUMENT    (HTTP 413)
    │   └── UnsupportedEncodingError   INVALID_ARGUMENT    (HTTP 415: an encoding we do not read)
    ├── UnauthenticatedError           UNAUTHENTICATED
    ├── PermissionDeniedError          PERMISSION_DENIED
    ├── NotFoundError                  NOT_FOUND           (an API key id, say)
    ├── ModelNotFoundError             NOT_FOUND
    ├── RateLimitedError               RESOURCE_EXHAUSTED  (the caller's own limit)
    ├── DeadlineExceededError          DEADLINE_EXCEEDED
    │   └── BodyTimeoutError           DEADLINE_EXCEEDED   (HTTP 408: the body came too slowly)
    ├── ServiceUnavailableError        UNAVAILABLE         (draining, overloaded, circuits open)
    ├── InternalError                  INTERNAL
    └── ProviderError                  (a provider failed: the outcome table chose its code)

A provider's own failures are `providers.errors.UpstreamError`s; they become `ProviderError`s
at one place, `gateway.pipeline.outcomes`. Messages are written for the caller: they name the
field or the provider, never carry an upstream body verbatim, and never contain a secret.
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """What kind of failure a caller is told of; the names are gRPC's status code names."""

    CANCELLED = enum.auto()
    INVALID_ARGUMENT = enum.auto()
    DEADLINE_EXCEEDED = enum.auto()
    NOT_FOUND = enum.auto()
    PERMISSION_DENIED = enum.auto()
    RESOURCE_EXHAUSTED = enum.auto()
    INTERNAL = enum.auto()
    UNAVAILABLE = enum.auto()
    UNAUTHENTICATED = enum.auto()


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    #: The kind of failure (a class's default; a `ProviderError` carries its own).
    code: Code = Code.INTERNAL

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds the caller should wait before trying again, when the gateway knows.
        self.retry_after = retry_after
        #: Extra response headers (gRPC trailing metadata), such as `RateLimit-*`.
        self.headers: tuple[tuple[str, str], ...] = ()

    @property
    def code_name(self) -> str:
        """The code's name ("UNAVAILABLE"), used as the JSON error `code` and in the ledger."""
        return self.code.name


class InvalidArgumentError(GatewayError):
    """The request is malformed or names a value out of range."""

    code = Code.INVALID_ARGUMENT


class PayloadTooLargeError(InvalidArgumentError):
    """The request body is larger than the configured limit."""


class UnsupportedEncodingError(InvalidArgumentError):
    """The request body is encoded in a way the gateway does not decode."""


class UnauthenticatedError(GatewayError):
    """The caller's credential is missing or wrong."""

    code = Code.UNAUTHENTICATED


class PermissionDeniedError(GatewayError):
    """The caller is known but may not do this (an admin call without the admin token)."""

    code = Code.PERMISSION_DENIED


class NotFoundError(GatewayError):
    """The thing named does not exist (an API key id, say)."""

    code = Code.NOT_FOUND


class ModelNotFoundError(GatewayError):
    """No configured provider serves the requested model or provider name."""

    code = Code.NOT_FOUND


class RateLimitedError(GatewayError):
    """The caller is over its own rate limit or budget."""

    code = Code.RESOURCE_EXHAUSTED


class DeadlineExceededError(GatewayError):
    """The caller's deadline passed before an answer was ready."""

    code = Code.DEADLINE_EXCEEDED


class BodyTimeoutError(DeadlineExceededError):
    """The request body did not arrive within its time bound (the connection is then closed)."""


class ServiceUnavailableError(GatewayError):
    """The gateway cannot take the request now (draining, saturated, every circuit open)."""

    code = Code.UNAVAILABLE


class InternalError(GatewayError):
    """A fault inside the gateway."""


class ProviderError(GatewayError):
    """A provider failed to answer; `provider` names the deployment, `code` what the caller is
    told (`gateway.pipeline.outcomes` decides it)."""

    def __init__(
        self, message: str, *, code: Code, provider: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code
        self.provider = provider
