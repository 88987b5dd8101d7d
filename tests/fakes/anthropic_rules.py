"""What Anthropic's Messages API refuses, with Anthropic's own wording.

Each check raises `Rejected(message)`, which the fake sends as `{"type": "error", "error":
{"type": "invalid_request_error", "message"}, "request_id"}` with status 400. Field names are
`anthropic-sdk-python` `types/message_create_params.py` (v2.17); texts are Anthropic's, as
quoted in the client bug reports named, unless marked "wording approximate".

- Required fields ("max_tokens: Field required"); unknown fields ("<field>: Extra inputs are
  not permitted"; the beta `output_format` only with an `anthropic-beta: structured-outputs-...`
  header); a "system" role message (the API takes a top-level `system`).
- Empty content: "messages.<i>: all messages must have non-empty content except for the
  optional final assistant message"; "messages: text content blocks must be non-empty"
  (anthropics/claude-code#62396, vercel/ai#5576); "messages: text content blocks must contain
  non-whitespace text".
- Tool pairing: "messages.<i>: `tool_use` ids were found without `tool_result` blocks
  immediately after: <ids>. Each `tool_use` block must have a corresponding `tool_result` block
  in the next message." (aliasrobotics/cai#182); "messages.<i>: Did not find <n> `tool_result`
  block(s) at the beginning of this message. Messages following `tool_use` blocks must begin
  with a matching number of `tool_result` blocks." (BerriAI/litellm#6422);
  "messages.<i>.content.<j>: unexpected `tool_use_id` found in `tool_result` blocks: <id>. Each
  `tool_result` block must have a corresponding `tool_use` block in the previous message.";
  "`tool_use` ids must be unique".
- Thinking (`types/thinking_config_enabled_param.py`: budget >= 1024 and < max_tokens;
  `thinking_block_param.py`: blocks "must be passed back unmodified", else 400): "Invalid
  `signature` in `thinking` block"; "Invalid `data` in `redacted_thinking` block"; with
  thinking on, the assistant turn before the last tool results must start with a thinking
  block ("Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is
  enabled, a final `assistant` message must start with a thinking block ..."); a forced
  tool_choice is refused ("Thinking may not be enabled when tool_choice forces tool use.",
  anthropics/claude-code#18759); so is a temperature other than 1. Claude 4.7 and later refuse
  the budget form and `disabled` ("\"thinking.type.enabled\" is not supported for this model.
  Use \"thinking.type.adaptive\" and \"output_config.effort\" ...", docker/docker-agent#3093;
  AWS Bedrock "Adaptive thinking" page); adaptive thinking is Claude 4.6 and later (the same
  page: "Older models ... do not support adaptive thinking"; wording approximate).
- Images (`types/image_block_param.py`, `base64_image_source_param.py`): source `base64`
  (media type jpeg/png/gif/webp, data real base64 whose bytes are that type: "The image was
  specified using the image/jpeg media type, but the image appears to be a image/png image"),
  `url` (an http(s) URL) or `file`.
- Tools (`types/tool_param.py`): name `^[a-zA-Z0-9_-]{1,128}$`, `input_schema.type` "object",
  unique names; `tool_choice` auto/any/tool/none, "tool" naming a defined tool, and only with
  tools (wording approximate).
- Structured output (`types/output_config_param.py`, `json_output_format_param.py`):
  `output_config.format` is `{"type": "json_schema", "schema"}`, the schema in Anthropic's
  subset (`tests.fakes.rules.anthropic_schema_problem`: "output_config.format.schema: For
  'integer' type, property 'minimum' is not supported", agentjido/req_llm#302); `effort` is
  low/medium/high/xhigh/max.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from tests.fakes.rules import (
    Rejected,
    anthropic_schema_problem,
    b64decode,
    is_web_url,
    non_integer_keyword,
    sniff_image,
)
from tests.fakes.script import Minter

FIELDS: Final = frozenset(
    {
        "model", "messages", "max_tokens", "cache_control", "container", "context_management",
        "diagnostics", "inference_geo", "mcp_servers", "metadata", "output_config",
        "service_tier", "speed", "stop_sequences", "stream", "system", "temperature",
        "thinking", "tool_choice", "tools", "top_k", "top_p", "user_profile_id", "workspace_id",
    }
)  # fmt: skip
IMAGE_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
EFFORTS: Final = ("low", "medium", "high", "xhigh", "max")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_USER_BLOCKS: Final = frozenset(
    {"text", "image", "document", "tool_result", "search_result", "container_upload"}
)
_ASSISTANT_BLOCKS: Final = frozenset(
    {"text", "thinking", "redacted_thinking", "tool_use", "server_tool_use",
     "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result"}
)  # fmt: skip
#: `claude-<family>-<major>[-<minor>]`: a minor has one or two digits (more is a date).
_CLAUDE_NAME: Final = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d{1,2})(?!\d))?")
_THINKING_DOCS: Final = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def invalid(message: str) -> Rejected:
    """An Anthropic 400 `invalid_request_error`."""
    return Rejected(message)


def check(body: object, *, betas: Sequence[str], minter: Minter) -> None:
    """Raise `Rejected` for a Messages body Anthropic refuses."""
    if not isinstance(body, dict):
        raise invalid("Expected an object at the top level")
    if not isinstance(body.get("max_tokens"), int):
        raise invalid("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("messages: Field required")
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") == "system":
            raise invalid(
                f'messages.{index}.role: Unexpected role "system". The Messages API accepts '
                'a top-level `system` parameter, not "system" as an input message role.'
            )
    if not isinstance(body.get("model"), str):
        raise invalid("model: Field required")
    structured_beta = any(b.startswith("structured-outputs") for b in betas)
    for name in body:
        if name not in FIELDS and not (name == "output_format" and structured_beta):
            raise invalid(f"{name}: Extra inputs are not permitted")
    thinking = _check_thinking(body)
    tools = _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"), tools, thinking=thinking)
    _check_output(body)
    _check_messages(messages, thinking=thinking, minter=minter)


def _check_thinking(body: Mapping[str, object]) -> bool:
    """Whether thinking is on (after checking its configuration)."""
    config = body.get("thinking")
    if config is None:
        return False
    kind = config.get("type") if isinstance(config, dict) else None
    if kind not in ("enabled", "disabled", "adaptive", "between_tools"):
        raise invalid(
            "thinking: Input tag '"
            + str(kind)
            + "' found using 'type' does not match any of the expected tags: 'enabled', "
            "'disabled', 'adaptive'"
        )
    _check_thinking_form(str(kind), body.get("model"))
    if kind == "disabled":
        return False
    if kind == "enabled":
        assert isinstance(config, dict)
        budget = config.get("budget_tokens")
        if not isinstance(budget, int):
            raise invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens <= budget:
            raise invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                f"documentation at {_THINKING_DOCS}#max-tokens-and-context-window-size"
            )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise invalid(
            "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. "
            f"Please consult our documentation at {_THINKING_DOCS}"
        )
    return True


def _check_thinking_form(kind: str, model: object) -> None:
    """Claude 4.7 and later think only adaptively; adaptive thinking came with Claude 4.6."""
    version = _claude_version(model)
    if version is None:
        return
    if kind in ("enabled", "disabled") and version >= (4, 7):
        raise invalid(
            f'"thinking.type.{kind}" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
        )
    if kind == "adaptive" and version < (4, 6):
        raise invalid('"thinking.type.adaptive" is not supported for this model.')


def _claude_version(model: object) -> tuple[int, int] | None:
    """(major, minor) of a Claude model name, None for a name without one."""
    match = _CLAUDE_NAME.search(model) if isinstance(model, str) else None
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def _check_tools(raw: object) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("tools: Input should be a valid list")
    names: list[str] = []
    for index, tool in enumerate(raw):
        where = f"tools.{index}.custom"
        if not isinstance(tool, dict):
            raise invalid(f"tools.{index}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web_search_...), checked by its own schema
        name = tool.get("name")
        if not isinstance(name, str):
            raise invalid(f"{where}.name: Field required")
        if not _TOOL_NAME.fullmatch(name):
            raise invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        for key in tool:
            if key not in {
                "name", "description", "input_schema", "type", "cache_control", "strict",
                "eager_input_streaming", "input_examples", "defer_loading", "allowed_callers",
            }:  # fmt: skip
                raise invalid(f"{where}.{key}: Extra inputs are not permitted")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise invalid(f"{where}.input_schema: Field required")
        if schema.get("type") != "object":
            raise invalid(f"{where}.input_schema.type: Input should be 'object'")
        _check_integers(schema, f"{where}.input_schema")
        if tool.get("strict") is True:
            problem = anthropic_schema_problem(schema)
            if problem:
                raise invalid(f"{where}.input_schema: {problem}")
        if name in names:
            raise invalid("tools: Tool names must be unique.")
        names.append(name)
    return names


def _check_integers(schema: object, where: str) -> None:
    found = non_integer_keyword(schema)
    if found is not None:
        path, keyword, _value = found
        inner = ".".join((*path, keyword))
        raise invalid(f"{where}.{inner}: Input should be a valid integer")


def _check_tool_choice(choice: object, tools: Sequence[str], *, thinking: bool) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise invalid(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'"
        )
    assert isinstance(choice, dict)
    if not tools and kind != "none":
        raise invalid("tool_choice may only be specified while providing tools.")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise invalid("tool_choice.tool.name: Field required")
        if name not in tools:
            raise invalid(f"tool_choice.tool.name: Tool '{name}' not found in tools.")
    if thinking and kind in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")


def _check_output(body: Mapping[str, object]) -> None:
    config = body.get("output_config")
    legacy = body.get("output_format")
    for where, fmt in (("output_config.format", _get(config, "format")), ("output_format", legacy)):
        if fmt is None:
            continue
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise invalid(f"{where}.type: Input should be 'json_schema'")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise invalid(f"{where}.schema: Field required")
        _check_integers(schema, f"{where}.schema")
        problem = anthropic_schema_problem(schema)
        if problem:
            raise invalid(f"{where}.schema: {problem}")
    effort = _get(config, "effort")
    if effort is not None and effort not in EFFORTS:
        raise invalid(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )


def _get(obj: object, key: str) -> object:
    return obj.get(key) if isinstance(obj, dict) else None


def _blocks(message: Mapping[str, object]) -> list[dict[str, object]]:
    """The message's content as blocks (a string is one text block)."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _check_messages(messages: list[object], *, thinking: bool, minter: Minter) -> None:
    seen_ids: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        last = index == len(messages) - 1
        if content in ("", []) and not (last and message["role"] == "assistant"):
            raise invalid(
                f"messages.{index}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        if not isinstance(content, (str, list)):
            raise invalid(f"messages.{index}.content: Field required")
        blocks = _blocks(message)
        allowed = _USER_BLOCKS if message["role"] == "user" else _ASSISTANT_BLOCKS
        for position, block in enumerate(blocks):
            where = f"messages.{index}.content.{position}"
            kind = block.get("type")
            if kind not in allowed:
                raise invalid(
                    f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
                    "expected tags: " + ", ".join(f"'{t}'" for t in sorted(allowed))
                )
            _check_block(where, block, minter)
            if kind == "tool_use":
                call_id = str(block.get("id"))
                if call_id in seen_ids:
                    raise invalid(f"{where}: `tool_use` ids must be unique")
                seen_ids.add(call_id)
        if message["role"] == "assistant":
            _check_answered(messages, index)
        else:
            _check_results(messages, index)
    if thinking:
        _check_final_thinking(messages)


def _check_block(where: str, block: Mapping[str, object], minter: Minter) -> None:
    kind = block.get("type")
    if kind == "text":
        _check_text(block.get("text"), where)
    elif kind == "image":
        _check_image(block.get("source"), f"{where}.image.source")
    elif kind == "tool_use":
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise invalid(f"{where}.tool_use.{key}: Field required")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{where}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{where}.tool_result.tool_use_id: Field required")
        inner = block.get("content")
        if isinstance(inner, list):
            for position, part in enumerate(inner):
                part_where = f"{where}.tool_result.content.{position}"
                if not isinstance(part, dict):
                    raise invalid(f"{part_where}: Input should be a valid dictionary")
                part_kind = part.get("type")
                if part_kind == "text":
                    _check_text(part.get("text"), part_where)
                elif part_kind == "image":
                    _check_image(part.get("source"), f"{part_where}.image.source")
                elif part_kind not in ("document", "search_result", "tool_reference"):
                    raise invalid(
                        f"{part_where}: Input tag '{part_kind}' found using 'type' does not "
                        "match any of the expected tags: 'text', 'image', 'document', "
                        "'search_result'"
                    )
    elif kind == "thinking":
        signature = block.get("signature")
        if not isinstance(signature, str):
            raise invalid(f"{where}.thinking.signature: Field required")
        if not minter.signed(signature, str(block.get("thinking", ""))):
            raise invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str) or not minter.signed(data):
            raise invalid(f"{where}: Invalid `data` in `redacted_thinking` block")


