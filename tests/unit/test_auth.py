"""`TokenAuthenticator`: bearer tokens from `INTERNAL_AUTH_TOKEN`."""

from __future__ import annotations

import pytest

from gateway.auth import TokenAuthenticator
from gateway.errors import UnauthenticatedError

TOKENS = ("tok-alpha-0001", "tok-beta-0002", "tok-gamma-0003")
ENABLED = TokenAuthenticator(TOKENS)


def rejection(authorization: str | None) -> str:
    """The message `ENABLED` rejects `authorization` with."""
    with pytest.raises(UnauthenticatedError) as exc_info:
        ENABLED.check(authorization)
    return exc_info.value.message


def test_with_no_tokens_a_caller_without_credential_is_accepted() -> None:
    TokenAuthenticator(()).check(None)


def test_with_no_tokens_auth_is_disabled() -> None:
    assert TokenAuthenticator(()).enabled is False


def test_with_tokens_auth_is_enabled() -> None:
    assert ENABLED.enabled is True


def test_missing_credential_is_rejected() -> None:
    assert rejection(None).startswith("missing credential")


def test_other_scheme_is_rejected() -> None:
    assert rejection("Basic x").startswith("malformed credential")


def test_bearer_without_a_token_is_rejected() -> None:
    assert rejection("Bearer   ").startswith("malformed credential")


def test_wrong_token_is_rejected() -> None:
    assert rejection("Bearer tok-alpha-0002") == "invalid credential"


@pytest.mark.parametrize("token", TOKENS)
def test_each_configured_token_is_accepted(token: str) -> None:
    ENABLED.check(f"Bearer {token}")


def test_scheme_is_case_insensitive() -> None:
    ENABLED.check(f"bearer {TOKENS[1]}")


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic tok-alpha-0001", "Bearer not-a-token-9999", "Bearer tok-alpha-000"],
)
def test_rejection_message_contains_no_token(authorization: str | None) -> None:
    message = rejection(authorization)

    presented = (authorization or "").partition(" ")[2]
    leaked = [token for token in (*TOKENS, presented) if token and token in message]
    assert leaked == []
