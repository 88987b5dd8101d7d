"""Validation of completion and embedding requests, whichever transport they came by.

`validate` checks a `CompletionRequest` (`validate_embedding` an `EmbeddingRequest`) and returns
it normalised (model names stripped, a
text response format dropped). Every problem is an `InvalidArgumentError` whose message starts
with the field it is about, named as the API names it. What agents send (parts, images, tool
calls and results, tools, response formats) is checked by `validation_agents`.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import replace

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import (
    CachePolicy,
    CompletionRequest,
    EmbeddingRequest,
    Priority,
    Routing,
)
from gateway.pipeline.validation_agents import (
    check_messages,
    check_reasoning_effort,
    check_response_format,
    check_tools,
)
from providers.types import Message, Sampling, TextPart

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MODEL_CHARS = 256
MAX_MESSAGES = 4096
MAX_STOP_SEQUENCES = 16
MAX_FALLBACK_MODELS = 8
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_TIMEOUT_SECONDS = 3600.0
#: Inputs one embedding call may carry (adapters split them into the vendor's batches).
MAX_EMBED_INPUTS = 4096
MAX_EMBED_DIMENSIONS = 65536
#: Token ids one token array may carry (OpenAI's embedding models take 8192 tokens an input).
MAX_EMBED_TOKENS = 8192
#: Token ids are vocabulary positions: any tokenizer's fit below this.
MAX_TOKEN_ID = 2**31
MAX_INPUT_TYPE_CHARS = 64

_DOT_SEGMENTS = frozenset({".", ".."})
_PRIORITIES = frozenset(Priority)


def validate(request: CompletionRequest) -> CompletionRequest:
    """`request` checked and normalised; `InvalidArgumentError` naming the first bad field."""
    _check_priority(request.priority)
    chat = request.chat
    model = _model(chat.model)
    _check_messages(chat.messages)
    _check_sampling(chat.sampling)
    response_format = chat.response_format
    # Nearly every request asks for none of these: their checks are skipped, not run empty.
    if chat.tools or chat.tool_choice is not None or chat.parallel_tool_calls is not None:
        check_tools(chat)
    if response_format is not None:
        response_format = check_response_format(response_format)
    if chat.reasoning_effort is not None:
        check_reasoning_effort(chat.reasoning_effort)
    routing = _serving(request)
    if model != chat.model or response_format is not chat.response_format:
        chat = replace(chat, model=model, response_format=response_format)
    if chat is request.chat and routing is request.routing:
        return request
    return CompletionRequest(
        chat, routing, request.metadata, request.timeout, request.priority, request.cache
    )


def validate_embedding(request: EmbeddingRequest) -> EmbeddingRequest:
    """`request` checked and normalised; `InvalidArgumentError` naming the first bad field."""
    _check_priority(request.priority)
    embed = request.embed
    model = _model(embed.model)
    _check_embed_inputs(embed.inputs, embed.tokens)
    size = embed.dimensions
    if size is not None and not 0 < size <= MAX_EMBED_DIMENSIONS:
        raise InvalidArgumentError(
            f"dimensions: must be from 1 to {MAX_EMBED_DIMENSIONS}, got {size}"
        )
    kind = embed.input_type
    if kind is not None and not (
        0 < len(kind) <= MAX_INPUT_TYPE_CHARS and kind.replace("_", "").isalnum() and kind.isascii()
    ):
        raise InvalidArgumentError(
            "input_type: must be a name such as 'search_document' or 'search_query'"
        )
    routing = _serving(request)
    if model != embed.model:
        request = replace(request, embed=replace(embed, model=model))
    if routing is not request.routing:
        request = replace(request, routing=routing)
    return request


def _serving(request: CompletionRequest | EmbeddingRequest) -> Routing:
    """Check how the call is to be served (routing, metadata, timeout, cache); its routing
    normalised (the same object when nothing changed)."""
    routing = request.routing
    provider, fallbacks = routing.provider.strip(), _fallback_models(routing.fallback_models)
    _check_metadata(request.metadata)
    _check_timeout(request.timeout)
    _check_cache(request.cache)
    if provider != routing.provider or fallbacks != routing.fallback_models:
        return Routing(provider, fallbacks)
    return routing


def _check_embed_inputs(inputs: Sequence[str], tokens: Sequence[Sequence[int]]) -> None:
    if inputs and tokens:
        raise InvalidArgumentError("inputs: texts or token arrays, not both")
    if not inputs and not tokens:
        raise InvalidArgumentError("inputs: at least one text is required")
    if len(inputs) + len(tokens) > MAX_EMBED_INPUTS:
        raise InvalidArgumentError(f"inputs: more than {MAX_EMBED_INPUTS} texts")
    for index, text in enumerate(inputs):
        if not text.strip():
            raise InvalidArgumentError(f"inputs[{index}]: must not be empty")
    for index, ids in enumerate(tokens):
        if not ids:
            raise InvalidArgumentError(f"inputs[{index}]: a token array must not be empty")
        if len(ids) > MAX_EMBED_TOKENS or not all(0 <= token < MAX_TOKEN_ID for token in ids):
            raise InvalidArgumentError(
                f"inputs[{index}]: at most {MAX_EMBED_TOKENS} token ids, each from 0 to "
                f"{MAX_TOKEN_ID - 1}"
            )


def _model(model: str) -> str:
    model = model.strip()
    if not model:
        raise InvalidArgumentError("model: required")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidArgumentError(f"model: longer than {MAX_MODEL_CHARS} characters")
    _check_model_name("model", model)
    return model


def _check_model_name(field: str, model: str) -> None:
    """Refuse a name no deployment serves and that would change a URL it is put in.

    Some vendors name the model in the URL path (Azure deployments, Gemini models): a
    dot-segment ("." or "..", also after "<provider>/") would walk up that path, and control
    characters, "?" and "#" end the path. No model anywhere is named like that.
    """
    # A printable name holds no control character, one without "." no dot-segment: the
    # per-character and per-segment scans run only for the rare names that need them.
    if not model.isprintable() and any(unicodedata.category(c) == "Cc" for c in model):
        raise InvalidArgumentError(f"{field}: must not contain control characters")
    if "?" in model or "#" in model:
        raise InvalidArgumentError(f"{field}: must not contain '?' or '#', got {model!r}")
    if "." in model and any(segment in _DOT_SEGMENTS for segment in model.split("/")):
        raise InvalidArgumentError(
            f"{field}: '.' and '..' are not model names (nor parts of one between '/'), "
            f"got {model!r}"
        )


def _check_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise InvalidArgumentError("messages: must hold at least one message")
    if len(messages) > MAX_MESSAGES:
        raise InvalidArgumentError(f"messages: more than {MAX_MESSAGES} messages")
    only_text = True
    for index, message in enumerate(messages):
        role, parts = message.role, message.parts
        if role not in ROLES:
            raise InvalidArgumentError(
                f"messages[{index}].role: must be one of {', '.join(ROLES)}, got {role!r}"
            )
        if not parts and not message.tool_calls and role != "assistant":
            raise InvalidArgumentError(f"messages[{index}].content: must not be empty")
        if only_text and not (
            len(parts) == 1
            and type(parts[0]) is TextPart
            and parts[0].text
            and not message.tool_calls
            and not message.reasoning
            and not message.tool_call_id
            and role != "tool"
        ):
            only_text = False
    if not only_text:  # a conversation of non-empty text turns has nothing more to check
        check_messages(messages)


def _check_sampling(sampling: Sampling) -> None:
    temperature, top_p = sampling.temperature, sampling.top_p
    if temperature is not None and not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
        raise InvalidArgumentError(f"temperature: must be between 0 and 2, got {temperature}")
    if sampling.max_tokens is not None and sampling.max_tokens <= 0:
        raise InvalidArgumentError(
            f"max_tokens: must be a positive integer, got {sampling.max_tokens}"
        )
    if top_p is not None and not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidArgumentError(f"top_p: must be above 0 and at most 1, got {top_p}")
    stop = sampling.stop
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidArgumentError(f"stop: more than {MAX_STOP_SEQUENCES} sequences")
    if any(not s for s in stop):
        raise InvalidArgumentError("stop: sequences must not be empty")


def _fallback_models(models: Sequence[str]) -> tuple[str, ...]:
    if len(models) > MAX_FALLBACK_MODELS:
        raise InvalidArgumentError(f"fallback_models: more than {MAX_FALLBACK_MODELS} models")
    if any(not m.strip() for m in models):
        raise InvalidArgumentError("fallback_models: model names must not be empty")
    names = tuple(m.strip() for m in models)
    for index, name in enumerate(names):
        _check_model_name(f"fallback_models[{index}]", name)
    return names


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidArgumentError(f"metadata: more than {MAX_METADATA_ENTRIES} entries")
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidArgumentError(
                f"metadata: keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"
            )
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidArgumentError(
                f"metadata.{key}: longer than {MAX_METADATA_VALUE_CHARS} characters"
            )


def _check_timeout(seconds: float | None) -> None:
    if seconds is not None and not 0.0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidArgumentError(
            f"timeout: must be above 0s and at most {MAX_TIMEOUT_SECONDS:g}s, got {seconds:g}s"
        )


def _check_cache(cache: CachePolicy) -> None:
    if cache.ttl is not None and cache.ttl <= 0:
        raise InvalidArgumentError(f"cache.ttl: must be above 0s, got {cache.ttl:g}s")


def _check_priority(priority: int) -> None:
    if priority not in _PRIORITIES:
        raise InvalidArgumentError(f"priority: unknown value {priority}")


def parse_timeout_header(value: str) -> float:
    """Seconds from an `x-request-timeout` value: "2" or "2s" (seconds), or "1500ms"."""
    text = value.strip().lower()
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif text.endswith("s"):
        text = text[:-1]
    try:
        seconds = float(text) * scale
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0.0 < seconds <= MAX_TIMEOUT_SECONDS):
        raise InvalidArgumentError(
            f"x-request-timeout: must be a duration such as '1.5s' or '1500ms' above 0 and at "
            f"most {MAX_TIMEOUT_SECONDS:g}s, got {value[:32]!r}"
        )
    return seconds
