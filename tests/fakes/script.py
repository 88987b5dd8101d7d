"""What a fake model "says": scripted answers every vendor fake renders its own way.

A test queues `Answer`s with `fake.script(...)`; each chat request the fake answers takes the
next one (when the queue is empty the fake answers with its plain `reply`). An answer is text,
tool calls, reasoning and a finish, in our words; each fake turns it into its vendor's exact
unary body and stream frames:

    fake.script(
        Answer(text="Let me look.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Answer(reasoning="The user wants...", text="It is sunny."),
        Answer(tool_calls=[ToolCall("lookup", '{"q": "Par')], finish="length"),  # cut mid-call
        Answer.json({"city": "Paris", "sunny": True}),
    )

Ids are minted the vendor's way (`call_...`, `toolu_...`) and are deterministic per fake, so
golden tests can pin the bodies of follow-up turns. `ToolCall(id=...)` pins one;
`ToolCall(with_id=False)` leaves it out where the vendor may (Gemini, Ollama).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import orjson

if TYPE_CHECKING:
    from tests.fakes.base import FakeUsage

#: The finish of an answer in our words; each fake says it in its vendor's.
Finish = Literal["stop", "length", "tool_calls", "content_filter"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LOWER_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model makes.

    `arguments` is an object, or the raw JSON text the model produced (which may be cut off
    mid-way, for a call truncated by the token limit). `id` None lets the fake mint one in its
    vendor's style; `with_id=False` sends no id at all (only where the vendor may omit it).
    """

    name: str
    arguments: Mapping[str, object] | str = field(default_factory=dict)
    id: str | None = None
    with_id: bool = True

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text the model wrote."""
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(dict(self.arguments)).decode()

    @property
    def complete(self) -> bool:
        """Whether the arguments are a whole JSON object (False for a call cut mid-way)."""
        try:
            return isinstance(orjson.loads(self.arguments_json), dict)
        except orjson.JSONDecodeError:
            return False

    @property
    def arguments_object(self) -> dict[str, object]:
        """The arguments as an object: for a cut-off call, what of them parses."""
        parsed = partial_json_object(self.arguments_json)
        return parsed if parsed is not None else {}


@dataclass(frozen=True, slots=True)
class Answer:
    """Everything the model says in one response.

    `text` None sends no text. `reasoning` is the model's visible reasoning (Anthropic thinking,
    Gemini thought summary, Ollama `thinking`, Cohere thinking content; OpenAI Chat Completions
    sends none, only `usage.reasoning_tokens`). `signature` overrides the signature the fake mints
    for it ("" sends none); `redacted` adds an Anthropic `redacted_thinking` block with that data.
    `finish` None means "tool_calls" when calls were made, else "stop"; `vendor_finish` sends a
    vendor reason verbatim instead (e.g. Gemini "SAFETY", Anthropic "refusal").
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    reasoning: str | None = None
    signature: str | None = None
    redacted: str | None = None
    finish: Finish | None = None
    vendor_finish: str | None = None
    usage: FakeUsage | None = None
    #: Characters per streamed argument fragment (OpenAI, Anthropic, Cohere stream arguments).
    argument_chunk: int = 8

    @classmethod
    def json(
        cls,
        value: object,
        *,
        reasoning: str | None = None,
        finish: Finish | None = None,
        usage: FakeUsage | None = None,
    ) -> Answer:
        """An answer whose text is `value` as JSON (a structured-output reply)."""
        text = orjson.dumps(value).decode()
        return cls(text=text, reasoning=reasoning, finish=finish, usage=usage)

    @property
    def our_finish(self) -> Finish:
        """The finish in our words."""
        if self.finish is not None:
            return self.finish
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def whole_calls(self) -> list[ToolCall]:
        """The calls a whole-call vendor (Gemini, Ollama) sends: cut-off ones never arrive."""
        return [call for call in self.tool_calls if call.complete]

    def argument_fragments(self, call: ToolCall) -> list[str]:
        """The pieces a streaming vendor sends `call`'s arguments in."""
        text = call.arguments_json
        step = max(1, self.argument_chunk)
        return [text[i : i + step] for i in range(0, len(text), step)]


def pieces(text: str | None) -> list[str]:
    """The deltas a stream carries `text` in: one word and the spaces after it each."""
    return re.findall(r"\S+\s*|\s+", text or "")


class Minter:
    """Deterministic vendor-style ids and signatures for one fake.

    Every value depends only on the fake's vendor name and how many it minted before, so the
    same script gives the same ids in every run. Signatures the fake issued are remembered with
    the text they sign: a vendor only accepts back what it issued, unaltered.
    """

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.count = 0
        #: signature (or redacted data) -> the text it was issued for.
        self.issued: dict[str, str] = {}

    def _digest(self, kind: str, salt: str = "") -> bytes:
        self.count += 1
        return hashlib.sha256(f"{self.vendor}:{kind}:{self.count}:{salt}".encode()).digest()

    def token(self, kind: str, length: int, *, lower: bool = False) -> str:
        """`length` base62 (or lower-case base36) characters."""
        alphabet = _LOWER_ALPHABET if lower else _ALPHABET
        number = int.from_bytes(self._digest(kind))
        chars = []
        for _ in range(length):
            number, digit = divmod(number, len(alphabet))
            chars.append(alphabet[digit])
        return "".join(chars)

    def signature(self, text: str, *, kind: str = "signature") -> str:
        """An opaque signature for `text` (base64, as vendors send them), remembered as issued."""
        value = base64.b64encode(self._digest(kind, text) * 3).decode()
        self.issued[value] = text
        return value

    def signed(self, value: str, text: str | None = None) -> bool:
        """Whether `value` was issued by this fake (and, when `text` is given, for that text)."""
        if value not in self.issued:
            return False
        return text is None or self.issued[value] == text

    def remember(self, value: str, text: str) -> str:
        """Accept `value` (a test's own signature or redacted data) as issued for `text`."""
        self.issued[value] = text
        return value


def partial_json_object(text: str) -> dict[str, object] | None:
    """The object a prefix of JSON text describes so far (None when not even that parses).

    Vendors that report arguments as an object parse what the model produced before it was cut
    off; this closes open strings, arrays and objects of the longest prefix that parses.
    """
    for end in range(len(text), 0, -1):
        candidate = _close(text[:end])
        if candidate is None:
            continue
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _close(prefix: str) -> str | None:
    """`prefix` with its open string and brackets closed (None if it ends mid-escape)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
    if escaped:
        return None
    body = prefix + ('"' if in_string else "")
    return body.rstrip().rstrip(",") + "".join(reversed(stack))