def _check_text(text: object, where: str) -> None:
    if not isinstance(text, str):
        raise invalid(f"{where}.text.text: Field required")
    if text == "":
        raise invalid("messages: text content blocks must be non-empty")
    if not text.strip():
        raise invalid("messages: text content blocks must contain non-whitespace text")


def _check_image(source: object, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind not in ("base64", "url", "file"):
        raise invalid(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected "
            "tags: 'base64', 'url', 'file'"
        )
    assert isinstance(source, dict)
    if kind == "url":
        if not is_web_url(source.get("url")):
            raise invalid(f"{where}.url.url: URL must use http or https")
        return
    if kind == "file":
        if not isinstance(source.get("file_id"), str):
            raise invalid(f"{where}.file.file_id: Field required")
        return
    media = source.get("media_type")
    if media not in IMAGE_TYPES:
        raise invalid(
            f"{where}.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' "
            "or 'image/webp'"
        )
    data = b64decode(source.get("data"))
    if data is None:
        raise invalid(f"{where}.base64.data: Input should be valid base64 data")
    seen = sniff_image(data)
    if seen is not None and seen != media:
        raise invalid(
            f"{where}.base64: The image was specified using the {media} media type, but the "
            f"image appears to be a {seen} image"
        )


def _tool_use_ids(message: object) -> list[str]:
    if not isinstance(message, dict):
        return []
    return [str(b.get("id")) for b in _blocks(message) if b.get("type") == "tool_use"]


def _check_answered(messages: list[object], index: int) -> None:
    """Every tool_use of assistant turn `index` has its tool_result in the next message."""
    asked = _tool_use_ids(messages[index])
    if not asked:
        return
    following = messages[index + 1] if index + 1 < len(messages) else None
    answered = set()
    if isinstance(following, dict) and following.get("role") == "user":
        answered = {
            b.get("tool_use_id") for b in _blocks(following) if b.get("type") == "tool_result"
        }
    missing = [call_id for call_id in asked if call_id not in answered]
    if missing:
        raise invalid(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )


def _check_results(messages: list[object], index: int) -> None:
    """User turn `index` answers the previous turn's tool_use blocks, results first."""
    message = messages[index]
    assert isinstance(message, dict)
    blocks = _blocks(message)
    asked = _tool_use_ids(messages[index - 1]) if index > 0 else []
    for position, block in enumerate(blocks):
        if block.get("type") == "tool_result" and block.get("tool_use_id") not in asked:
            raise invalid(
                f"messages.{index}.content.{position}: unexpected `tool_use_id` found in "
                f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` block "
                "must have a corresponding `tool_use` block in the previous message."
            )
    if asked:
        leading = 0
        while leading < len(blocks) and blocks[leading].get("type") == "tool_result":
            leading += 1
        if leading < len(asked):
            raise invalid(
                f"messages.{index}: Did not find {len(asked)} `tool_result` block(s) at the "
                "beginning of this message. Messages following `tool_use` blocks must begin "
                "with a matching number of `tool_result` blocks."
            )


def _check_final_thinking(messages: list[object]) -> None:
    """With thinking on, the assistant turn before the last tool results starts thinking."""
    if len(messages) < 2:
        return
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return
    if not any(b.get("type") == "tool_result" for b in _blocks(last)):
        return
    assistant = messages[-2]
    if not isinstance(assistant, dict) or assistant.get("role") != "assistant":
        return
    blocks = _blocks(assistant)
    first = blocks[0].get("type") if blocks else None
    if first not in ("thinking", "redacted_thinking"):
        raise invalid(
            f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
            f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final "
            "`assistant` message must start with a thinking block (preceeding the lastmost "
            "set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
            "blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
            f"consult our documentation at {_THINKING_DOCS}"
        )
