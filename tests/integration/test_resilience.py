"""Failures stay small: breakers, retries, fallbacks, deadlines, admission, both transports."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import orjson
import pytest

from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Fault
from tests.fakes.openai_server import FakeOpenAI
from tests.sse import read_sse
from tests.upstream_support import vendor_fake_fixture

MODEL = "gpt-4o-mini"
FALLBACK_MODEL = "claude-sonnet-4-5"
DISCONNECT_WAIT = 5.0


def ask(text: str = "hi", **fields: Any) -> pb.CompleteRequest:
    return pb.CompleteRequest(
        model=MODEL, messages=[pb.Message(role="user", content=text)], **fields
    )


def body(text: str = "hi", **fields: Any) -> bytes:
    return orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}], **fields})


def openai(fake: FakeOpenAI) -> ProviderSettings:
    return ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=("k",), models=(MODEL,)
    )


def anthropic(fake: FakeAnthropic) -> ProviderSettings:
    return ProviderSettings(
        name="anthropic",
        kind="anthropic",
        base_url=fake.base_url,
        api_keys=("k",),
        models=(FALLBACK_MODEL,),
    )


fake = vendor_fake_fixture(FakeOpenAI)
backup = vendor_fake_fixture(FakeAnthropic)


async def grpc_code(gw: RunningGateway, request: pb.CompleteRequest, **kw: Any) -> grpc.StatusCode:
    try:
        await gw.stub.Complete(request, **kw)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def circuit(gw: RunningGateway, name: str = "openai") -> pb.ProviderInfo:
    reply: pb.ProviderStatusResponse = await gw.stub.ProviderStatus(
        pb.ProviderStatusRequest(provider=name)
    )
    return reply.providers[0]


# -- circuit breakers ---------------------------------------------------------------------------


async def test_five_500s_open_the_circuit_and_the_sixth_call_fails_fast_on_both_transports(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers=(openai(fake),), primary_retries=0, circuit_breaker_reset_timeout=30.0
    )
    fake.persistent_fault = Fault(status=500)
    for _ in range(5):
        assert await grpc_code(gw, ask()) == grpc.StatusCode.UNAVAILABLE
    status = await circuit(gw)
    assert status.circuit_state == pb.CIRCUIT_STATE_OPEN
    assert status.last_error == "UpstreamUnavailableError"
    assert status.next_probe_at.ToSeconds() - status.opened_at.ToSeconds() == pytest.approx(30, 1)

    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(ask())
    grpc_elapsed = time.perf_counter() - started
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    pushback = dict(caught.value.trailing_metadata() or ())
    assert 28_000 < int(pushback["grpc-retry-pushback-ms"]) <= 30_000

    started = time.perf_counter()
    async with gw.http.post(gw.http_url + "/v1/complete", data=body()) as reply:
        http_elapsed = time.perf_counter() - started
        assert reply.status == 503
        assert 28 <= int(reply.headers["Retry-After"]) <= 30
    assert len(fake.requests) == 5  # neither call reached the upstream
    assert grpc_elapsed < 0.05  # generous: it fails fast, not after a try or a timeout
    assert http_elapsed < 0.05


async def test_after_the_reset_timeout_exactly_one_probe_goes_through_and_success_closes(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers=(openai(fake),),
        primary_retries=0,
        circuit_breaker_fail_max=2,
        circuit_breaker_reset_timeout=0.3,
    )
    fake.persistent_fault = Fault(status=503)
    for _ in range(2):
        await grpc_code(gw, ask())
    assert (await circuit(gw)).circuit_state == pb.CIRCUIT_STATE_OPEN
    await asyncio.sleep(0.4)

    fake.persistent_fault = Fault(delay=0.3)  # healthy again, but slow: the calls overlap
    codes = await asyncio.gather(*(grpc_code(gw, ask()) for _ in range(4)))
    assert sorted(c.name for c in codes) == ["OK", "UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE"]
    assert len(fake.requests) == 3  # two failures, then exactly one probe
    status = await circuit(gw)
    assert (status.circuit_state, status.consecutive_failures) == (pb.CIRCUIT_STATE_CLOSED, 0)
    fake.persistent_fault = None
    assert await grpc_code(gw, ask()) == grpc.StatusCode.OK


async def test_a_failed_probe_opens_the_circuit_again(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers=(openai(fake),),
        primary_retries=0,
        circuit_breaker_fail_max=1,
        circuit_breaker_reset_timeout=0.2,
    )
    fake.persistent_fault = Fault(status=500)
    await grpc_code(gw, ask())
    await asyncio.sleep(0.3)
    assert await grpc_code(gw, ask()) == grpc.StatusCode.UNAVAILABLE  # the probe
    assert await grpc_code(gw, ask()) == grpc.StatusCode.UNAVAILABLE  # fails fast
    assert len(fake.requests) == 2
    assert (await circuit(gw)).circuit_state == pb.CIRCUIT_STATE_OPEN


async def test_caller_errors_and_cancellations_never_open_a_circuit(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), circuit_breaker_fail_max=2)
    fake.fail_next(*(Fault(status=400) for _ in range(5)))
    for _ in range(5):
        assert await grpc_code(gw, ask()) == grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(5):
        fake.fail_next(Fault(delay=10))
        fake.client_disconnected.clear()
        call = gw.stub.Complete(ask())
        fake.request_received.clear()
        await asyncio.wait_for(fake.request_received.wait(), DISCONNECT_WAIT)
        call.cancel()
        await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    status = await circuit(gw)
    assert (status.circuit_state, status.consecutive_failures) == (pb.CIRCUIT_STATE_CLOSED, 0)
    assert await grpc_code(gw, ask()) == grpc.StatusCode.OK


async def test_a_429_does_not_count_against_the_circuit(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers=(openai(fake),), primary_retries=0, circuit_breaker_fail_max=2
    )
    rate_limited = Fault(status=429, headers={"retry-after": "0"})  # the key is usable at once
    fake.fail_next(Fault(status=500), *(rate_limited for _ in range(3)), Fault(status=500))
    codes = [await grpc_code(gw, ask()) for _ in range(4)]
    assert codes == [grpc.StatusCode.UNAVAILABLE] + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    assert (await circuit(gw)).circuit_state == pb.CIRCUIT_STATE_CLOSED
    await grpc_code(gw, ask())  # the second consecutive health failure: 429s neither reset it
    assert (await circuit(gw)).circuit_state == pb.CIRCUIT_STATE_OPEN


# -- retries and fallbacks ----------------------------------------------------------------------


async def test_5xx_is_retried_with_backoff_then_answered(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), retry_backoff_base_seconds=0.01)
    fake.fail_next(Fault(status=502), Fault(status=503))
    response = await gw.stub.Complete(ask())
    assert [a.outcome for a in response.attempts] == [
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert [a.error_code for a in response.attempts] == ["UNAVAILABLE", "UNAVAILABLE", ""]
    assert len(fake.requests) == 3


async def test_an_unavailable_primary_falls_back_and_attempts_name_both(
    start_gateway: StartGateway, fake: FakeOpenAI, backup: FakeAnthropic
) -> None:
    gw = await start_gateway(
        providers=(openai(fake), anthropic(backup)),
        fallbacks={MODEL: (FALLBACK_MODEL,)},
        retry_backoff_base_seconds=0.01,
    )
    fake.persistent_fault = Fault(status=503)
    response = await gw.stub.Complete(ask())
    assert (response.provider, response.content) == ("anthropic", backup.reply)
    tried = [(a.provider, a.model, a.outcome) for a in response.attempts]
    assert tried == [
        ("openai", MODEL, pb.ATTEMPT_OUTCOME_ERROR),
        ("openai", MODEL, pb.ATTEMPT_OUTCOME_ERROR),
        ("openai", MODEL, pb.ATTEMPT_OUTCOME_ERROR),
        ("anthropic", FALLBACK_MODEL, pb.ATTEMPT_OUTCOME_SUCCESS),
    ]
    assert all(a.latency.ToNanoseconds() > 0 for a in response.attempts)


async def test_request_fallback_models_over_json_and_open_circuits_are_skipped(
    start_gateway: StartGateway, fake: FakeOpenAI, backup: FakeAnthropic
) -> None:
    gw = await start_gateway(
        providers=(openai(fake), anthropic(backup)), primary_retries=0, circuit_breaker_fail_max=1
    )
    fake.persistent_fault = Fault(status=500)
    request = body(fallback_models=[FALLBACK_MODEL])
    async with gw.http.post(gw.http_url + "/v1/complete", data=request) as reply:
        first = orjson.loads(await reply.read())
    async with gw.http.post(gw.http_url + "/v1/complete", data=request) as reply:
        second = orjson.loads(await reply.read())
    assert first["provider"] == second["provider"] == "anthropic"
    assert [a["outcome"] for a in second["attempts"]] == [
        "ATTEMPT_OUTCOME_CIRCUIT_OPEN",
        "ATTEMPT_OUTCOME_SUCCESS",
    ]
    assert len(fake.requests) == 1


async def test_a_429_retry_waits_for_retry_after_when_the_deadline_allows(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),))
    fake.fail_next(Fault(status=429, headers={"retry-after": "1"}))
    started = time.perf_counter()
    response = await gw.stub.Complete(ask(), timeout=5)
    elapsed = time.perf_counter() - started
    assert [a.outcome for a in response.attempts] == [
        pb.ATTEMPT_OUTCOME_RATE_LIMITED,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert 1.0 <= elapsed < 3.0


async def test_a_429_is_not_retried_when_retry_after_does_not_fit_the_deadline(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),))
    fake.fail_next(Fault(status=429, headers={"retry-after": "1"}))
    started = time.perf_counter()
    assert await grpc_code(gw, ask(), timeout=0.5) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.perf_counter() - started < 0.4
    assert len(fake.requests) == 1


# -- streams --------------------------------------------------------------------------------------


async def test_a_stream_cut_after_3_chunks_ends_with_an_error_and_is_not_retried(
    start_gateway: StartGateway, fake: FakeOpenAI, backup: FakeAnthropic
) -> None:
    gw = await start_gateway(
        providers=(openai(fake), anthropic(backup)), fallbacks={MODEL: (FALLBACK_MODEL,)}
    )
    fake.reply = "one two three four five six"
    fake.fail_next(Fault(break_after=3, break_with="eof"))
    call = gw.stub.StreamComplete(
        pb.StreamCompleteRequest(model=MODEL, messages=[pb.Message(role="user", content="hi")])
    )
    received: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(call, received)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "".join(received) == "one two three "  # merged when they waited for one write

    fake.fail_next(Fault(break_after=3, break_with="eof"))
    async with gw.http.post(gw.http_url + "/v1/complete:stream", data=body()) as reply:
        events = await read_sse(reply)
    *chunks, error, done = events
    assert [kind for kind, _ in chunks] == ["message"] * len(chunks)
    assert "".join(orjson.loads(data)["delta"] for _, data in chunks) == "one two three "
    assert (error[0], done) == ("error", ("message", "[DONE]"))
    assert len(fake.requests) == 2  # one per stream: no retry
    assert backup.requests == []  # and no fallback


async def collect(call: Any, into: list[str]) -> None:
    async for message in call:
        into.append(message.delta)


async def test_a_stream_failing_before_its_first_chunk_is_retried(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), retry_backoff_base_seconds=0.01)
    fake.fail_next(Fault(status=503))
    call = gw.stub.StreamComplete(
        pb.StreamCompleteRequest(model=MODEL, messages=[pb.Message(role="user", content="hi")])
    )
    *_, last = [m async for m in call]
    assert [a.outcome for a in last.attempts] == [
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]


async def test_a_stream_that_said_its_id_then_broke_before_any_text_is_retried(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), retry_backoff_base_seconds=0.01)
    # The role chunk (id and model, no text) arrives; then a malformed frame.
    fake.fail_next(Fault(break_after=0, break_with="malformed"))
    call = gw.stub.StreamComplete(
        pb.StreamCompleteRequest(model=MODEL, messages=[pb.Message(role="user", content="hi")])
    )
    messages = [m async for m in call]
    assert "".join(m.delta for m in messages) == fake.reply
    assert {m.id for m in messages} == {"chatcmpl-fake2"}  # the answering try's id only
    assert [a.outcome for a in messages[-1].attempts] == [
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]


async def test_an_idle_stream_ends_with_an_error_and_closes_the_upstream(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), stream_idle_timeout_seconds=0.3)
    fake.fail_next(Fault(chunk_delay=1.0))  # each chunk, the first too, comes after 1 s
    started = time.perf_counter()
    async with gw.http.post(gw.http_url + "/v1/complete:stream", data=body()) as reply:
        events = await read_sse(reply)
    assert [kind for kind, _ in events] == ["message", "error", "message"]
    assert "sent nothing for 0.3s" in orjson.loads(events[1][1])["error"]["message"]
    assert time.perf_counter() - started < 1.9  # 1 s to the first chunk, 0.3 s idle after it
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)


# -- deadlines ------------------------------------------------------------------------------------


async def test_a_200ms_deadline_against_a_2s_upstream_is_deadline_exceeded_in_about_200ms(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),))
    fake.fail_next(Fault(delay=2.0))
    started = time.perf_counter()
    assert await grpc_code(gw, ask(), timeout=0.2) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.19 <= time.perf_counter() - started < 0.6
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert len(fake.requests) == 1  # a spent deadline is never retried


@pytest.mark.parametrize("header", ["0.2", "0.2s", "200ms"])
async def test_x_request_timeout_bounds_the_call_on_both_transports(
    start_gateway: StartGateway, fake: FakeOpenAI, header: str
) -> None:
    gw = await start_gateway(providers=(openai(fake),))
    fake.fail_next(Fault(delay=2.0), Fault(delay=2.0))
    metadata = (("x-request-timeout", header),)
    assert await grpc_code(gw, ask(), metadata=metadata) == grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.perf_counter()
    headers = {"x-request-timeout": header}
    async with gw.http.post(gw.http_url + "/v1/complete", data=body(), headers=headers) as r:
        assert r.status == 504
    assert time.perf_counter() - started < 0.6


@pytest.mark.parametrize("path", ["/v1/complete", "/v1/complete:stream"])
async def test_a_per_try_limit_a_hair_before_the_callers_deadline_is_the_callers_outcome(
    start_gateway: StartGateway, fake: FakeOpenAI, path: str
) -> None:
    # The per-try timer goes off 3.5 ms before the caller's own deadline: the try was cut by
    # the caller's time (no other try could fit), not by a slow provider.
    gw = await start_gateway(
        providers=(openai(fake),), per_try_timeout_seconds=0.2, circuit_breaker_fail_max=1
    )
    fake.persistent_fault = Fault(delay=1.0)
    async with gw.http.post(gw.http_url + path, data=body(timeout="0.2035s")) as reply:
        assert reply.status == 504, await reply.text()
        assert (await reply.json())["error"]["code"] == "DEADLINE_EXCEEDED"
    status = await circuit(gw)
    assert (status.circuit_state, status.consecutive_failures) == (pb.CIRCUIT_STATE_CLOSED, 0)
    assert len(fake.requests) == 1  # and it was not retried


async def test_a_bad_x_request_timeout_is_invalid_argument(gw: RunningGateway) -> None:
    metadata = (("x-request-timeout", "soon"),)
    request = pb.CompleteRequest(model="mock", messages=[pb.Message(role="user", content="x")])
    assert await grpc_code(gw, request, metadata=metadata) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_per_try_timeout_retries_a_slow_first_byte(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers=(openai(fake),), per_try_timeout_seconds=0.3, retry_backoff_base_seconds=0.01
    )
    fake.fail_next(Fault(delay=2.0))
    response = await gw.stub.Complete(ask(), timeout=5)
    assert [a.outcome for a in response.attempts] == [
        pb.ATTEMPT_OUTCOME_TIMEOUT,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert response.attempts[0].error_code == "UNAVAILABLE"


# -- admission ------------------------------------------------------------------------------------


async def test_admission_queues_by_priority_and_rejects_past_the_queue_at_once(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), max_workers=2, queue_size=2)
    fake.persistent_fault = Fault(delay=0.5)
    running = [asyncio.ensure_future(gw.stub.Complete(ask(f"running {i}"))) for i in range(2)]
    await wait_for_requests(fake, 2)
    low = asyncio.ensure_future(gw.stub.Complete(ask("low", priority=pb.PRIORITY_LOW)))
    await asyncio.sleep(0.05)
    high = asyncio.ensure_future(gw.stub.Complete(ask("high", priority=pb.PRIORITY_HIGH)))
    await asyncio.sleep(0.05)

    started = time.perf_counter()
    async with gw.http.post(gw.http_url + "/v1/complete", data=body("fifth")) as reply:
        assert reply.status == 503
        assert int(reply.headers["Retry-After"]) >= 1
    assert time.perf_counter() - started < 0.1  # rejected at once, not after a wait
    assert await grpc_code(gw, ask("sixth")) == grpc.StatusCode.UNAVAILABLE

    await asyncio.gather(*running, low, high)
    said = [str(r.body["messages"][0]["content"]) for r in fake.requests]  # type: ignore[index]
    assert said[2:] == ["high", "low"]


async def test_a_cancelled_queued_call_never_reaches_the_upstream(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), max_workers=1, queue_size=4)
    fake.persistent_fault = Fault(delay=0.4)
    running = asyncio.ensure_future(gw.stub.Complete(ask("running")))
    await wait_for_requests(fake, 1)
    queued = gw.stub.Complete(ask("queued"))
    await asyncio.sleep(0.1)
    queued.cancel()
    await running
    await asyncio.sleep(0.2)
    assert [r.body["messages"][0]["content"] for r in fake.requests] == ["running"]  # type: ignore[index]


async def test_a_queued_call_whose_deadline_passes_leaves_the_queue(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai(fake),), max_workers=1, queue_size=4)
    fake.persistent_fault = Fault(delay=0.6)
    running = asyncio.ensure_future(gw.stub.Complete(ask("running")))
    await wait_for_requests(fake, 1)
    assert await grpc_code(gw, ask("late"), timeout=0.2) == grpc.StatusCode.DEADLINE_EXCEEDED
    await running
    assert len(fake.requests) == 1


async def wait_for_requests(fake: FakeOpenAI, count: int) -> None:
    for _ in range(200):
        if len(fake.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the fake saw {len(fake.requests)} requests, not {count}")
