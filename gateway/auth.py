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
  (`KeyGrants`: each lookup bounded in time, and answers served stale while the store fails).
- JWT (`JWT_SECRET` for HS256, or `JWT_JWKS_URL`; `JWT_ISSUER`, `JWT_AUDIENCE`): the tenant is
  the `JWT_TENANT_CLAIM` claim.

With none of `INTERNAL_AUTH_TOKEN`, `REQUIRE_API_KEY` and JWT configured the gateway is open:
every caller is the request's tenant, and a bearer credential that is none of ours (the
placeholder key every OpenAI SDK sends) is ignored. A gateway API key is still checked, and the
admin token still needed for the admin API.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from gateway.errors import ServiceUnavailableError, UnauthenticatedError

log = logging.getLogger(__name__)

API_KEY_PREFIX = "aigw_"
DEFAULT_TENANT = "default"
KEY_CACHE_SECONDS = 2.0
DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS = 1.5
DEFAULT_KEY_MAX_STALE_SECONDS = 600.0
#: After a failed lookup the store is left alone this long: calls meanwhile do not wait on it.
STORE_RETRY_SECONDS = 1.0
MAX_CACHED_KEYS = 10_000
INVALID = "invalid credential"


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What the store says about a valid API key: its tenant and limits."""

    key_id: str
    tenant: str
    key_rpm: int | None = None
    key_tpm: int | None = None
    key_budget_usd: float | None = None
    tenant_rpm: int | None = None
    tenant_tpm: int | None = None
    tenant_budget_usd: float | None = None


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


KeyLookup = Callable[[str], Awaitable[KeyGrant | None]]


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


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the store said about one key, and when (on the clock `KeyGrants` runs on)."""

    grant: KeyGrant | None
    at: float


class KeyGrants:
    """API keys looked up in the store: cached briefly, bounded in time, stale-if-error.

    An answer is reused for `KEY_CACHE_SECONDS`, then the store is asked again, so a revocation
    is seen within seconds. Each lookup is bounded by `lookup_timeout`, and concurrent lookups
    of one key share one query. Once a lookup fails (or takes too long) the store counts as
    failing until one succeeds: meanwhile the last answer it gave about a key (a grant, or "no
    such key") is served at once for up to `max_stale` seconds after it was given, while the
    store is asked again in the background (no sooner than `STORE_RETRY_SECONDS` after the last
    failure). A key with no answer that recent waits for a lookup, or gets UNAVAILABLE with
    Retry-After at once within `STORE_RETRY_SECONDS` of a failure. The first answer once the
    store is back replaces the stale one, so a key revoked meanwhile is refused from then on.
    """

    def __init__(
        self,
        lookup: KeyLookup,
        *,
        lookup_timeout: float = DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS,
        max_stale: float = DEFAULT_KEY_MAX_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._timeout = lookup_timeout
        self._max_stale = max_stale
        self._clock = clock
        self._answers: dict[bytes, _Answer] = {}
        #: The lookup under way for a key, and when it began.
        self._flights: dict[bytes, tuple[float, asyncio.Task[KeyGrant | None]]] = {}
        #: Lookups given up on that have not ended yet (kept referenced until they do).
        self._stragglers: set[asyncio.Task[KeyGrant | None]] = set()
        self._failing_since: float | None = None
        self._left_alone_until = 0.0

    async def grant(self, secret: str, digest: bytes) -> KeyGrant | None:
        """The grant of key `secret` (None: unknown or revoked); UNAVAILABLE if unknowable."""
        known = self._answers.get(digest)
        now = self._clock()
        if known is not None and now - known.at < KEY_CACHE_SECONDS:
            return known.grant
        if self._failing_since is not None and self._fresh_enough(known, now):
            assert known is not None
            if now >= self._left_alone_until:
                self._flight(secret, digest, now)  # the answer comes in for the next call
            return known.grant
        if now < self._left_alone_until:
            return self._stale(known, now)
        flight = self._flight(secret, digest, now)
        await asyncio.wait({flight}, timeout=self._timeout)
        if flight.done() and not flight.cancelled() and flight.exception() is None:
            return flight.result()
        self._store_failed(flight.exception() if flight.done() and not flight.cancelled() else None)
        return self._stale(known, self._clock())

    def _flight(self, secret: str, digest: bytes, now: float) -> asyncio.Task[KeyGrant | None]:
        """The lookup of `digest` under way, or a new one."""
        under_way = self._flights.get(digest)
        if under_way is not None:
            began, flight = under_way
            if now - began <= self._timeout:
                return flight
            # Past its bound and not over (its connection may take long to give up): asked
            # afresh rather than waited on again.
            self._stragglers.add(flight)
        flight = asyncio.create_task(self._ask(secret, digest))
        self._flights[digest] = (now, flight)
        flight.add_done_callback(lambda done: self._landed(digest, done))
        return flight

    async def _ask(self, secret: str, digest: bytes) -> KeyGrant | None:
        try:
            async with asyncio.timeout(self._timeout):
                grant = await self._lookup(secret)
        except Exception as exc:
            self._store_failed(exc)
            raise
        self._remember(digest, grant)
        if self._failing_since is not None:
            log.info(
                "the store answers again: API keys are checked afresh",
                extra={"failing_seconds": round(self._clock() - self._failing_since, 3)},
            )
            self._failing_since = None
        self._left_alone_until = 0.0
        return grant

    def _landed(self, digest: bytes, flight: asyncio.Task[KeyGrant | None]) -> None:
        under_way = self._flights.get(digest)
        if under_way is not None and under_way[1] is flight:
            del self._flights[digest]
        self._stragglers.discard(flight)
        if not flight.cancelled():
            flight.exception()  # retrieved: a failure was handled in `_ask`

    def _remember(self, digest: bytes, grant: KeyGrant | None) -> None:
        self._answers.pop(digest, None)  # re-inserted last: the dict stays oldest-first
        self._answers[digest] = _Answer(grant, self._clock())
        if len(self._answers) > MAX_CACHED_KEYS:  # bounded: forget the oldest half
            for oldest in list(self._answers)[: MAX_CACHED_KEYS // 2]:
                del self._answers[oldest]

    def _store_failed(self, error: BaseException | None) -> None:
        now = self._clock()
        self._left_alone_until = now + STORE_RETRY_SECONDS
        if self._failing_since is not None:
            return
        self._failing_since = now
        cause = getattr(error, "__cause__", None) or error
        log.warning(
            "API keys cannot be checked in the store; known keys are served from memory",
            extra={
                "error": type(cause).__name__ if cause is not None else "TimeoutError",
                "lookup_timeout_seconds": self._timeout,
                "max_stale_seconds": self._max_stale,
            },
        )

    def _fresh_enough(self, known: _Answer | None, now: float) -> bool:
        return known is not None and now - known.at <= self._max_stale

    def _stale(self, known: _Answer | None, now: float) -> KeyGrant | None:
        if known is not None and self._fresh_enough(known, now):
            return known.grant
        raise ServiceUnavailableError(
            "API keys cannot be checked right now; retry shortly", retry_after=STORE_RETRY_SECONDS
        )


def key_digest(secret: str) -> str:
    """The SHA-256 hex under which an API key is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _matches(candidate: bytes, digests: tuple[bytes, ...]) -> bool:
    # Compared against every digest, so the time taken does not say which nearly matched.
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate, digest)
    return matched
