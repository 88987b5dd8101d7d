"""Caller authentication: shared bearer tokens (`INTERNAL_AUTH_TOKEN`)."""

from __future__ import annotations

import hashlib
import hmac

from gateway.errors import UnauthenticatedError


class TokenAuthenticator:
    """Accepts `Bearer <token>` for any configured token; with no tokens, accepts every caller.

    Tokens are compared as SHA-256 digests with `hmac.compare_digest`, against every configured
    token, so the time taken reveals neither a token's length nor which one nearly matched.
    """

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._digests = tuple(_digest(token) for token in tokens)

    @property
    def enabled(self) -> bool:
        """Whether callers must present a token."""
        return bool(self._digests)

    def check(self, authorization: str | None) -> None:
        """Raise `UnauthenticatedError` unless `authorization` carries a configured token."""
        if not self._digests:
            return
        if not authorization:
            raise UnauthenticatedError("missing credential: send 'authorization: Bearer <token>'")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("malformed credential: expected 'Bearer <token>'")
        candidate = _digest(token.strip())
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        if not matched:
            raise UnauthenticatedError("invalid credential")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
