"""The Cohere adapter against a loopback fake of the v2 Chat API.

Identity, what goes on the wire, whole replies and HTTP errors; streams are in
`test_cohere_stream.py`.
"""

from __future__ import annotations

import orjson
import pytest

from providers.base import Provider
from providers.cohere import SPEC, CohereProvider
from providers.errors import (
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamNotFoundError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.types import Message, Usage
from tests.contract.harness import Vendor, chat, collect, hello
from tests.fakes.cohere_server import FakeCohere, FakeUsage, Fault

KEY = "co-test-0123456789abcdefSECRET"
OTHER_KEY = "co-test-second-key-SECRET"
HELLO = hello("command-a-03-2025")
VENDOR = Vendor(FakeCohere, SPEC, name="cohere-main", keys=(KEY,))


def reply(**fields: object) -> bytes:
    body = {"id": "r-1", "finish_reason": "COMPLETE", "message": {"role": "assistant"}} | fields
    return orjson.dumps(body)


# -- identity and wire -----------------------------------------------------------------------


def test_provider_satisfies_the_protocol(provider: CohereProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("cohere-main", "cohere")


def test_spec_describes_the_cohere_kind() -> None:
    assert (SPEC.kind, SPEC.factory, SPEC.env_prefix) == ("cohere", CohereProvider, "COHERE")
    assert SPEC.default_base_url == "https://api.cohere.com"
    assert "command-a-03-2025" in SPEC.default_models


async def test_request_body_sends_only_the_parameters_that_are_set(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    await provider.complete(HELLO)
    assert fake.requests[0].path == "/v2/chat"
    assert fake.requests[0].body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Say hello"}],
    }


async def test_request_body_carries_roles_and_every_set_parameter_in_cohere_names(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    roles = ("developer", "system", "user", "assistant", "tool")
    messages = tuple(Message.of_text(role, f"{role} says") for role in roles)
    request = chat("m", *messages, temperature=0.2, max_tokens=64, top_p=0.9, stop=("END",))
    await provider.complete(request)
    body = fake.requests[0].body
    wire_roles = ("system", "system", "user", "assistant", "tool")
    assert body["messages"] == [
        {"role": wire, "content": f"{role} says"}
        for wire, role in zip(wire_roles, roles, strict=True)
    ]
    assert (body["temperature"], body["max_tokens"], body["p"]) == (0.2, 64, 0.9)
    assert body["stop_sequences"] == ["END"]
    assert {"top_p", "stop", "stream"}.isdisjoint(body)


async def test_stream_request_sets_stream_true(provider: CohereProvider, fake: FakeCohere) -> None:
    await collect(provider, HELLO, [])
    assert fake.requests[0].body["stream"] is True


async def test_requests_carry_the_bearer_key_that_request_headers_cannot_replace(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    headers = (("authorization", "Bearer stolen"), ("x-request-id", "req-42"))
    await provider.complete(chat("m", *HELLO.messages, headers=headers))
    recorded = fake.requests[0].headers
    assert recorded.getall("Authorization") == [f"Bearer {KEY}"]
    assert recorded["X-Request-Id"] == "req-42"
    assert recorded["Content-Type"] == "application/json"


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_returns_id_requested_model_content_and_billed_usage(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.usage = FakeUsage(prompt_tokens=30, completion_tokens=7, cached_tokens=16)
    response = await provider.complete(HELLO)
    assert (response.id, response.model) == (fake.reply_id, "command-a-03-2025")
    assert (response.content, response.finish_reason) == ("Hello from fake Cohere", "stop")
    assert response.usage == Usage(30, 7, 37, cached_tokens=16)


async def test_complete_joins_the_text_items_and_skips_thinking(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    items = [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "Hel"}]
    items.append({"type": "text", "text": "lo"})
    fake.fail_next(Fault(raw_body=reply(message={"role": "assistant", "content": items})))
    assert (await provider.complete(HELLO)).content == "Hello"


@pytest.mark.parametrize(
    ("cohere", "ours"),
    [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"),
     ("TOOL_CALL", "tool_calls"), ("SOMETHING_NEW", "something_new")],
)  # fmt: skip
async def test_finish_reasons_are_mapped(
    provider: CohereProvider, fake: FakeCohere, cohere: str, ours: str
) -> None:
    fake.finish_reason = cohere
    assert (await provider.complete(HELLO)).finish_reason == ours


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT"])
async def test_failed_generation_raises_unavailable(
    provider: CohereProvider, fake: FakeCohere, reason: str
) -> None:
    fake.finish_reason = reason
    with pytest.raises(UpstreamUnavailableError, match=f"finish_reason {reason}"):
        await provider.complete(HELLO)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"billed_units": {"input_tokens": 9, "output_tokens": 4},
          "tokens": {"input_tokens": 80, "output_tokens": 6}}, Usage(9, 4, 13)),
        ({"tokens": {"input_tokens": 80, "output_tokens": 6}, "cached_tokens": 64},
         Usage(80, 6, 86, cached_tokens=64)),
        ({"billed_units": {"input_tokens": 9.0, "output_tokens": 4.0}}, Usage(9, 4, 13)),
        (None, Usage()),
    ],
    ids=["billed-units-win", "tokens-when-not-billed", "numbers-as-floats", "no-usage"],
)  # fmt: skip
async def test_usage_prefers_billed_units_and_falls_back_to_tokens(
    provider: CohereProvider, fake: FakeCohere, usage: object, expected: Usage
) -> None:
    fake.fail_next(Fault(raw_body=reply(usage=usage)))
    assert (await provider.complete(HELLO)).usage == expected


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"id": "r-1", "finish_reason": "COMPLETE"}',
     reply(message={"content": "text"}), reply(message={"content": [{"type": "text", "text": 5}]}),
     reply(usage={"billed_units": {"input_tokens": "many"}}),
     reply(usage={"billed_units": {"input_tokens": 1.5}})],
)  # fmt: skip
async def test_malformed_200_body_raises_unavailable(
    provider: CohereProvider, fake: FakeCohere, body: bytes
) -> None:
    fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await provider.complete(HELLO)


