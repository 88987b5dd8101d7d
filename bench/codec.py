"""`python -m bench.codec`: the JSON shim's hand-written codec against `json_format`, in process.

The decision this figure backs (issue 15): `gateway.transports.json_codec` converts the
completion calls' messages itself instead of through protobuf's `json_format`. It is kept only
while it pays: this prints microseconds per request parsed and per answer (and stream chunk)
rendered both ways, on the bench's own request body, a typical unary answer and a text chunk.
CPU-bound and single-threaded: compare the two columns of one run, not figures across runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from bench.targets import MODEL, messages
from gateway.transports.json_codec import (
    parse_completion_request,
    parse_message,
    render_completion,
    render_message,
)
from gateway.v1 import gateway_pb2 as pb

ROUNDS = 5
CALLS = 4000


def _best_us(work: Callable[[], object]) -> float:
    """The best of `ROUNDS` rounds of `CALLS` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            work()
        best = min(best, (time.perf_counter() - start) / CALLS * 1e6)
    return best


def main() -> None:
    body = orjson.loads(orjson.dumps({"model": MODEL, "messages": messages()}))
    answer = pb.CompleteResponse(
        id="chatcmpl-1",
        model=MODEL,
        provider="openai",
        content="The quick brown fox jumps over the lazy dog. " * 4,
        finish_reason="stop",
        usage=pb.Usage(prompt_tokens=24, completion_tokens=40, total_tokens=64),
        cost_usd=0.0000276,
        attempts=[pb.Attempt(provider="openai", outcome=pb.ATTEMPT_OUTCOME_SUCCESS)],
    )
    chunk = pb.StreamCompleteResponse(id="chatcmpl-1", delta="brown ")
    assert parse_completion_request(body, pb.CompleteRequest) == parse_message(
        body, pb.CompleteRequest()
    )
    for message in (answer, chunk):
        assert render_completion(message, defaults=False) == render_message(message, defaults=False)
    rows = [
        (
            "parse request",
            _best_us(lambda: parse_completion_request(body, pb.CompleteRequest)),
            _best_us(lambda: parse_message(body, pb.CompleteRequest())),
        ),
        (
            "render answer",
            _best_us(lambda: render_completion(answer, defaults=False)),
            _best_us(lambda: render_message(answer, defaults=False)),
        ),
        (
            "render chunk",
            _best_us(lambda: render_completion(chunk, defaults=False)),
            _best_us(lambda: render_message(chunk, defaults=False)),
        ),
    ]
    print(f"{'':16}{'json_codec µs':>15}{'json_format µs':>16}{'ratio':>8}")
    for name, ours, theirs in rows:
        print(f"{name:16}{ours:15.1f}{theirs:16.1f}{theirs / ours:8.1f}x")


if __name__ == "__main__":
    main()
