"""Coalesced stream batches (`gateway.pipeline.coalesce`) as `StreamCompleteResponse` messages.

A batch of one item is the very message that item always made; a merged batch is one message
with the joined text, reasoning and tool-call fragments, and, when the stream ended in it, the
last message's finish reason, usage, cost and tries besides.
"""

from __future__ import annotations

from gateway.pipeline.coalesce import Batch
from gateway.transports.proto_convert import last_message
from gateway.v1 import gateway_pb2 as pb

#: Metadata key (gRPC) and header (HTTP) a caller sends, with the value "off", to get one
#: message per upstream chunk.
COALESCING_HEADER = "x-stream-coalescing"


def merging(value: str | None) -> bool:
    """Whether a stream is coalesced, given the caller's `COALESCING_HEADER` value."""
    return value is None or value.strip().lower() != "off"


def batch_message(batch: Batch) -> pb.StreamCompleteResponse:
    """The one message a batch is sent as."""
    calls = [
        pb.ToolCallDelta(index=d.index, id=d.id, name=d.name, arguments=d.arguments)
        for d in batch.tool_call_deltas
    ]
    if batch.done is None:
        head = batch.head
        return pb.StreamCompleteResponse(
            id=head.id,
            model=head.model,
            provider=head.provider,
            delta=batch.text,
            cached=head.cached,
            tool_call_deltas=calls,
            reasoning_delta=batch.reasoning,
        )
    message = last_message(batch.done.answer)
    message.delta = batch.text
    message.reasoning_delta = batch.reasoning
    message.tool_call_deltas.extend(calls)
    return message
