"""The Ollama adapter against a loopback fake of `POST /api/chat`."""

from __future__ import annotations

import pytest

from providers.base import Provider
from providers.errors import (
    StreamInterruptedError,
    UpstreamBadRequestError,
    UpstreamNotFoundError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.ollama import SPEC, OllamaProvider
from providers.types import Finish, Meta, StreamEvent, TextDelta, Usage
from tests.contract.harness import Vendor, chat, collect, deltas, finish, hello
from tests.fakes.ollama_server import FakeOllama, Fault

HELLO = hello("llama3.2")
#: A bare Ollama server: no key.
VENDOR = Vendor(FakeOllama, SPEC, name="ollama-local")


# -- identity --------------------------------------------------------------------------------


def test_provider_satisfies_the_protocol(provider: OllamaProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("ollama-local", "ollama")


def test_spec_defaults_to_the_local_server_with_no_listed_models() -> None:
    assert (SPEC.kind, SPEC.env_prefix) == ("ollama", "OLLAMA")
    assert SPEC.default_base_url == "http://127.0.0.1:11434"
    assert SPEC.default_models == ()


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_makes_an_id_and_returns_the_servers_model(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.model = "llama3.2:3b"
    first, second = await provider.complete(HELLO), await provider.complete(HELLO)
    assert first.id.startswith("ollama-")
    assert first.id != second.id
    assert first.model == "llama3.2:3b"


@pytest.mark.parametrize(
    ("done_reason", "expected"),
    [(None, "stop"), ("stop", "stop"), ("length", "length"), ("load", "stop"), ("unload", "stop")],
)
async def test_done_reason_becomes_our_finish_reason(
    provider: OllamaProvider, fake: FakeOllama, done_reason: str | None, expected: str
) -> None:
    fake.finish_reason = done_reason
    assert (await provider.complete(HELLO)).finish_reason == expected


# -- what goes on the wire -------------------------------------------------------------------


async def test_unary_body_says_stream_false_and_sends_no_unset_options(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await provider.complete(HELLO)
    assert fake.requests[0].path == "/api/chat"
    assert fake.requests[0].body == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": False,
    }


async def test_parameters_go_in_options_with_max_tokens_as_num_predict(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    request = chat(
        "llama3.2",
        ("developer", "Be brief."),
        ("user", "Hi"),
        temperature=0.2,
        max_tokens=64,
        top_p=0.9,
        stop=("\n\n", "END"),
    )
    await provider.complete(request)
    body = fake.requests[0].body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "num_predict": 64,
        "stop": ["\n\n", "END"],
    }


async def test_stream_body_says_stream_true_and_accepts_ndjson(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await collect(provider, HELLO, [])
    assert fake.requests[0].body["stream"] is True
    assert fake.requests[0].headers["Accept"] == "application/x-ndjson"


async def test_no_authorization_header_is_sent_without_a_key(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await provider.complete(HELLO)
    assert "Authorization" not in fake.requests[0].headers


async def test_a_key_is_sent_as_a_bearer_token_for_an_auth_proxy(
    fake: FakeOllama, session: UpstreamClient
) -> None:
    await VENDOR.adapter(session, fake.base_url, keys=("proxy-token",)).complete(HELLO)
    assert fake.keys_seen == ["proxy-token"]


# -- streams ---------------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_finish_reason_and_usage(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    events = await collect(provider, HELLO)
    head, *content, _ = events
    assert isinstance(head, Meta)
    assert head.id.startswith("ollama-")
    assert head.model == "llama3.2"
    assert [e for e in events if isinstance(e, Meta)] == [head]
    assert content == [TextDelta(text) for text in fake.deltas]
    assert finish(events) == Finish(
        "stop", Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17)
    )


async def test_stream_reassembles_lines_split_across_network_reads(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.reply = "Grüße aus Köln 👋 ナイス"
    fake.fail_next(Fault(fragment=3))
    chunks: list[StreamEvent] = []
    await collect(provider, HELLO, chunks)
    assert "".join(deltas(chunks)) == fake.reply
    assert finish(chunks).usage is not None


async def test_stream_ending_cleanly_without_the_done_line_raises(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.fail_next(Fault(break_after=99, break_with="eof"))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match="without its done line"):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas


async def test_error_line_mid_stream_interrupts_the_stream(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.fail_next(
        Fault(break_after=2, break_with="error_event", error_message="model runner crashed")
    )
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match="error line") as caught:
        await collect(provider, HELLO, chunks)
    assert len(deltas(chunks)) == 2
    assert "model runner crashed" not in str(caught.value)


async def test_error_line_before_any_chunk_is_unavailable_not_interrupted(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.fail_next(Fault(break_after=0, break_with="error_event"))
    with pytest.raises(UpstreamUnavailableError, match="error line") as caught:
        await collect(provider, HELLO, [])
    assert not isinstance(caught.value, StreamInterruptedError)


# -- HTTP errors -----------------------------------------------------------------------------


async def test_404_for_a_model_not_pulled_raises_not_found_naming_the_model(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    message = 'model "llama9" not found, try pulling it first'
    fake.fail_next(Fault(status=404, error_message=message))
    with pytest.raises(UpstreamNotFoundError, match="llama9") as caught:
        await provider.complete(HELLO)
    assert caught.value.provider == "ollama-local"


async def test_400_raises_bad_request_quoting_ollama(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.fail_next(Fault(status=400, error_message="invalid options: num_predict"))
    with pytest.raises(UpstreamBadRequestError, match="invalid options: num_predict"):
        await provider.complete(HELLO)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_raise_unavailable_without_quoting(
    provider: OllamaProvider, fake: FakeOllama, status: int
) -> None:
    fake.fail_next(Fault(status=status, error_message="llama runner process has terminated"))
    with pytest.raises(UpstreamUnavailableError, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert "llama runner" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[]",
        b'{"model": "llama3.2", "done": true}',
        b'{"message": {"role": "assistant", "content": 5}, "done": true}',
        b'{"message": {"content": "hi"}, "done": true, "eval_count": "many"}',
        b'{"message": {"content": "", "tool_calls": {"function": {}}}, "done": true}',
        b'{"message": {"tool_calls": [{"function": {"arguments": {}}}]}, "done": true}',
        b'{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}, "done": 1}',
    ],
)
async def test_malformed_200_body_raises_unavailable(
    provider: OllamaProvider, fake: FakeOllama, body: bytes
) -> None:
    fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await provider.complete(HELLO)
