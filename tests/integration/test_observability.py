"""Metrics move by exactly what happened, spans tell the story of a call, labels stay bounded."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from google.protobuf.struct_pb2 import Struct
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.runtime.logs import JsonFormatter
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.base import Fault
from tests.fakes.openai_server import FakeOpenAI

MODEL = "gpt-4o-mini"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """Spans of this process, in memory (the global provider can be set once per process)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeOpenAI) -> RunningGateway:
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=("k",), models=(MODEL,)
    )
    # A fake is not the vendor's public API: list prices apply to it only as configured prices.
    return await start_gateway(
        providers=(MOCK, openai),
        retry_backoff_base_seconds=0.01,
        cache_backend="memory",
        prices=DEFAULT_PRICES,
    )


def ask(text: str = "hi", **fields: Any) -> pb.CompleteRequest:
    fields.setdefault("model", MODEL)
    return pb.CompleteRequest(messages=[pb.Message(role="user", content=text)], **fields)


async def scrape(gw: RunningGateway) -> Series:
    async with gw.http.get(gw.metrics_url) as reply:
        text = await reply.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Series, after: Series, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


# -- metrics --------------------------------------------------------------------------------------


async def test_a_scripted_mix_moves_each_metric_by_exactly_the_expected_amount(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    before = await scrape(gw)
    await gw.stub.Complete(ask("success"))  # 12 prompt (4 cached) + 5 completion tokens
    fake.fail_next(Fault(status=500), Fault(status=500), Fault(status=500))
    with pytest.raises(Exception, match="UNAVAILABLE"):
        await gw.stub.Complete(ask("upstream error"))  # three tries, all 500
    for _ in range(2):
        await gw.stub.Complete(ask("cache me", temperature=0))  # a miss, then a hit
        await asyncio.sleep(0.05)
    stream = pb.StreamCompleteRequest(model=MODEL, messages=[pb.Message(role="user", content="s")])
    _ = [m async for m in gw.stub.StreamComplete(stream)]
    async with gw.http.post(gw.http_url + "/v1/complete", data=b'{"model": ""}') as reply:
        assert reply.status == 400  # rejected before any provider
    after = await scrape(gw)

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    requests = "gateway_requests_total"
    assert d(requests, rpc="Complete", transport="grpc", code="OK") == 3
    assert d(requests, rpc="Complete", transport="grpc", code="UNAVAILABLE") == 1
    assert d(requests, rpc="StreamComplete", transport="grpc", code="OK") == 1
    assert d(requests, rpc="Complete", transport="http", code="INVALID_ARGUMENT") == 1
    duration = "gateway_request_duration_seconds_count"
    assert d(duration, rpc="Complete", transport="grpc") == 4
    assert d(duration, rpc="Complete", transport="http") == 1
    attempts = "gateway_upstream_attempts_total"
    assert d(attempts, provider="openai", outcome="ATTEMPT_OUTCOME_SUCCESS") == 3
    assert d(attempts, provider="openai", outcome="ATTEMPT_OUTCOME_ERROR") == 3
    assert d("gateway_upstream_latency_seconds_count", provider="openai") == 6
    assert d("gateway_retries_total", reason="UpstreamUnavailableError") == 2
    assert d("gateway_time_to_first_token_seconds_count", provider="openai") == 1
    tokens = "gateway_tokens_total"
    assert d(tokens, provider="openai", model=MODEL, type="prompt") == 3 * 12
    assert d(tokens, provider="openai", model=MODEL, type="completion") == 3 * 5
    assert d(tokens, provider="openai", model=MODEL, type="cached") == 3 * 4
    one_answer = (8 * 0.15 + 4 * 0.075 + 5 * 0.60) / 1e6
    assert d("gateway_cost_usd_total", provider="openai", model=MODEL) == pytest.approx(
        3 * one_answer
    )
    assert d("gateway_cache_lookups_total", backend="memory", result="miss") == 1
    assert d("gateway_cache_lookups_total", backend="memory", result="hit") == 1
    assert d("gateway_cache_saved_usd_total") == pytest.approx(one_answer)
    assert d("gateway_in_flight_requests", transport="grpc") == 0


async def test_a_thousand_tenants_and_prompts_add_no_series(gw: RunningGateway) -> None:
    async def call(index: int) -> None:
        body = {
            "model": "mock",
            "messages": [{"role": "user", "content": f"prompt {uuid.uuid4()}"}],
            "metadata": {"tenant": f"tenant-{index}", "use_case": f"case-{index}"},
            "temperature": 0,
        }
        async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(body)) as r:
            assert r.status == 200

    for index in range(5):
        await call(index)
    await asyncio.sleep(0.05)
    before = set(await scrape(gw))
    for batch in range(20):
        await asyncio.gather(*(call(1000 + batch * 50 + i) for i in range(50)))
    await asyncio.sleep(0.05)
    after = set(await scrape(gw))
    assert after == before
    assert not any("tenant" in dict(labels) for _, labels in after)


# -- traces ---------------------------------------------------------------------------------------


