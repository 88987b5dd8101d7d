"""Complexity routing end to end: the labelled set over gRPC, the tier in attempts and headers,
a pinned tier, and conditional routes by metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from google.protobuf.struct_pb2 import Struct

from gateway.pipeline.pricing import DEFAULT_PRICES, PER_TOKENS
from gateway.pipeline.routing.features import features_of
from gateway.pipeline.routing.groups import Member, ModelGroup, RouteRule, RoutingConfig, Tier
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic_server import FakeAnthropic
from tests.routing_prompts import HEAVY, LIGHT, PROMPTS, STANDARD, Labelled
from tests.routing_support import Image, Msg, Text

#: Claude 4.5 models take tools, images, JSON schemas and thinking: every prompt can go anywhere.
TIERS = (
    Tier(LIGHT, "claude-haiku-4-5", 0.12),
    Tier(STANDARD, "claude-sonnet-4-5", 0.35),
    Tier(HEAVY, "claude-opus-4-5"),
)
ASSISTANT = ModelGroup("assistant", "complexity", tiers=TIERS)
MIN_ACCURACY = 0.85


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeAnthropic) -> RunningGateway:
    deployment = ProviderSettings(
        name="anthropic",
        kind="anthropic",
        base_url=fake.base_url,
        api_keys=("k",),
        models=tuple(t.model for t in TIERS),
    )
    cheap = ModelGroup("cheap", members=(Member("anthropic", "claude-haiku-4-5"),))
    routes = (
        RouteRule("cheap", use_cases=frozenset({"batch"})),
        RouteRule("cheap", tenants=frozenset({"frugal"}), models=frozenset({"assistant"})),
    )
    return await start_gateway(
        providers=(deployment,),
        routing=RoutingConfig({"assistant": ASSISTANT, "cheap": cheap}, routes),
    )


def message(msg: Msg, call_id: str, thinking: pb.ReasoningPart | None) -> pb.Message:
    """A message of the labelled set as the API takes it (a tool result answers `call_id`; a
    turn that called tools carries `thinking`, as Anthropic wants it back while reasoning)."""
    parts = []
    for part in msg.parts:
        if isinstance(part, Text):
            parts.append(pb.ContentPart(text=part.text))
        else:
            assert isinstance(part, Image)
            parts.append(pb.ContentPart(image=pb.Image(url=part.url, detail=part.detail)))
    calls = [pb.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in msg.tool_calls]
    return pb.Message(
        role=msg.role,
        parts=parts,
        tool_calls=calls,
        tool_call_id=call_id if msg.role == "tool" else "",
        reasoning=[thinking] if thinking is not None and msg.tool_calls else [],
    )


def request(prompt: Labelled, fake: FakeAnthropic) -> pb.CompleteRequest:
    thinking = None
    if prompt.reasoning_effort:
        text = "Looking for flights."
        thinking = pb.ReasoningPart(text=text, signature=fake.minter.signature(text))
    messages, last_call = [], ""
    for msg in prompt.request.messages:
        messages.append(message(msg, last_call, thinking))
        last_call = msg.tool_calls[-1].id if msg.tool_calls else last_call
    names = {c.name for m in prompt.request.messages for c in m.tool_calls}
    names |= {f"tool_{i}" for i in range(prompt.tools - len(names))}
    parameters = Struct()
    parameters.update({"type": "object", "properties": {}})
    asked = pb.CompleteRequest(
        model="assistant",
        messages=messages,
        tools=[pb.Tool(name=name, parameters=parameters) for name in sorted(names)],
    )
    if prompt.request.sampling.max_tokens is not None:
        asked.max_tokens = prompt.request.sampling.max_tokens
    if prompt.structured_output:
        schema = Struct()
        schema.update({"type": "object", "properties": {"answer": {"type": "string"}}})
        asked.response_format.CopyFrom(
            pb.ResponseFormat(
                type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="answer", schema=schema
            )
        )
    if prompt.reasoning_effort:
        asked.reasoning_effort = prompt.reasoning_effort
    return asked


def cost(prompt: Labelled, model: str) -> float:
    """USD of the prompt's estimated tokens and assumed answer at `model`'s list price."""
    price = DEFAULT_PRICES[model]
    tokens = features_of(prompt.request).prompt_tokens
    return (tokens * price.input + prompt.answer_tokens * price.output) / PER_TOKENS


async def test_the_labelled_set_over_grpc_lands_on_its_tier_for_85_percent_and_costs_less(
    gw: RunningGateway, fake: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = []
    for prompt in PROMPTS:
        reply: pb.CompleteResponse = await gw.stub.Complete(request(prompt, fake))
        (attempt,) = reply.attempts
        assert attempt.routing.startswith("assistant: score ")
        chosen.append((prompt, attempt.model, attempt.routing))
    tier_of = {t.model: t.name for t in TIERS}
    wrong = [f"{p.label} -> {why}" for p, model, why in chosen if tier_of[model] != p.label]
    accuracy = 1 - len(wrong) / len(PROMPTS)
    routed = sum(cost(p, model) for p, model, _ in chosen)
    strongest = sum(cost(p, TIERS[-1].model) for p in PROMPTS)
    with capsys.disabled():
        print(
            f"\ncomplexity routing over gRPC: {len(PROMPTS) - len(wrong)}/{len(PROMPTS)} tiers "
            f"match ({accuracy:.1%}); the set costs ${routed:.4f} routed vs ${strongest:.4f} all "
            f"on {TIERS[-1].model} ({routed / strongest:.1%})"
        )

    assert accuracy >= MIN_ACCURACY, "\n".join(wrong)
    assert routed < strongest


async def test_a_json_call_says_its_tier_and_score_in_headers(gw: RunningGateway) -> None:
    body = {"model": "assistant", "messages": [{"role": "user", "content": "Prove it."}]}

    async with gw.http.post(f"{gw.http_url}/v1/complete", json=body) as response:
        reply = orjson.loads(await response.read())

    assert response.status == 200
    assert response.headers["x-gateway-tier"] == "standard"
    assert response.headers["x-gateway-route"].startswith("assistant: score 0.30:")
    assert reply["attempts"][0]["model"] == "claude-sonnet-4-5"


async def test_a_caller_pins_a_tier_with_metadata(gw: RunningGateway) -> None:
    asked = pb.CompleteRequest(
        model="assistant",
        messages=[pb.Message(role="user", content="What is 2 + 2?")],
        metadata={"route_tier": "heavy"},
    )

    reply: pb.CompleteResponse = await gw.stub.Complete(asked)

    assert reply.attempts[0].model == "claude-opus-4-5"
    assert "pinned" in reply.attempts[0].routing


async def test_an_unknown_pinned_tier_is_invalid(gw: RunningGateway) -> None:
    body = {
        "model": "assistant",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"route_tier": "huge"},
    }

    async with gw.http.post(f"{gw.http_url}/v1/complete", json=body) as response:
        error = orjson.loads(await response.read())

    assert response.status == 400
    assert "no tier 'huge'" in orjson.dumps(error).decode()


@pytest.mark.parametrize(
    "metadata", [{"use_case": "batch"}, {"tenant": "frugal"}], ids=["use_case", "tenant"]
)
async def test_a_conditional_route_sends_a_request_to_another_group(
    gw: RunningGateway, metadata: dict[str, str]
) -> None:
    asked = pb.CompleteRequest(
        model="assistant",
        messages=[pb.Message(role="user", content="Prove that there are infinitely many primes.")],
        metadata=metadata,
    )

    reply: pb.CompleteResponse = await gw.stub.Complete(asked)

    (attempt,) = reply.attempts
    assert attempt.model == "claude-haiku-4-5"
    assert attempt.routing.startswith("route[")
    assert "group cheap (weighted)" in attempt.routing
