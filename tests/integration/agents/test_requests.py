"""Agents' requests through one running gateway, on every provider against its vendor's fake,
over gRPC and JSON: an image, a JSON-schema answer (with tools, too), each tool choice and
parallel calls off, and what is refused before any vendor is called — each either sent in the
vendor's form or refused naming the field and the provider (`rows` holds the table).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
import pytest

from tests.fakes.base import Answer, VendorFake
from tests.integration.agents.client import Client, Json, RefusedError, Reply
from tests.integration.agents.rows import (
    ANTHROPIC,
    AZURE,
    CLOCK,
    GEMINI,
    OPENAI,
    PARALLEL,
    PNG,
    WEATHER,
    WEATHER_FORMAT,
    Row,
    asked,
    sent,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


# -- an image ------------------------------------------------------------------------------------


async def test_an_image_reaches_the_vendor_with_the_question(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    fake.script(Answer(text="A single dot."))
    parts = [
        {"text": "What is in this picture?"},
        {"image": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    body = {
        "model": row.image_model or row.model,
        "provider": row.kind,
        "messages": [{"role": "user", "parts": parts}],
    }

    reply = await ask(body)

    assert (reply.content, reply.finish_reason) == ("A single dot.", "stop")
    assert PNG in sent(fake)
    assert "What is in this picture?" in sent(fake)


async def test_an_image_in_a_tool_result_is_sent_or_refused_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    fake.script(Answer(text="A red dot on the map."))
    call = {"id": "call_01", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    picture = [{"text": "The radar:"}, {"image": {"url": f"data:image/png;base64,{PNG}"}}]
    turns: list[Json] = [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_01", "parts": picture},
    ]
    body = asked(row, *turns, tools=[WEATHER])

    if not row.tool_result_images:
        with pytest.raises(RefusedError) as refused:
            await client.complete(body)
        assert refused.value.code == "INVALID_ARGUMENT"
        start = f"messages[2].parts[1].image: provider '{row.kind}' cannot take images"
        assert refused.value.message.startswith(start)
        assert fake.requests == []
        return
    reply = await client.complete(body)
    assert reply.content == "A red dot on the map."
    assert PNG in sent(fake)
    assert "The radar:" in sent(fake)


@pytest.mark.parametrize("row", [GEMINI], ids=str)
async def test_an_https_image_the_vendor_cannot_fetch_is_never_dropped(
    fake: VendorFake, client: Client
) -> None:
    # Gemini fetches no URLs: the gateway inlines the image or refuses the request, and an image
    # on a loopback address is not fetched unless allowed.
    url = "https://127.0.0.1:9/cat.png"
    parts = [{"text": "What is in this picture?"}, {"image": {"url": url}}]
    body = {"model": GEMINI.model, "messages": [{"role": "user", "parts": parts}]}

    with pytest.raises(RefusedError) as refused:
        await client.complete(body)

    assert refused.value.code == "INVALID_ARGUMENT"
    assert refused.value.message.startswith("messages[0].parts[1].image")
    assert fake.requests == []


# -- a JSON-schema answer ------------------------------------------------------------------------


async def test_a_json_schema_answer_is_the_content_with_finish_stop(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    fake.script(Answer.json({"city": "Paris", "celsius": 18}))

    reply = await ask(asked(row, response_format=WEATHER_FORMAT))

    assert orjson.loads(reply.content) == {"city": "Paris", "celsius": 18}
    assert (reply.finish_reason, reply.tool_calls) == ("stop", [])
    assert "tools" not in fake.requests[-1].body  # asked natively, not as a tool to call
    # The schema went in the vendor's form (Anthropic moves `minimum` into the description),
    # its integers as integers, not Struct's doubles.
    assert "-90" in sent(fake)
    assert "-90.0" not in sent(fake)


async def test_a_json_schema_with_tools_keeps_both_or_is_refused_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    fake.script(Answer.json({"city": "Paris", "celsius": 18}))
    body = asked(row, tools=[WEATHER], response_format=WEATHER_FORMAT)

    if not row.json_with_tools:
        with pytest.raises(RefusedError) as refused:
            await client.stream(body)
        assert refused.value.code == "INVALID_ARGUMENT"
        assert refused.value.message.startswith(f"response_format: provider '{row.kind}' cannot")
        assert fake.requests == []
        return
    reply = await client.stream(body)
    assert orjson.loads(reply.content) == {"city": "Paris", "celsius": 18}
    assert (reply.finish_reason, reply.tool_calls) == ("stop", [])
    assert "get_weather" in sent(fake)  # the tools went too
    assert "celsius" in sent(fake)


# -- tool choice and parallel calls off ----------------------------------------------------------


@pytest.mark.parametrize(
    ("asking", "setting"),
    [
        ({"tool_choice": {"mode": "TOOL_CHOICE_MODE_NONE"}}, "NONE"),
        ({"tool_choice": {"mode": "TOOL_CHOICE_MODE_REQUIRED"}}, "REQUIRED"),
        ({"tool_choice": {"mode": "TOOL_CHOICE_MODE_TOOL", "name": "get_weather"}}, "TOOL"),
        ({"parallel_tool_calls": False}, "parallel off"),
    ],
    ids=["none", "required", "named", "parallel-off"],
)
async def test_a_tool_setting_is_sent_or_refused_before_the_vendor(
    row: Row, fake: VendorFake, client: Client, asking: Json, setting: str
) -> None:
    honoured = row.parallel_off if setting == "parallel off" else setting in row.choices
    answer = Answer(text="Sunny.") if setting == "NONE" else Answer(tool_calls=PARALLEL[:1])
    fake.script(answer)
    body = asked(row, tools=[WEATHER, CLOCK], **asking)

    if not honoured:
        with pytest.raises(RefusedError) as refused:
            await client.complete(body)
        field = next(iter(asking))
        assert refused.value.code == "INVALID_ARGUMENT"
        assert refused.value.message.startswith(f"{field}: provider '{row.kind}' cannot")
        assert fake.requests == []
        return
    reply = await client.complete(body)
    assert reply.finish_reason == ("stop" if setting == "NONE" else "tool_calls")
    assert [r.message for r in fake.rejections] == []
    assert len(fake.requests) == 1


# -- what the gateway refuses before any vendor is called ----------------------------------------


async def test_a_result_answering_no_call_is_invalid_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    result = {"role": "tool", "tool_call_id": "call_nobody_made", "content": "18C"}

    with pytest.raises(RefusedError) as refused:
        await client.stream(asked(row, result, tools=[WEATHER]))

    assert refused.value.code == "INVALID_ARGUMENT"
    assert refused.value.message.startswith("messages[1].tool_call_id: 'call_nobody_made'")
    assert fake.requests == []


@pytest.mark.parametrize("row", [OPENAI, AZURE, ANTHROPIC, GEMINI], ids=str)
async def test_a_call_left_unanswered_is_invalid_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    call = {"id": "call_01", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    turns: list[Json] = [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "user", "content": "Never mind."},
    ]

    with pytest.raises(RefusedError) as refused:
        await client.complete(asked(row, *turns, tools=[WEATHER]))

    assert refused.value.code == "INVALID_ARGUMENT"
    assert refused.value.message.startswith("messages[")
    assert "'call_01'" in refused.value.message
    assert f"provider '{row.kind}'" in refused.value.message
    assert fake.requests == []