# -- HTTP errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, UpstreamBadRequestError), (422, UpstreamBadRequestError), (404, UpstreamNotFoundError)],
)
async def test_request_errors_quote_cohere_message_with_the_key_redacted(
    provider: CohereProvider, fake: FakeCohere, status: int, error: type[Exception]
) -> None:
    fake.fail_next(Fault(status=status, error_message=f"invalid request: key {KEY} model 'x'"))
    with pytest.raises(error, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert str(caught.value).endswith(": invalid request: key [redacted] model 'x'")


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "invalid api token"), (402, "billing limit reached"), (403, "forbidden"),
     (498, "invalid api token"), (498, "some other wording")],
)  # fmt: skip
async def test_rejected_key_raises_auth_error_and_rests_the_key(
    fake: FakeCohere, session: UpstreamClient, status: int, message: str
) -> None:
    provider = VENDOR.adapter(session, fake.base_url, keys=(KEY, OTHER_KEY))
    fake.fail_next(Fault(status=status, error_message=f"{message}: {KEY}"))
    with pytest.raises(UpstreamAuthError, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert message.split()[0] not in str(caught.value)
    assert KEY not in str(caught.value)
    await provider.complete(HELLO)
    await provider.complete(HELLO)
    assert fake.keys_seen == [KEY, OTHER_KEY, OTHER_KEY]


@pytest.mark.parametrize(
    "fault",
    [*(Fault(status=status, error_message="internal detail") for status in (499, 500, 503)),
     Fault(status=502, raw_body=b"<html>internal detail</html>")],
    ids=["499", "500", "503", "502-not-json"],
)  # fmt: skip
async def test_other_statuses_raise_unavailable_without_quoting_the_body(
    provider: CohereProvider, fake: FakeCohere, fault: Fault
) -> None:
    fake.fail_next(fault)
    with pytest.raises(UpstreamUnavailableError, match=f"HTTP {fault.status}") as caught:
        await provider.complete(HELLO)
    assert "internal detail" not in str(caught.value)
