"""What Cohere's v2 Chat and Embed endpoints refuse.

Each check raises `Rejected(message)`, which the fake sends as Cohere's `{"id", "message"}`
with status 400. Field names and values are `cohere-python` v7.3's (`v2/raw_client.py` for the
bodies, `types/*` for their parts). Texts are Cohere's where a source quotes them
(docs.cohere.com/reference/errors lists "invalid request: total number of texts must be at most
96 - received 104", "invalid request: valid input_type must be provided with the provided
model", "invalid request: response_format is not supported with RAG."); the others are
"wording approximate" in Cohere's "invalid request: ..." style.

- `model` and `messages` are required; roles are system/user/assistant/tool
  (`types/chat_message_v2.py`); a user turn takes text and `image_url` parts
  (`types/content.py`, `image_url.py`: a URL or a base64 data URI, `detail` auto/low/high), a
  tool turn text and document parts (`types/tool_content.py`).
- A tool turn's `tool_call_id` must name a call of the assistant turn it follows. A tool turn
  without a `tool_call_id` is let through: the SDK marks it required but the server's answer is
  unconfirmed, and the wave-1 adapter (tests/contract/test_cohere_adapter.py) sends one.
- Tools are `{"type": "function", "function": {"name", "description", "parameters"}}` with
  an object schema (`types/tool_v2.py`, `tool_v2function.py`); `tool_choice` is "REQUIRED" or
  "NONE" only, and only with `tools` (`v2chat_request_tool_choice.py` and its docstring: "the
  `tools` parameter must be passed in the request").
- `response_format` is `{"type": "text"}` or `{"type": "json_object", "json_schema"?}`
  (`types/response_format_v2.py`), "not supported when used in combinations with the
  `documents` or `tools` parameters" (its docstring).
- `thinking` is `{"type": "enabled"|"disabled", "token_budget"?: positive int}`
  (`types/thinking.py`); `seed` is an integer and `strict_tools` a boolean (`v2/raw_client.py`).
- A body field v2 Chat does not define is a 422 "unknown field: parameter '<name>' is not a valid
  field. For proper usage, please refer to https://docs.cohere.com/reference/chat" (the text as
  quoted in agno-agi/agno#3503; the fields are those `v2/raw_client.py` sends).
- Embed: `input_type` is required (search_document, search_query, classification, clustering,
  image; `types/embed_input_type.py`), so is `embedding_types` for v3+ models (docs.cohere.com
  migrating-v1-to-v2: "v2: embedding_types is a required field for Embed"), at most 96 texts
  (`v2/raw_client.py`: "Maximum number of texts per call is `96`"); `output_dimension` only for
  embed-v4 models, one of 256/512/1024/1536.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tests.fakes.rules import Rejected, b64decode, is_web_url, parse_data_url, schema_types

ROLES: Final = ("system", "user", "assistant", "tool")
TOOL_CHOICES: Final = ("REQUIRED", "NONE")
INPUT_TYPES: Final = ("search_document", "search_query", "classification", "clustering", "image")
EMBEDDING_TYPES: Final = ("float", "int8", "uint8", "binary", "ubinary", "base64")
OUTPUT_DIMENSIONS: Final = (256, 512, 1024, 1536)
MAX_TEXTS: Final = 96
CHAT_FIELDS: Final = frozenset(
    {"model", "messages", "tools", "strict_tools", "documents", "citation_options",
     "response_format", "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed",
     "frequency_penalty", "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking",
     "priority", "stream"}
)  # fmt: skip
IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


def invalid(message: str) -> Rejected:
    """A Cohere 400."""
    return Rejected(message)


def check_chat(body: object, *, vision: bool = True) -> None:
    """Raise `Rejected` for a v2 Chat body Cohere refuses."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise invalid("invalid request: model must be specified")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("invalid request: messages must be specified")
    for name in body:
        if name not in CHAT_FIELDS:
            raise Rejected(
                f"unknown field: parameter '{name}' is not a valid field. For proper usage, "
                "please refer to https://docs.cohere.com/reference/chat",
                status=422,
            )
    tools = _check_tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice is not None:
        if choice not in TOOL_CHOICES:
            raise invalid(
                f"invalid request: tool_choice must be one of REQUIRED, NONE - received {choice}"
            )
        if not tools:
            raise invalid("invalid request: tool_choice can only be specified together with tools")
    _check_response_format(body)
    _check_thinking(body.get("thinking"))
    _check_scalars(body)
    for index, message in enumerate(messages):
        _check_message(messages, index, message, vision=vision)


