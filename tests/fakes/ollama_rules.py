"""What Ollama's `/api/chat` and `/api/embed` refuse, with Ollama's own wording.

Each check raises `Rejected(message)`, which the fake sends as `{"error": "<text>"}` with status
400. Sources are `ollama/ollama` @fb307609 (2026-08-21): `api/types.go` (`ChatRequest`,
`Message`, `ToolCall`, `ThinkValue`, `EmbedRequest`), `server/routes.go` (`ChatHandler`,
`EmbedHandler`, `scheduleRunner`), `server/images.go` (`CheckCapabilities`),
`llm/llama_server.go` (format). Ollama ignores unknown fields (Go's JSON decoder), so the fake
does too.

- "model is required"; `think` is a boolean or "high"/"medium"/"low"/"max" ("invalid think
  value: ..."; "think must be a boolean or string ..."); `format` is "", "json" or a JSON
  schema object ('invalid format: ...; expected "json" or a valid JSON Schema object').
- A message's `content` is a string and its `images` are raw base64, no `data:` prefix (Go's
  `[]byte` decoding: "illegal base64 data at input byte N"); a tool call's `arguments` is an
  object (wording approximate: Go's unmarshal error).
- A model without a capability refuses what needs it: "<model> does not support tools"
  (tools), "... vision" (images), '"<model>" does not support thinking' (`think`).
- `/api/embed`: `input` is a string or a list of strings ("invalid input type").
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

import orjson

from tests.fakes.rules import Rejected, b64decode, first_bad_base64_byte

THINK_LEVELS: Final = ("high", "medium", "low", "max")
_THINK_CHOICES: Final = '("high", "medium", "low", "max", true, or false)'


def invalid(message: str) -> Rejected:
    """An Ollama 400."""
    return Rejected(message)


def registry_name(model: str) -> str:
    """The full name Ollama reports a model under (`registry.ollama.ai/library/...:latest`)."""
    name = model if ":" in model else f"{model}:latest"
    return name if "/" in name else f"registry.ollama.ai/library/{name}"


def check_chat(body: object, *, lacks: Collection[str] = ()) -> None:
    """Raise `Rejected` for an `/api/chat` body Ollama refuses; `lacks` are missing capabilities."""
    if not isinstance(body, dict) or not body.get("model"):
        raise invalid("model is required")
    model = str(body["model"])
    _check_think(body.get("think"))
    _check_format(body.get("format"))
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        raise invalid(
            f"json: cannot unmarshal {_json_type(messages)} into Go struct field "
            "ChatRequest.messages of type []api.Message"
        )
    images = False
    for message in messages:
        images |= _check_message(message)
    missing = []
    if body.get("tools") and "tools" in lacks:
        missing.append("tools")
    if images and "vision" in lacks:
        missing.append("vision")
    if missing:
        raise invalid(f"{registry_name(model)} does not support {' '.join(missing)}")
    think = body.get("think")
    if think not in (None, False) and "thinking" in lacks:
        raise invalid(f'"{model}" does not support thinking')


def _check_think(think: object) -> None:
    if think is None or isinstance(think, bool):
        return
    if isinstance(think, str):
        if think not in THINK_LEVELS:
            raise invalid(f'invalid think value: "{think}" (must be {_THINK_CHOICES[1:-1]})')
        return
    raise invalid(f"think must be a boolean or string {_THINK_CHOICES}")


def _check_format(fmt: object) -> None:
    if fmt is None or fmt in ("", "json") or isinstance(fmt, dict):
        return
    raw = orjson.dumps(fmt).decode()
    raise invalid(
        f'invalid format: {orjson.dumps(raw).decode()}; expected "json" or a valid JSON Schema '
        "object"
    )


def _check_message(message: object) -> bool:
    """Whether the message carries images (after checking its shape)."""
    if not isinstance(message, dict):
        raise invalid(
            f"json: cannot unmarshal {_json_type(message)} into Go value of type api.Message"
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise invalid(
            f"json: cannot unmarshal {_json_type(content)} into Go struct field Alias.content "
            "of type string"
        )
    images = message.get("images") or []
    if not isinstance(images, list):
        raise invalid(
            f"json: cannot unmarshal {_json_type(images)} into Go struct field Alias.images of "
            "type []api.ImageData"
        )
    for image in images:
        if not isinstance(image, str) or b64decode(image) is None or "-" in image or "_" in image:
            at = first_bad_base64_byte(image) if isinstance(image, str) else 0
            raise invalid(f"illegal base64 data at input byte {at}")
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if arguments is not None and not isinstance(arguments, dict):
            raise invalid(
                f"json: cannot unmarshal {_json_type(arguments)} into Go struct field "
                "ToolCallFunction.tool_calls.function.arguments of type map[string]interface {}"
            )
    return bool(images)


def check_embed(body: object) -> list[str]:
    """Raise `Rejected` for an `/api/embed` body Ollama refuses; else the inputs it embeds."""
    if not isinstance(body, dict) or not body.get("model"):
        raise invalid("model is required")
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw] if raw else []
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return [str(item) for item in raw]
    raise invalid("invalid input type")


def _json_type(value: object) -> str:
    """The JSON type Go's decoder names in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"
