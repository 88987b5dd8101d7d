"""What routing needs to know about a request, computed once from it: `RequestFeatures`.

Token counts are estimated here, locally and quickly (about four characters a token, a fixed
count per image), never with a vendor tokenizer: nothing is downloaded, and the same estimate
serves capacity (tokens per minute), cost ordering, context windows and complexity scores.

`features_of` reads the request shape of `providers/types.py` (messages with parts, sampling):
only the attributes named by the protocols below, so any value of that shape will do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

#: Characters per token in the local estimate (English prose and code average about 4).
CHARS_PER_TOKEN = 4
#: Tokens each message adds for its role and framing.
TOKENS_PER_MESSAGE = 4
#: Tokens an image counts for: a typical high-detail image, and one sent with detail "low".
TOKENS_PER_IMAGE = 800
TOKENS_PER_LOW_DETAIL_IMAGE = 85
#: Output tokens expected from a request that sets no `max_tokens`.
DEFAULT_EXPECTED_OUTPUT_TOKENS = 256

#: What a request may need a deployment to support (`RequestFeatures.needs`).
TOOLS: Final = "tools"
IMAGES: Final = "images"
STRUCTURED_OUTPUT: Final = "structured_output"
REASONING: Final = "reasoning"
CAPABILITIES: Final = frozenset({TOOLS, IMAGES, STRUCTURED_OUTPUT, REASONING})

# Code in a prompt: a fence, a line that starts like a definition or statement, or one that ends
# like a statement or block.
_CODE = re.compile(
    r"```"
    r"|^\s*(?:def|fn|func|function)\s+\w+\s*\("
    r"|^\s*class\s+\w+\s*[:({]"
    r"|^\s*(?:import\s+[\w.]+|from\s+[\w.]+\s+import|#include\s*[<\"])"
    r"|^\s*(?:const|let|var)\s+\w+\s*="
    r"|^\s*(?:public|private|protected)\s+(?:static\s+)?\w+"
    r"|[;{}]\s*$",
    re.MULTILINE,
)
_SQL = re.compile(r"\b(?:SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|CREATE\s+TABLE)\b")


class _Sampling(Protocol):
    @property
    def max_tokens(self) -> int | None: ...


class _Message(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def parts(self) -> Sequence[object]: ...

    @property
    def tool_calls(self) -> Sequence[object]: ...


class ChatRequestShape(Protocol):
    """The parts of a `ChatRequest` routing reads."""

    @property
    def messages(self) -> Sequence[_Message]: ...

    @property
    def sampling(self) -> _Sampling: ...


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """A request as routing sees it: sizes, what it uses, and the text of its last question."""

    #: Estimated tokens of the whole prompt (every message, images included).
    prompt_tokens: int = 0
    #: Estimated tokens of the prompt's text alone (no images, no message framing).
    text_tokens: int = 0
    #: The request's `max_tokens` (None: the vendor's default).
    max_tokens: int | None = None
    #: Messages in the conversation.
    messages: int = 0
    #: Messages with text (tool calls and tool results apart): the conversation's depth.
    turns: int = 0
    images: int = 0
    #: Tools the request offers the model.
    tools: int = 0
    #: Tool calls and tool results already in the conversation (an agent loop under way).
    tool_turns: int = 0
    #: Whether the last user message holds code.
    code: bool = False
    #: Whether the request asks for JSON (an object or a schema).
    structured_output: bool = False
    #: "" (unset), "none", "minimal", "low", "medium" or "high".
    reasoning_effort: str = ""
    stream: bool = False
    #: The text of the last user message (keywords and examples are matched against it).
    last_user_text: str = ""

    @property
    def expected_tokens(self) -> int:
        """Prompt plus expected output tokens: what tokens-per-minute capacity is charged."""
        return self.prompt_tokens + self.expected_output_tokens

    @property
    def expected_output_tokens(self) -> int:
        """`max_tokens` when set, else `DEFAULT_EXPECTED_OUTPUT_TOKENS`."""
        return DEFAULT_EXPECTED_OUTPUT_TOKENS if self.max_tokens is None else self.max_tokens

    @property
    def needs(self) -> frozenset[str]:
        """The capabilities a deployment must have to serve the request."""
        needs = set()
        if self.tools or self.tool_turns:
            needs.add(TOOLS)
        if self.images:
            needs.add(IMAGES)
        if self.structured_output:
            needs.add(STRUCTURED_OUTPUT)
        if self.reasoning_effort not in ("", "none"):
            needs.add(REASONING)
        return frozenset(needs)


def features_of(
    request: ChatRequestShape,
    *,
    stream: bool = False,
    # WAVE-2 (issue 16): `ChatRequest` gains `tools`, `response_format` and `reasoning_effort`.
    # Until then the caller passes them here (these defaults: none asked); once they exist, read
    # them from `request` and drop these three parameters.
    tools: int = 0,
    structured_output: bool = False,
    reasoning_effort: str = "",
) -> RequestFeatures:
    """The features of `request` (one pass over its messages)."""
    chars = 0
    tokens = 0
    images = 0
    tool_turns = 0
    turns = 0
    last_user_text = ""
    for message in request.messages:
        tokens += TOKENS_PER_MESSAGE
        text_parts = []
        for part in message.parts:
            text = getattr(part, "text", None)
            if isinstance(text, str):
                text_parts.append(text)
                chars += len(text)
            else:  # parts are text or images
                images += 1
                low = getattr(part, "detail", "") == "low"
                tokens += TOKENS_PER_LOW_DETAIL_IMAGE if low else TOKENS_PER_IMAGE
        for call in message.tool_calls:
            chars += len(getattr(call, "arguments", "")) + len(getattr(call, "name", ""))
        tool_turns += len(message.tool_calls) + (message.role == "tool")
        turns += message.role != "tool" and bool(text_parts)
        if message.role == "user":
            last_user_text = "".join(text_parts)
    return RequestFeatures(
        prompt_tokens=tokens + math.ceil(chars / CHARS_PER_TOKEN),
        text_tokens=math.ceil(chars / CHARS_PER_TOKEN),
        max_tokens=request.sampling.max_tokens,
        messages=len(request.messages),
        turns=turns,
        images=images,
        tools=tools,
        tool_turns=tool_turns,
        code=has_code(last_user_text),
        structured_output=structured_output,
        reasoning_effort=reasoning_effort,
        stream=stream,
        last_user_text=last_user_text,
    )


def has_code(text: str) -> bool:
    """Whether `text` holds code: a fence, statement-like lines, or SQL."""
    return _CODE.search(text) is not None or _SQL.search(text) is not None
