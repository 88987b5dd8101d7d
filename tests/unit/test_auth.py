"""Credentials resolve to identities; every bad credential looks the same from outside."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from gateway.errors import ServiceUnavailableError, UnauthenticatedError
from gateway.tenancy.auth import Authenticator, JwtSettings, KeyGrant

TOKENS = ("token-one", "token-two")
GOOD_KEY = "aigw_good"
GRANT = KeyGrant(key_id="key_1", tenant="acme")


async def lookup(secret: str) -> KeyGrant | None:
    return GRANT if secret == GOOD_KEY else None


async def rejected(auth: Authenticator, header: str | None) -> str:
    with pytest.raises(UnauthenticatedError) as caught:
        await auth.authenticate(header)
    return caught.value.message


async def test_open_gateway_accepts_callers_without_a_credential() -> None:
    identity = await Authenticator().authenticate(None)
    assert identity.tenant is None
    assert identity.tenant_for("team-a") == "team-a"
    assert identity.tenant_for("") == "default"


async def test_shared_tokens_are_required_once_configured() -> None:
    auth = Authenticator(TOKENS)
    assert "missing credential" in await rejected(auth, None)
    assert "malformed" in await rejected(auth, "Basic token-one")
    assert await rejected(auth, "Bearer nope") == "invalid credential"
    for token in TOKENS:
        assert (await auth.authenticate(f"bearer {token}")).tenant is None


async def test_messages_never_contain_the_presented_or_configured_token() -> None:
    auth = Authenticator(TOKENS, keys=lookup)
    for header in ("Bearer token-onf", "Bearer aigw_wrong", "Bearer aigw_revoked"):
        message = await rejected(auth, header)
        assert "token-one" not in message
        assert header.split()[1] not in message


async def test_an_api_key_fixes_the_tenant_and_carries_its_grant() -> None:
    identity = await Authenticator(keys=lookup).authenticate(f"Bearer {GOOD_KEY}")
    assert (identity.tenant, identity.api_key_id, identity.grant) == ("acme", "key_1", GRANT)
    assert identity.tenant_for("someone-else") == "acme"


async def test_unknown_and_revoked_keys_get_the_same_answer() -> None:
    auth = Authenticator(keys=lookup)
    assert await rejected(auth, "Bearer aigw_unknown") == await rejected(auth, "Bearer aigw_x")


async def test_a_key_lookup_is_cached_for_a_short_while() -> None:
    calls: list[str] = []
    now = [100.0]

    async def counting(secret: str) -> KeyGrant | None:
        calls.append(secret)
        return GRANT

    auth = Authenticator(keys=counting, clock=lambda: now[0])
    for _ in range(3):
        await auth.authenticate(f"Bearer {GOOD_KEY}")
    assert len(calls) == 1
    now[0] += 2.5  # past the cache: a revocation is seen within seconds
    await auth.authenticate(f"Bearer {GOOD_KEY}")
    assert len(calls) == 2


async def test_the_admin_token_is_recognised() -> None:
    auth = Authenticator(admin_tokens=("root-token",))
    assert (await auth.authenticate("Bearer root-token")).admin
    assert auth.is_admin_token("Bearer root-token")
    assert not auth.is_admin_token("Bearer other")
    assert not auth.is_admin_token(None)


async def test_a_jwt_signed_with_the_secret_maps_its_claim_to_the_tenant() -> None:
    settings = JwtSettings(secret="s" * 32, issuer="idp", audience="gateway", tenant_claim="org")
    auth = Authenticator(jwt_settings=settings)
    claims = {"org": "team-x", "iss": "idp", "aud": "gateway", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, "s" * 32, algorithm="HS256")
    assert (await auth.authenticate(f"Bearer {good}")).tenant == "team-x"
    wrong_audience = jwt.encode({**claims, "aud": "other"}, "s" * 32, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, "s" * 32, algorithm="HS256")
    forged = jwt.encode(claims, "x" * 32, algorithm="HS256")
    for token in (wrong_audience, expired, forged):
        assert await rejected(auth, f"Bearer {token}") == "invalid credential"


class Store:
    """A key store that can answer, fail at once, or hang; counts the questions it gets."""

    def __init__(self) -> None:
        self.mode = "up"
        self.revoked: set[str] = set()
        self.asked = 0
        self.released = asyncio.Event()

    async def lookup(self, secret: str) -> KeyGrant | None:
        self.asked += 1
        if self.mode == "down":
            raise ServiceUnavailableError("the store is down")
        if self.mode == "hung":
            await self.released.wait()
        return GRANT if secret == GOOD_KEY and secret not in self.revoked else None


def grants(
    store: Store, now: list[float], *, max_stale: float = 60.0, timeout: float = 0.05
) -> Authenticator:
    return Authenticator(
        keys=store.lookup, key_lookup_timeout=timeout, key_max_stale=max_stale, clock=lambda: now[0]
    )


async def background() -> None:
    """Let lookups started in the background run (the fake store answers at once)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_known_key_is_served_stale_while_the_store_fails() -> None:
    store, now = Store(), [100.0]
    auth = grants(store, now)
    assert (await auth.authenticate(f"Bearer {GOOD_KEY}")).grant == GRANT
    store.mode = "down"
    now[0] += 30  # far past the 2 s cache, within the 60 s staleness bound
    assert (await auth.authenticate(f"Bearer {GOOD_KEY}")).grant == GRANT