def children_of(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [
        s
        for s in finished
        if s.parent is not None
        and span.context is not None
        and s.parent.span_id == span.context.span_id
    ]


async def test_a_retried_grpc_call_has_a_request_span_with_one_child_per_attempt(
    gw: RunningGateway, fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    fake.fail_next(Fault(status=503))
    await gw.stub.Complete(ask())
    finished = spans.get_finished_spans()
    [server] = [s for s in finished if s.name == "/gateway.v1.GatewayService/Complete"]
    tries = children_of(server, finished)
    assert [s.name for s in tries] == [f"chat {MODEL}", f"chat {MODEL}"]
    failed, succeeded = tries
    assert failed.status.status_code == trace.StatusCode.ERROR
    attrs = dict(succeeded.attributes or {})
    assert attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.response.model"] == MODEL
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 5)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert [e.name for e in server.events] == ["retry"]
    assert all(s.kind == trace.SpanKind.CLIENT for s in tries)


async def test_a_json_traceparent_is_continued_and_passed_upstream(
    gw: RunningGateway, fake: FakeOpenAI, spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    async with gw.http.post(gw.http_url + "/v1/complete", data=body, headers=headers) as reply:
        assert reply.status == 200
    finished = spans.get_finished_spans()
    [server] = [s for s in finished if s.name == "POST /v1/complete"]
    assert server.context is not None
    assert format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == parent_id
    [attempt] = children_of(server, finished)
    assert attempt.context is not None
    sent = fake.requests[0].headers["traceparent"]
    assert sent == f"00-{trace_id}-{format(attempt.context.span_id, '016x')}-01"


async def test_cache_results_are_span_events(
    gw: RunningGateway, spans: InMemorySpanExporter
) -> None:
    for _ in range(2):
        await gw.stub.Complete(ask("cached", temperature=0))
        await asyncio.sleep(0.05)
    servers = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert [[e.name for e in s.events] for s in servers] == [["cache.miss"], ["cache.hit"]]


async def test_prompts_and_completions_stay_off_spans_unless_enabled(
    start_gateway: StartGateway, spans: InMemorySpanExporter
) -> None:
    secret_prompt = "my account number is 12345"
    for enabled in (False, True):
        spans.clear()
        gw = await start_gateway(trace_content=enabled)
        await gw.stub.Complete(ask(secret_prompt, model="mock"))
        recorded = str(
            [(s.attributes, [(e.name, e.attributes) for e in s.events])
             for s in spans.get_finished_spans()]
        )  # fmt: skip
        assert (secret_prompt in recorded) is enabled


# -- logs -----------------------------------------------------------------------------------------


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(
    exporter: InMemorySpanExporter,
) -> None:
    record = logging.makeLogRecord({"msg": "inside", "levelname": "INFO", "name": "t"})
    with trace.get_tracer("test").start_as_current_span("work") as span:
        line = orjson.loads(JsonFormatter().format(record))
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    outside = orjson.loads(JsonFormatter().format(record))
    assert "trace_id" not in outside


# -- agent calls ----------------------------------------------------------------------------------


def tool_call_request() -> pb.CompleteRequest:
    """Two tools the mock calls (the user names both), with reasoning on."""
    city = Struct()
    city.update(
        {
            "type": "object",
            "properties": {"account": {"type": "string", "default": "acct-98765"}},
            "required": ["account"],
        }
    )
    return pb.CompleteRequest(
        model="mock",
        messages=[pb.Message(role="user", content="call get_balance and get_owner")],
        tools=[pb.Tool(name="get_balance", parameters=city), pb.Tool(name="get_owner")],
        reasoning_effort="low",
    )


async def test_a_tool_call_answer_puts_its_calls_and_reasoning_tokens_on_the_try_span(
    start_gateway: StartGateway, spans: InMemorySpanExporter
) -> None:
    gw = await start_gateway()
    before = await scrape(gw)

    answer = await gw.stub.Complete(tool_call_request())

    after = await scrape(gw)
    [chat] = [s for s in spans.get_finished_spans() if s.name == "chat mock"]
    attrs = dict(chat.attributes or {})
    assert attrs["gateway.tool_calls.count"] == 2
    assert attrs["gateway.tool_calls.names"] == ("get_balance", "get_owner")
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    reasoning = answer.usage.reasoning_tokens
    assert reasoning > 0
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == reasoning
    tokens = "gateway_tokens_total"
    assert delta(before, after, tokens, provider="mock", model="mock", type="reasoning") == (
        reasoning
    )


async def test_tool_call_arguments_stay_off_spans_unless_content_is_captured(
    start_gateway: StartGateway, spans: InMemorySpanExporter
) -> None:
    for enabled in (False, True):
        spans.clear()
        gw = await start_gateway(trace_content=enabled)
        await gw.stub.Complete(tool_call_request())
        recorded = str(
            [(s.attributes, [(e.name, e.attributes) for e in s.events])
             for s in spans.get_finished_spans()]
        )  # fmt: skip
        assert ("acct-98765" in recorded) is enabled


async def test_a_stream_that_only_calls_tools_has_a_time_to_first_token(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()
    request = pb.StreamCompleteRequest(
        model="mock",
        messages=[pb.Message(role="user", content="call get_owner")],
        tools=[pb.Tool(name="get_owner")],
    )
    before = await scrape(gw)

    messages = [m async for m in gw.stub.StreamComplete(request)]

    after = await scrape(gw)
    assert not any(m.delta for m in messages)
    assert messages[-1].finish_reason == "tool_calls"
    ttft = "gateway_time_to_first_token_seconds_count"
    assert delta(before, after, ttft, provider="mock") == 1
