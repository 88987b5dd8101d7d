"""What every vendor fake shares: scripted answers, minted ids, refusals, embeddings."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from tests.fakes.base import Answer, Fault, ToolCall
from tests.fakes.embeddings import float32_base64, vector
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.probe import at, call
from tests.fakes.script import Minter, partial_json_object

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def content_of(reply_json: dict[str, object]) -> object:
    return at(reply_json, "choices", 0, "message", "content")


async def test_scripted_answers_are_said_in_order_then_the_plain_reply() -> None:
    async with FakeOpenAI() as fake:
        fake.script(Answer(text="one"), Answer(text="two"))
        said = [content_of((await call(fake, CHAT, HELLO)).json) for _ in range(3)]
    assert said == ["one", "two", "Hello from fake OpenAI"]


async def test_a_failed_request_leaves_the_scripted_answer_for_the_retry() -> None:
    async with FakeOpenAI() as fake:
        fake.script(Answer(text="after the retry"))
        fake.fail_next(Fault(status=503))
        first = await call(fake, CHAT, HELLO)
        second = await call(fake, CHAT, HELLO)
    assert (first.status, content_of(second.json)) == (503, "after the retry")


async def test_a_refused_request_is_recorded_apart_and_consumes_no_answer() -> None:
    async with FakeOpenAI() as fake:
        fake.script(Answer(text="kept"))
        refused = await call(fake, CHAT, {**HELLO, "bogus": 1})
        answered = await call(fake, CHAT, HELLO)
    assert refused.status == 400
    assert [r.body for r in fake.requests] == [HELLO]
    assert [(r.status, r.message) for r in fake.rejections] == [
        (400, "Unrecognized request argument supplied: bogus")
    ]
    assert fake.rejections[0].request.body == {**HELLO, "bogus": 1}
    assert content_of(answered.json) == "kept"


async def test_minted_ids_are_the_same_in_every_run() -> None:
    async def run() -> list[object]:
        async with FakeOpenAI() as fake:
            fake.script(Answer(tool_calls=[ToolCall("f"), ToolCall("f")]))
            reply = (await call(fake, CHAT, {**HELLO, "tools": [TOOL]})).json
        return [at(reply, "choices", 0, "message", "tool_calls", i, "id") for i in (0, 1)]

    first, second = await run(), await run()
    assert first == second
    assert len(set(first)) == 2


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_a_minter_remembers_what_it_signed_and_for_which_text() -> None:
    minter = Minter("anthropic")
    signature = minter.signature("I should look it up.")
    assert minter.signed(signature, "I should look it up.")
    assert not minter.signed(signature, "I should make it up.")
    assert not minter.signed("forged")
    assert Minter("anthropic").signature("x") == Minter("anthropic").signature("x")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ('{"city": "Paris"}', {"city": "Paris"}),
        ('{"city": "Par', {"city": "Par"}),
        ('{"city": "Paris", "days": [1, 2', {"city": "Paris", "days": [1, 2]}),
        ('{"city": ', {}),
        ('{"a": "b\\', {"a": "b"}),  # ends mid-escape: the escape is dropped
        ("", None),
    ],
)
def test_a_cut_off_argument_text_parses_as_far_as_it_goes(
    text: str, parsed: dict[str, object] | None
) -> None:
    assert partial_json_object(text) == parsed


def test_an_answer_finishes_with_tool_calls_when_it_calls_and_drops_cut_calls_when_whole() -> None:
    cut = ToolCall("lookup", '{"q": "Par')
    answer = Answer(tool_calls=[ToolCall("f", {"a": 1}), cut], finish="length")
    assert Answer(tool_calls=[cut]).our_finish == "tool_calls"
    assert Answer(text="hi").our_finish == "stop"
    assert [c.name for c in answer.whole_calls] == ["f"]
    assert answer.argument_fragments(ToolCall("f", {"a": 1})) == ['{"a":1}']
    assert Answer.json({"ok": True}).text == '{"ok":true}'


def test_vectors_are_deterministic_unit_vectors_whose_short_forms_are_prefixes() -> None:
    long, short = vector("hello", 64), vector("hello", 8)
    assert vector("hello", 64) == long
    assert vector("other", 64) != long
    assert math.isclose(math.fsum(x * x for x in long), 1.0, rel_tol=1e-6)
    scale = math.sqrt(math.fsum(x * x for x in long[:8]))
    assert all(math.isclose(s, x / scale, rel_tol=1e-5) for s, x in zip(short, long, strict=False))


def test_base64_embeddings_are_little_endian_float32() -> None:
    values = vector("hello", 4)
    raw = base64.b64decode(float32_base64(values))
    assert list(struct.unpack("<4f", raw)) == values