async def test_a_hung_store_is_waited_on_no_longer_than_the_lookup_timeout() -> None:
    store, now = Store(), [100.0]
    auth = grants(store, now)
    await auth.authenticate(f"Bearer {GOOD_KEY}")
    store.mode = "hung"
    now[0] += 5
    async with asyncio.timeout(1.0):  # the lookup's bound is 0.05 s
        assert (await auth.authenticate(f"Bearer {GOOD_KEY}")).grant == GRANT
        with pytest.raises(ServiceUnavailableError) as caught:
            await auth.authenticate("Bearer aigw_never_seen")
    assert caught.value.retry_after == 1.0


async def test_staleness_is_bounded() -> None:
    store, now = Store(), [100.0]
    auth = grants(store, now, max_stale=10.0)
    await auth.authenticate(f"Bearer {GOOD_KEY}")
    store.mode = "down"
    now[0] += 11
    with pytest.raises(ServiceUnavailableError):
        await auth.authenticate(f"Bearer {GOOD_KEY}")


async def test_a_key_revoked_meanwhile_is_refused_once_the_store_answers() -> None:
    store, now = Store(), [100.0]
    auth = grants(store, now)
    await auth.authenticate(f"Bearer {GOOD_KEY}")
    store.revoked.add(GOOD_KEY)
    store.mode = "down"
    now[0] += 3
    assert (await auth.authenticate(f"Bearer {GOOD_KEY}")).grant == GRANT  # stale, store down
    store.mode = "up"
    now[0] += 1.1  # past the pause after a failure: the store is asked again
    # This call is answered from memory while the store is asked; its answer holds from then on.
    await auth.authenticate(f"Bearer {GOOD_KEY}")
    await background()
    assert await rejected(auth, f"Bearer {GOOD_KEY}") == "invalid credential"
    now[0] += 1.5
    assert await rejected(auth, f"Bearer {GOOD_KEY}") == "invalid credential"


async def test_while_the_store_fails_known_keys_never_wait_on_it() -> None:
    store, now = Store(), [100.0]
    auth = grants(store, now, timeout=5.0)
    await auth.authenticate(f"Bearer {GOOD_KEY}")
    store.mode = "down"
    now[0] += 3
    await auth.authenticate(f"Bearer {GOOD_KEY}")  # fails at once: the store is failing
    store.mode = "hung"  # from now on a lookup would take its whole 5 s bound
    asked = store.asked
    try:
        async with asyncio.timeout(1.0):
            for _ in range(5):
                now[0] += 0.1
                assert (await auth.authenticate(f"Bearer {GOOD_KEY}")).grant == GRANT
            assert store.asked == asked  # left alone for a second after the failure
            now[0] += 1.0
            assert (await auth.authenticate(f"Bearer {GOOD_KEY}")).grant == GRANT
            await background()
            assert store.asked == asked + 1  # asked again, in the background
    finally:
        store.released.set()
        await background()


async def test_concurrent_lookups_of_one_key_share_one_question() -> None:
    store, now = Store(), [100.0]
    auth = grants(store, now)
    identities = await asyncio.gather(*(auth.authenticate(f"Bearer {GOOD_KEY}") for _ in range(20)))
    assert {identity.grant for identity in identities} == {GRANT}
    assert store.asked == 1