def _check_tools(raw: object) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("invalid request: tools must be a list")
    names: list[str] = []
    for index, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise invalid(f"invalid request: tools[{index}].type must be function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"invalid request: tools[{index}].function.name must be specified")
        parameters = function.get("parameters")
        if not isinstance(parameters, dict) or schema_types(parameters) != {"object"}:
            raise invalid(
                f"invalid request: tools[{index}].function.parameters must be a JSON schema of "
                "type object"
            )
        names.append(str(function["name"]))
    return names


def _check_response_format(body: Mapping[str, object]) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object"):
        raise invalid(
            f"invalid request: response_format.type must be one of text, json_object - received "
            f"{kind}"
        )
    assert isinstance(fmt, dict)
    if kind == "text" and fmt.get("json_schema") is not None:
        raise invalid("invalid request: json_schema must not be specified when type is text")
    schema = fmt.get("json_schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid("invalid request: response_format.json_schema must be an object")
    if body.get("documents"):
        raise invalid("invalid request: response_format is not supported with RAG.")
    if body.get("tools"):
        raise invalid("invalid request: response_format is not supported with tools.")


def _check_scalars(body: Mapping[str, object]) -> None:
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise invalid("invalid request: seed must be an integer")
    strict = body.get("strict_tools")
    if strict is not None and not isinstance(strict, bool):
        raise invalid("invalid request: strict_tools must be a boolean")


def _check_thinking(raw: object) -> None:
    if raw is None:
        return
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("enabled", "disabled"):
        raise invalid(
            f"invalid request: thinking.type must be one of enabled, disabled - received {kind}"
        )
    assert isinstance(raw, dict)
    budget = raw.get("token_budget")
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise invalid("invalid request: thinking.token_budget must be a positive integer")


def _check_message(messages: list[object], index: int, message: object, *, vision: bool) -> None:
    role = message.get("role") if isinstance(message, dict) else None
    if role not in ROLES:
        raise invalid(
            f"invalid request: messages[{index}].role must be one of system, user, assistant, "
            f"tool - received {role}"
        )
    assert isinstance(message, dict)
    content = message.get("content")
    if isinstance(content, list):
        for position, part in enumerate(content):
            _check_part(index, position, str(role), part, vision=vision)
    if role == "assistant":
        for position, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if not isinstance(call, dict) or not isinstance(call.get("id"), str):
                where = f"messages[{index}].tool_calls[{position}]"
                raise invalid(f"invalid request: {where}.id must be specified")
            if not isinstance(arguments, str):
                raise invalid(
                    f"invalid request: messages[{index}].tool_calls[{position}].function."
                    "arguments must be a string"
                )
    if role == "tool" and message.get("tool_call_id") is not None:
        call_id = message["tool_call_id"]
        asked = _calls_before(messages, index)
        if call_id not in asked:
            raise invalid(
                f"invalid request: messages[{index}].tool_call_id {call_id} does not match any "
                "tool call of the preceding assistant message"
            )


def _calls_before(messages: list[object], index: int) -> set[object]:
    """The call ids of the assistant turn before this run of tool turns."""
    before = index - 1
    while before >= 0 and isinstance(messages[before], dict) and _role(messages[before]) == "tool":
        before -= 1
    previous = messages[before] if before >= 0 else None
    if not isinstance(previous, dict) or previous.get("role") != "assistant":
        return set()
    calls = previous.get("tool_calls")
    return {c.get("id") for c in calls if isinstance(c, dict)} if isinstance(calls, list) else set()


def _role(message: object) -> object:
    return message.get("role") if isinstance(message, dict) else None


def _check_part(index: int, position: int, role: str, part: object, *, vision: bool) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    allowed = {"user": ("text", "image_url"), "tool": ("text", "document")}.get(
        role, ("text", "thinking")
    )
    where = f"messages[{index}].content[{position}]"
    if kind not in allowed:
        raise invalid(
            f"invalid request: {where}.type must be one of {', '.join(allowed)} - received {kind}"
        )
    assert isinstance(part, dict)
    if kind != "image_url":
        return
    if not vision:
        raise invalid("invalid request: this model does not support image inputs")
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise invalid(f"invalid request: {where}.image_url.url must be specified")
    detail = image.get("detail") if isinstance(image, dict) else None
    if detail is not None and detail not in ("auto", "low", "high"):
        raise invalid(f"invalid request: {where}.image_url.detail must be one of auto, low, high")
    if is_web_url(url):
        return
    data = parse_data_url(url)
    if (
        data is None
        or data.mime not in IMAGE_TYPES
        or not data.base64
        or b64decode(data.data) is None
    ):
        raise invalid(
            f"invalid request: {where}.image_url.url must be a web URL or a base64 data URI of "
            "an image/jpeg, image/png, image/webp or image/gif image"
        )


def check_embed(body: object) -> list[str]:
    """Raise `Rejected` for a v2 Embed body Cohere refuses; else the texts it embeds."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise invalid("invalid request: model must be specified")
    model = str(body["model"])
    input_type = body.get("input_type")
    if input_type not in INPUT_TYPES:
        raise invalid("invalid request: valid input_type must be provided with the provided model")
    types = body.get("embedding_types")
    if not isinstance(types, list) or not types:
        raise invalid("invalid request: embedding_types is required for embed models v3 and higher")
    for kind in types:
        if kind not in EMBEDDING_TYPES:
            raise invalid(
                "invalid request: embedding_types must be one of float, int8, uint8, binary, "
                f"ubinary, base64 - received {kind}"
            )
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("invalid request: texts must be a non-empty list of strings")
    if len(texts) > MAX_TEXTS:
        raise invalid(
            f"invalid request: total number of texts must be at most {MAX_TEXTS} - received "
            f"{len(texts)}"
        )
    size = body.get("output_dimension")
    if size is not None:
        if not model.startswith("embed-v4"):
            raise invalid(f"invalid request: output_dimension is not supported for model '{model}'")
        if size not in OUTPUT_DIMENSIONS:
            raise invalid(
                "invalid request: output_dimension must be one of 256, 512, 1024, 1536 - "
                f"received {size}"
            )
    return [str(t) for t in texts]
