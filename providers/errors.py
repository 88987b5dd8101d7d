"""What goes wrong on the way to a provider: the upstream error tree (part of the `Provider` API).

An adapter raises only these for a provider's failures; they say what happened upstream and
nothing about what a caller is told (no gRPC code, no HTTP status): the gateway's outcome table
(`gateway.pipeline.outcomes`) decides that, at one place::

    UpstreamError                  a provider failed; `provider` names the deployment
    ├── UpstreamBadRequestError    it rejected the request (its 400/413/422), or an adapter
    │                              refused content it cannot send
    ├── UpstreamNotFoundError      it does not know the model (its 404)
    ├── UpstreamRateLimitedError   it refused for its own rate limit or quota (its 429)
    ├── UpstreamAuthError          it rejected the gateway's credential (its 401/403)
    ├── UpstreamUnavailableError   it is down, erroring (5xx), unreachable, or unreadable
    │   ├── UpstreamTimeoutError   it did not answer within the time it was given
    │   └── StreamInterruptedError its stream broke after it started
    └── ContentFilteredError       it refused on content-policy grounds

    UnknownModelError              the registry routes no deployment for a model name

Messages name the provider and never carry an upstream body verbatim or a secret.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """A provider failed to answer; `provider` names the deployment."""

    def __init__(self, message: str, *, provider: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        #: Seconds the provider asked us to wait before trying again, when it said.
        self.retry_after = retry_after


class UpstreamBadRequestError(UpstreamError):
    """The provider rejected the request as invalid (its 400/413/422), or the adapter could not
    send it (content it does not take, a model name its URL cannot hold)."""


class UpstreamNotFoundError(UpstreamError):
    """The provider does not know the model (its 404)."""


class UpstreamRateLimitedError(UpstreamError):
    """The provider refused for its own rate limit or quota (its 429)."""


class UpstreamAuthError(UpstreamError):
    """The provider rejected the gateway's credential (its 401/403): our fault, not the caller's."""


class UpstreamUnavailableError(UpstreamError):
    """The provider is down, erroring (5xx), unreachable, or answered something unreadable."""


class UpstreamTimeoutError(UpstreamUnavailableError):
    """The provider did not answer within the time it was given."""


class StreamInterruptedError(UpstreamUnavailableError):
    """A provider stream ended early: cut, errored, or closed without its terminal marker."""


class ContentFilteredError(UpstreamError):
    """The provider refused to answer on content-policy grounds."""


class UnknownModelError(LookupError):
    """No configured deployment serves the model or deployment name asked for."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
