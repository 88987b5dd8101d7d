"""What OpenAI's Chat Completions and Embeddings endpoints refuse, with OpenAI's own wording.

Each check raises `Rejected(message, param, code)`, which the fake sends as
`{"error": {"message", "type": "invalid_request_error", "param", "code"}}` with status 400.
Sources (exact texts are OpenAI's unless marked "wording approximate"):

- Unknown top-level field: "Unrecognized request argument supplied: <name>". Known fields are
  those of `openai-python` `types/chat/completion_create_params.py` (v3.63) plus `stream`.
- A `tool` message not answering the assistant `tool_calls` just before it: "Invalid parameter:
  messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
  (param `messages.[i].role`; OpenAI's spelling "preceeding"); an assistant `tool_calls` turn
  not followed by a tool message for each id: "An assistant message with 'tool_calls' must be
  followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did
  not have response messages: <ids>" (both quoted verbatim in many client bug reports, e.g.
  BerriAI/litellm, langchain issues).
- Image parts anywhere but a user turn: "Invalid 'messages[i]'. Image URLs are only allowed for
  messages with role 'user', but this message with role '<role>' contains an image URL."
  (strands-agents/sdk-python#320); a data URL must be `data:image/{png,jpeg,gif,webp};base64,`
  (`types/chat/chat_completion_content_part_image_param.py`: url is "Either a URL of the image or
  the base64 encoded image data"; MIME wording approximate), `detail` auto/low/high.
- `response_format` (`types/shared_params/response_format_json_schema.py`): `json_schema` and
  its `name` are required ("Missing required parameter: 'response_format.json_schema.name'.",
  code missing_required_parameter); strict schemas must close every object and require every
  property ("Invalid schema for response_format '<name>': In context=(), 'additionalProperties'
  is required to be supplied and to be false.", code invalid_json_schema); `json_object` needs
  the word "json" in the messages ("'messages' must contain the word 'json' in some form, to use
  'response_format' of type 'json_object'.").
- Tools: `function.name` must match `^[a-zA-Z0-9_-]{1,64}$`; `parameters` must be an object
  schema ("Invalid schema for function '<name>': schema must be a JSON Schema of 'type:
  "object"', got 'type: "<t>"'.", code invalid_function_parameters); at most 128 tools;
  `tool_choice` / `parallel_tool_calls` only with `tools` ("Invalid value for 'tool_choice':
  'tool_choice' is only allowed when 'tools' are specified."); a named choice must name a tool
  (wording approximate).
- The o-series (o1, o3, o3-mini, o4-mini) refuse `parallel_tool_calls` whatever its value:
  "Unsupported parameter: 'parallel_tool_calls' is not supported with this model." (code
  unsupported_parameter; quoted in evalstate/fast-agent#279, langchain-ai/langchain#29704).
- `n` is 1..128 ("Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0
  instead."); `stream_options` only with `stream` ("The 'stream_options' parameter is only
  allowed when 'stream' is enabled.").
- Reasoning models (o1/o3/o4, gpt-5*) refuse `max_tokens` ("Unsupported parameter:
  'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.") and a
  temperature other than 1; GPT-4/3.5 models refuse `reasoning_effort` ("Unsupported parameter:
  'reasoning_effort' is not supported with this model."); its values are
  `types/shared/reasoning_effort.py`'s.
- Embeddings (`types/embedding_create_params.py`): `input` a non-empty string, list of strings,
  token list or list of token lists ("'$.input' is invalid. Please check the API reference:
  https://platform.openai.com/docs/api-reference."), at most 2048 inputs ("Invalid 'input': array
  too long. Expected an array with maximum length 2048, but got an array with length N
  instead."), `encoding_format` float|base64, `dimensions` only on text-embedding-3 models
  ("This model does not support specifying dimensions.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from tests.fakes.rules import (
    Rejected,
    b64decode,
    is_web_url,
    non_integer_keyword,
    openai_strict_problem,
    parse_data_url,
    schema_types,
)

CHAT_FIELDS: Final = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "moderation", "n", "parallel_tool_calls", "prediction",
        "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
        "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
EMBEDDING_FIELDS: Final = frozenset({"input", "model", "dimensions", "encoding_format", "user"})
ROLES: Final = ("system", "assistant", "user", "function", "tool", "developer")
REASONING_EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_EMBEDDING_INPUTS: Final = 2048
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_REASONING_MODEL = re.compile(r"(o\d|gpt-5)")
_CLASSIC_MODEL = re.compile(r"gpt-(4|3\.5)")
_O_SERIES = re.compile(r"o\d")
#: Content part types each role may send (`types/chat/chat_completion_*_message_param.py`).
_PART_TYPES: Final = {
    "user": {"text", "image_url", "input_audio", "file"},
    "system": {"text"},
    "developer": {"text"},
    "assistant": {"text", "refusal"},
    "tool": {"text"},
}


def invalid(message: str, param: str | None = None, code: str | None = None) -> Rejected:
    """An OpenAI 400 `invalid_request_error`."""
    return Rejected(message, param=param, code=code)


def check_chat(body: object, *, vision: bool = True) -> None:
    """Raise `Rejected` for a Chat Completions body OpenAI refuses."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise invalid("'messages' is a required property")
    for name in body:
        if name not in CHAT_FIELDS:
            raise invalid(f"Unrecognized request argument supplied: {name}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("you must provide a model parameter")
    model = str(body["model"])
    _check_sampling(body, model)
    tools = _check_tools(body.get("tools"))
    _check_tool_choice(body, tools)
    _check_messages(body["messages"], vision=vision)
    _check_response_format(body.get("response_format"), body["messages"])


def _check_sampling(body: Mapping[str, object], model: str) -> None:
    n = body.get("n")
    if n is not None:
        if not isinstance(n, int) or n < 1:
            raise invalid(
                f"Invalid 'n': integer below minimum value. Expected a value >= 1, but got {n} "
                "instead.",
                "n",
                "integer_below_min_value",
            )
        if n > 128:
            raise invalid(
                f"Invalid 'n': integer above maximum value. Expected a value <= 128, but got {n} "
                "instead.",
                "n",
                "integer_above_max_value",
            )
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    effort = body.get("reasoning_effort")
    reasoning = _REASONING_MODEL.match(model) is not None
    if effort is not None:
        if _CLASSIC_MODEL.match(model):
            raise invalid(
                "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                "reasoning_effort",
                "unsupported_parameter",
            )
        if effort not in REASONING_EFFORTS:
            raise invalid(
                f"Invalid value: '{effort}'. Supported values are: "
                + _listing(REASONING_EFFORTS)
                + ".",
                "reasoning_effort",
                "invalid_value",
            )
    if reasoning and "max_tokens" in body:
        raise invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    if body.get("parallel_tool_calls") is not None and _O_SERIES.match(model):
        raise invalid(
            "Unsupported parameter: 'parallel_tool_calls' is not supported with this model.",
            "parallel_tool_calls",
            "unsupported_parameter",
        )
    temperature = body.get("temperature")
    if reasoning and temperature is not None and temperature != 1:
        raise invalid(
            f"Unsupported value: 'temperature' does not support {temperature} with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        )


def _check_tools(raw: object) -> list[str]:
    """The names of the function tools (after checking each definition)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    if len(raw) > 128:
        raise invalid(
            "Invalid 'tools': array too long. Expected an array with maximum length 128, but "
            f"got an array with length {len(raw)} instead.",
            "tools",
            "array_above_max_length",
        )
    names: list[str] = []
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            raise invalid(f"Missing required parameter: '{where}.type'.", f"{where}.type")
        if tool["type"] == "custom":
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(
                f"Missing required parameter: '{where}.function.name'.",
                f"{where}.function.name",
                "missing_required_parameter",
            )
        name = str(function["name"])
        if not _NAME.fullmatch(name):
            raise invalid(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"{where}.function.name",
                "invalid_value",
            )
        _check_function_schema(name, function, where)
        names.append(name)
    return names


def _check_function_schema(name: str, function: Mapping[str, object], where: str) -> None:
    parameters = function.get("parameters")
    if parameters is None:
        return
    kinds = schema_types(parameters) if isinstance(parameters, dict) else set()
    if kinds != {"object"}:
        shown = next(iter(kinds)) if kinds else "None"
        raise invalid(
            f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: "
            f'"object"\', got \'type: "{shown}"\'.',
            f"{where}.function.parameters",
            "invalid_function_parameters",
        )
    _check_integers(parameters, f"Invalid schema for function '{name}'", where)
    if function.get("strict") is True:
        problem = openai_strict_problem(parameters)
        if problem:
            raise invalid(
                f"Invalid schema for function '{name}': {problem}",
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )


def _check_integers(schema: object, prefix: str, param: str) -> None:
    found = non_integer_keyword(schema)
    if found is not None:
        path, keyword, value = found
        raise invalid(
            f"{prefix}: In context={path!r}, {value} is not of type 'integer' for '{keyword}'.",
            param,
            "invalid_json_schema",
        )


def _check_tool_choice(body: Mapping[str, object], tools: Sequence[str]) -> None:
    choice = body.get("tool_choice")
    for param in ("tool_choice", "parallel_tool_calls"):
        if body.get(param) is not None and not body.get("tools"):
            raise invalid(
                f"Invalid value for '{param}': '{param}' is only allowed when 'tools' are "
                "specified.",
                param,
            )
    if choice is None or choice in ("none", "auto", "required"):
        return
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    if not (isinstance(choice, dict) and choice.get("type") == "function"):
        raise invalid(
            f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
            "tool_choice",
            "invalid_value",
        )
    name = function.get("name") if isinstance(function, dict) else None
    if name not in tools:
        raise invalid(
            f"Invalid value for 'tool_choice': function '{name}' is not one of the 'tools'.",
            "tool_choice",
            "invalid_value",
        )


def _check_messages(messages: list[object], *, vision: bool) -> None:
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"Invalid type for 'messages[{index}]': expected an object.")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(
                f"Invalid value: '{role}'. Supported values are: " + _listing(ROLES) + ".",
                f"messages[{index}].role",
                "invalid_value",
            )
        _check_content(index, str(role), message, vision=vision)
        if role == "assistant":
            _check_assistant_calls(messages, index, message)
        elif role == "tool":
            _check_tool_result(messages, index, message)


def _check_content(index: int, role: str, message: Mapping[str, object], *, vision: bool) -> None:
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return
        if role == "assistant":
            return  # OpenAI takes a null assistant content (a refusal, say)
        raise invalid(
            "Invalid value for 'content': expected a string, got null.",
            f"messages.[{index}].content",
        )
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(
            f"Invalid type for 'messages[{index}].content': expected one of a string or array "
            "of objects.",
            f"messages[{index}].content",
            "invalid_type",
        )
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"messages[{index}].content[{position}]"
        if kind == "image_url" and role != "user":
            raise invalid(
                f"Invalid 'messages[{index}]'. Image URLs are only allowed for messages with "
                f"role 'user', but this message with role '{role}' contains an image URL.",
                f"messages[{index}]",
                "invalid_value",
            )
        if kind not in _PART_TYPES.get(role, set()):
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: "
                + _listing(sorted(_PART_TYPES.get(role, set())))
                + ".",
                f"{where}.type",
                "invalid_value",
            )
        if kind == "text" and not isinstance(part.get("text"), str):
            raise invalid(f"Missing required parameter: '{where}.text'.", f"{where}.text")
        if kind == "image_url":
            if not vision:
                raise invalid(
                    "Invalid content type. image_url is only supported by certain models.",
                    f"{where}.type",
                )
            _check_image(part.get("image_url"), where)


def _check_image(image: object, where: str) -> None:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise invalid(
            f"Missing required parameter: '{where}.image_url.url'.",
            f"{where}.image_url.url",
            "missing_required_parameter",
        )
    detail = image.get("detail")
    if detail is not None and detail not in ("auto", "low", "high"):
        raise invalid(
            f"Invalid value: '{detail}'. Supported values are: 'auto', 'low', and 'high'.",
            f"{where}.image_url.detail",
            "invalid_value",
        )
    url = str(image["url"])
    if is_web_url(url):
        return
    data = parse_data_url(url)
    example = "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU=')"
    if data is None:
        raise invalid(
            f"Invalid '{where}.image_url.url'. Expected a valid URL, but got a value with an "
            "invalid format.",
            f"{where}.image_url.url",
            "invalid_value",
        )
    if data.mime not in IMAGE_TYPES:
        raise invalid(
            f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an image "
            f"MIME type {example}, but got unsupported MIME type '{data.mime}'.",
            f"{where}.image_url.url",
            "invalid_value",
        )
    if not data.base64 or b64decode(data.data) is None:
        raise invalid(
            f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an image "
            f"MIME type {example}, but got a value that is not base64-encoded.",
            f"{where}.image_url.url",
            "invalid_value",
        )


def _calls_of(message: Mapping[str, object]) -> list[Mapping[str, object]]:
    calls = message.get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _check_assistant_calls(
    messages: list[object], index: int, message: Mapping[str, object]
) -> None:
    calls = _calls_of(message)
    for position, call in enumerate(calls):
        where = f"messages[{index}].tool_calls[{position}]"
        function = call.get("function")
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise invalid(f"Missing required parameter: '{where}.id'.", f"{where}.id")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(
                f"Missing required parameter: '{where}.function.name'.", f"{where}.function.name"
            )
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            kind = "an object" if isinstance(arguments, dict) else type(arguments).__name__
            raise invalid(
                f"Invalid type for '{where}.function.arguments': expected a string, but got "
                f"{kind} instead.",
                f"{where}.function.arguments",
                "invalid_type",
            )
    if not calls:
        return
    answered: set[object] = set()
    for later in messages[index + 1 :]:
        if not isinstance(later, dict) or later.get("role") != "tool":
            break
        answered.add(later.get("tool_call_id"))
    missing = [str(call["id"]) for call in calls if call["id"] not in answered]
    if missing:
        raise invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(missing),
            f"messages.[{index}].role",
        )


def _check_tool_result(messages: list[object], index: int, message: Mapping[str, object]) -> None:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(
            "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
            "'tool_call_id'.",
            f"messages.[{index}].tool_call_id",
        )
    # The calls it may answer: the assistant turn just before this run of tool messages.
    before = index - 1
    while before >= 0 and _role(messages[before]) == "tool":
        before -= 1
    previous = messages[before] if before >= 0 else None
    ids = {c.get("id") for c in _calls_of(previous)} if isinstance(previous, dict) else set()
    if not isinstance(previous, dict) or previous.get("role") != "assistant" or call_id not in ids:
        raise invalid(
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            "message with 'tool_calls'.",
            f"messages.[{index}].role",
        )


def _role(message: object) -> object:
    return message.get("role") if isinstance(message, dict) else None


def _check_response_format(raw: object, messages: list[object]) -> None:
    if raw is None:
        return
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or kind not in ("text", "json_object", "json_schema"):
        raise invalid(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and "
            "'json_schema'.",
            "response_format.type",
            "invalid_value",
        )
    if kind == "json_object" and "json" not in _all_text(messages).lower():
        raise invalid(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of "
            "type 'json_object'.",
            "messages",
        )
    if kind != "json_schema":
        return
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise invalid(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    name = spec.get("name")
    if not isinstance(name, str):
        raise invalid(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    if not _NAME.fullmatch(name):
        raise invalid(
            "Invalid 'response_format.json_schema.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "response_format.json_schema.name",
            "invalid_value",
        )
    schema = spec.get("schema")
    prefix = f"Invalid schema for response_format '{name}'"
    if schema is not None and not isinstance(schema, dict):
        raise invalid(
            f"{prefix}: schema must be an object.", "response_format", "invalid_json_schema"
        )
    _check_integers(schema, prefix, "response_format")
    if spec.get("strict") is True:
        problem = openai_strict_problem(schema or {})
        if problem:
            raise invalid(f"{prefix}: {problem}", "response_format", "invalid_json_schema")


def _all_text(messages: list[object]) -> str:
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    return "\n".join(texts)


def check_embeddings(body: object, *, sizable: bool) -> list[str] | list[list[int]]:
    """Raise `Rejected` for an embeddings body OpenAI refuses; else the inputs it embeds.

    `sizable` says whether the model takes `dimensions` (OpenAI: text-embedding-3 models).
    """
    if not isinstance(body, dict):
        raise invalid(
            "'$.input' is invalid. Please check the API reference: "
            "https://platform.openai.com/docs/api-reference."
        )
    for name in body:
        if name not in EMBEDDING_FIELDS:
            raise invalid(f"Unrecognized request argument supplied: {name}")
    if "input" not in body:
        raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    inputs = _embedding_inputs(body["input"])
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise invalid(
            "Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_EMBEDDING_INPUTS}, but got an array with length {len(inputs)} instead.",
            "input",
            "array_above_max_length",
        )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise invalid(
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not sizable:
            raise invalid("This model does not support specifying dimensions.", "dimensions")
        if not isinstance(dimensions, int) or dimensions < 1:
            raise invalid(
                f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but "
                f"got {dimensions} instead.",
                "dimensions",
                "integer_below_min_value",
            )
    return inputs


def _embedding_inputs(raw: object) -> list[str] | list[list[int]]:
    bad = invalid(
        "'$.input' is invalid. Please check the API reference: "
        "https://platform.openai.com/docs/api-reference."
    )
    if isinstance(raw, str):
        if not raw:
            raise bad
        return [raw]
    if not isinstance(raw, list) or not raw:
        raise bad
    if all(isinstance(item, str) and item for item in raw):
        return [str(item) for item in raw]
    if all(isinstance(item, int) and not isinstance(item, bool) for item in raw):
        return [[int(item) for item in raw]]
    if all(
        isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in raw
    ):
        return [[int(t) for t in item] for item in raw]
    raise bad


def _listing(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]
