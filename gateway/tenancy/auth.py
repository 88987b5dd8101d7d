"""Who is calling: shared tokens, the admin token, per-tenant API keys, and JWT bearer tokens.

`Authenticator.authenticate()` turns an `authorization` header into an `Identity`: the tenant
(which scopes limits, budgets, usage and the cache), the API key when one was used, and whether
the caller is the admin. Unknown, malformed and revoked credentials all get the same
`UnauthenticatedError`, so a caller cannot tell a revoked key from a wrong one.

- `INTERNAL_AUTH_TOKEN` (comma-separated): single-tenant mode; the tenant is the request's
  `metadata.tenant` or "default".
- `ADMIN_TOKEN`: the admin API, and usage reports for every tenant.
- API keys (`aigw_…`, made through the admin API): looked up by SHA-256 in the store and kept
  for `KEY_CACHE_SECONDS`, so a revoked key stops working on every replica within seconds
  (`gateway.key_grants`: each lookup bounded in time, answers served stale while the store fails).
- JWT (`JWT_SECRET` for HS256, or `JWT_JWKS_URL`; `JWT_ISSUER`, `JWT_AUDIENCE`): the tenant is
  the `JWT_TENANT_CLAIM` claim.

With none of `INTERNAL_AUTH_TOKEN`, `REQUIRE_API_KEY` and JWT configured the gateway is open:
every caller is the request's tenant, and a bearer credential that is none of ours (the
placeholder key every OpenAI SDK sends) is ignored. A gateway API key is still checked, and the
admin token still needed for the admin API.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from gateway.errors import UnauthenticatedError
from gateway.tenancy.key_grants import (
    DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS,
    DEFAULT_KEY_MAX_STALE_SECONDS,
    KeyGrant,
    KeyGrants,
    KeyLookup,
)

__all__ = ["Authenticator", "Identity", "JwtSettings", "KeyGrant", "KeyLookup"]

API_KEY_PREFIX = "aigw_"
DEFAULT_TENANT = "default"
INVALID = "invalid credential"


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller of one request.

    `tenant` is set when the credential fixes it (an API key, a JWT claim); otherwise the
    request's `metadata.tenant` (or "default") names it.
    """

    tenant: str | None = None
    api_key_id: str | None = None
    admin: bool = False
    grant: KeyGrant | None = None

    def tenant_for(self, requested: str) -> str:
        """The tenant a request counts against."""
        return self.tenant or requested or DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """How JWT bearer tokens are checked."""

    secret: str = ""
    jwks_url: str = ""
    issuer: str = ""
    audience: str = ""
    tenant_claim: str = "tenant"


class Authenticator:
    """Resolves a caller's credential to an `Identity`."""

    def __init__(
        self,
        tokens: tuple[str, ...] = (),
        *,
        admin_tokens: tuple[str, ...] = (),
        keys: KeyLookup | None = None,
        jwt_settings: JwtSettings | None = None,
        require_credential: bool = False,
        key_lookup_timeout: float = DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS,
        key_max_stale: float = DEFAULT_KEY_MAX_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tuple(_digest(t) for t in tokens)
        self._admin = tuple(_digest(t) for t in admin_tokens)
        self._keys = (
            None
            if keys is None
            else KeyGrants(
                keys, lookup_timeout=key_lookup_timeout, max_stale=key_max_stale, clock=clock
            )
        )
        self._jwt = jwt_settings
        jwks_url = jwt_settings.jwks_url if jwt_settings else ""
        self._jwks = jwt.PyJWKClient(jwks_url) if jwks_url else None
        self._required = require_credential or bool(tokens) or jwt_settings is not None

    @property
    def enabled(self) -> bool:
        """Whether callers must present a credential."""
        return self._required

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller's identity; `UnauthenticatedError` when the credential does not hold."""
        if not authorization:
            if self._required:
                raise UnauthenticatedError(
                    "missing credential: send 'authorization: Bearer <token>'"
                )
            return Identity()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if self._required:
                raise UnauthenticatedError("malformed credential: expected 'Bearer <token>'")
            return Identity()
        digest = _digest(token)
        if _matches(digest, self._admin):
            return Identity(admin=True)
        if _matches(digest, self._tokens):
            return Identity()
        if token.startswith(API_KEY_PREFIX) and self._keys is not None:
            # A gateway key is judged even on an open gateway: it names a tenant and its
            # limits, and a revoked one must not quietly turn into an anonymous caller.
            grant = await self._keys.grant(token, digest)
            if grant is None:
                raise UnauthenticatedError(INVALID)
            return Identity(tenant=grant.tenant, api_key_id=grant.key_id, grant=grant)
        if self._jwt is not None and token.count(".") == 2:
            return Identity(tenant=self._jwt_tenant(token))
        if self._required:
            raise UnauthenticatedError(INVALID)
        # An open gateway: a credential that is none of ours (the placeholder key every
        # OpenAI SDK sends) is ignored, as is a missing one.
        return Identity()

    def is_admin_token(self, authorization: str | None) -> bool:
        """Whether `authorization` carries the admin token."""
        if not authorization or not self._admin:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        return scheme.lower() == "bearer" and _matches(_digest(token.strip()), self._admin)

    def _jwt_tenant(self, token: str) -> str:
        settings = self._jwt
        assert settings is not None
        try:
            if self._jwks is not None:
                key: object = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "PS256", "EdDSA"]
            else:
                key, algorithms = settings.secret, ["HS256", "HS384", "HS512"]
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]  # PyJWT accepts any of its key types
                algorithms=algorithms,
                issuer=settings.issuer or None,
                audience=settings.audience or None,
                options={"require": ["exp"], "verify_aud": bool(settings.audience)},
            )
        except (jwt.PyJWTError, OSError):
            raise UnauthenticatedError(INVALID) from None
        tenant = claims.get(settings.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise UnauthenticatedError(INVALID)
        return tenant


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _matches(candidate: bytes, digests: tuple[bytes, ...]) -> bool:
    # Compared against every digest, so the time taken does not say which nearly matched.
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate, digest)
    return matched
