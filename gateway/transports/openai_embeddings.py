"""OpenAI's Embeddings request as our `EmbeddingRequest`, and our answer as its `list`: pure.

The request (`types/embedding_create_params.py`): `model`; `input` a string, an array of strings,
an array of token ids or an array of token-id arrays (token arrays reach only deployments that
take them, OpenAI and compatible servers; elsewhere the core refuses them naming the input);
`encoding_format` `float` or `base64` (the SDKs ask for base64 unless told otherwise, and decode
it as little-endian float32); `dimensions`; `user` (the metadata label "user"). Besides the
gateway's extras (`openai_fields`), `input_type` says what the vectors are for (Cohere's input
type, "search_document" unless set). Any other field is refused, as OpenAI refuses it.

The answer: `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
"model", "usage": {"prompt_tokens", "total_tokens"}}`, one embedding per input, in order.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import EmbeddingAnswer, EmbeddingRequest
from gateway.transports.openai_fields import SERVING_FIELDS, optional_int, optional_text, serving
from providers.embed_types import EmbedRequest

_FIELDS: Final = (
    frozenset({"model", "input", "encoding_format", "dimensions", "input_type"}) | SERVING_FIELDS
)
_ENCODINGS: Final = ("float", "base64")
_BAD_INPUT: Final = (
    "input: must be a string, an array of strings, an array of token ids "
    "or an array of token-id arrays"
)


@dataclass(frozen=True, slots=True)
class EmbeddingsCall:
    """An Embeddings request, converted: the call, and how to write its vectors."""

    request: EmbeddingRequest
    #: Vectors as base64 of little-endian float32 (else as arrays of numbers).
    base64: bool = False


def embeddings_call(body: Mapping[str, Any]) -> EmbeddingsCall:
    """The call `body` asks for; `InvalidArgumentError` (its message starting with the field)."""
    for name in body:
        if name not in _FIELDS:
            raise InvalidArgumentError(f"{name}: unrecognized request argument")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgumentError("model: required, a string")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in _ENCODINGS:
        raise InvalidArgumentError("encoding_format: must be float or base64")
    if "input" not in body:
        raise InvalidArgumentError("input: required")
    texts, tokens = _inputs(body["input"])
    embed = EmbedRequest(
        model,
        texts,
        optional_int(body, "dimensions"),
        optional_text(body, "input_type"),
        tokens,
    )
    return EmbeddingsCall(EmbeddingRequest(embed, *serving(body)), encoding == "base64")


def _inputs(raw: object) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """`input` as texts or as token arrays (the other one empty)."""
    if isinstance(raw, str):
        return (raw,), ()
    if not isinstance(raw, list) or not raw:
        raise InvalidArgumentError(_BAD_INPUT)
    if all(isinstance(item, str) for item in raw):
        return tuple(raw), ()
    if all(_is_token(item) for item in raw):
        return (), (tuple(raw),)
    if all(isinstance(item, list) and all(_is_token(t) for t in item) for item in raw):
        return (), tuple(tuple(item) for item in raw)
    raise InvalidArgumentError(_BAD_INPUT)


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def embedding_list(answer: EmbeddingAnswer, *, as_base64: bool) -> bytes:
    """`answer` as OpenAI's embedding `list`, vectors as numbers or as base64 float32."""
    embeddings = answer.embeddings
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": float32_base64(vector) if as_base64 else vector,
        }
        for index, vector in enumerate(embeddings.vectors)
    ]
    usage = embeddings.usage
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": embeddings.model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
        }
    )


def float32_base64(vector: tuple[float, ...]) -> str:
    """`vector` as little-endian float32 bytes, in base64 (what `encoding_format` base64 is)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
