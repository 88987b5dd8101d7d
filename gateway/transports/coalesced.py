"""Coalesced stream batches (`gateway.pipeline.coalesce`) as `StreamCompleteResponse` messages.

A batch of one item is the very message that item always made; a merged batch is one message
with the joined text, reasoning and tool-call fragments, and, when the stream ended in it, the
last message's finish reason, usage, cost and tries besides.
"""

from __future__ import annotations

from gateway.pipeline.coalesce import Batch
from gateway.transports.proto_convert import last_message, tool_call_delta_message
from gateway.v1 import gateway_pb2 as pb

#: Metadata key (gRPC) and header (HTTP) a caller sends, with the value "off", to get one
#: message per upstream chunk.
COALESCING_HEADER = "x-stream-coalescing"


def merging(value: str | None) -> bool:
    """Whether a stream is coalesced, given the caller's `COALESCING_HEADER` value."""
    return value is None or value.strip().lower() != "off"


def batch_message(batch: Batch) -> pb.StreamCompleteResponse:
    """The one message a batch is sent as."""
    if batch.done is None:
        head = batch.head
        message = pb.StreamCompleteResponse(
            id=head.id, model=head.model, provider=head.provider, cached=head.cached
        )
    else:
        message = last_message(batch.done.answer)
    # Only the fields a batch has are set: most batches are a single text delta.
    text = batch.text
    if text:
        message.delta = text
    reasoning = batch.reasoning
    if reasoning:
        message.reasoning_delta = reasoning
    calls = batch.tool_call_deltas
    if calls:
        message.tool_call_deltas.extend(tool_call_delta_message(d) for d in calls)
    return message
