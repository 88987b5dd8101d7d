"""Protobuf in, pipeline values out, and back, for the `Embed` call (beside `proto_convert`).

An `EmbedRequest` message becomes an `EmbeddingRequest` (unset optional fields stay None:
validation is the core's); an `EmbeddingAnswer` becomes an `EmbedResponse`. The OpenAI-shaped
`/v1/embeddings` route converts to and from the same pipeline values.
"""

from __future__ import annotations

from gateway.pipeline.types import EmbeddingAnswer, EmbeddingRequest
from gateway.transports.proto_convert import attempt_messages, serving_fields, usage_message
from gateway.v1 import gateway_pb2 as pb
from providers.embed_types import EmbedRequest


def embedding_request(message: pb.EmbedRequest) -> EmbeddingRequest:
    """The call an `EmbedRequest` asks for (not yet validated)."""
    embed = EmbedRequest(
        message.model,
        tuple(message.inputs),
        message.dimensions if message.HasField("dimensions") else None,
        message.input_type if message.HasField("input_type") else None,
    )
    return EmbeddingRequest(embed, *serving_fields(message))


def embed_response(answer: EmbeddingAnswer) -> pb.EmbedResponse:
    """An `EmbeddingAnswer` as the `EmbedResponse` message."""
    embeddings = answer.embeddings
    return pb.EmbedResponse(
        model=embeddings.model,
        provider=answer.provider,
        embeddings=[pb.Embedding(values=vector) for vector in embeddings.vectors],
        usage=usage_message(embeddings.usage),
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        attempts=attempt_messages(answer.attempts),
        usage_estimated=embeddings.usage_estimated,
    )
