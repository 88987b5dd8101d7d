"""What is measured: targets (direct, ceiling references, gateway, peers) and their modes.

A target is a process tree to watch plus, per mode, the URL, body file and headers h2load sends.
The gateway and the ceiling references (`bench.ceiling`) are called with the gateway's API
(JSON `/v1/complete`, `/v1/complete:stream`, gRPC `gateway.v1.GatewayService`); the fake
("direct") and the peers with OpenAI Chat Completions. The paced modes ask the fake (through a
marker in the prompt, which every target passes on) to pace its stream's chunks.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.services import GATEWAY_TOKEN, Service
from gateway.v1 import gateway_pb2 as pb

MODEL = "gpt-4o-mini"
PROMPT = "Say hello"
GRPC_SERVICE = "gateway.v1.GatewayService"
#: The ceiling references' target names, and the one a gateway row is read against, by mode.
RELAY_HTTP = "relay-http"
#: The gateway called at its OpenAI-compatible route (`/v1/chat/completions`), the peers' API.
GATEWAY_CHAT = "gateway-chat"
RELAY_GRPC = "relay-grpc"
GRPC_FIXED = "grpc-fixed"


class Mode(enum.StrEnum):
    """How a target is called."""

    JSON = "json"
    GRPC = "grpc"
    SSE = "sse"
    GRPC_STREAM = "grpc-stream"
    SSE_PACED = "sse-paced"
    GRPC_STREAM_PACED = "grpc-stream-paced"

    @property
    def streams(self) -> bool:
        """Whether the answer is a stream (SSE or a gRPC server stream)."""
        return self not in (Mode.JSON, Mode.GRPC)

    @property
    def grpc(self) -> bool:
        """Whether the call is gRPC."""
        return self in (Mode.GRPC, Mode.GRPC_STREAM, Mode.GRPC_STREAM_PACED)

    @property
    def paced(self) -> bool:
        """Whether the fake paces the stream's chunks."""
        return self in (Mode.SSE_PACED, Mode.GRPC_STREAM_PACED)

    @property
    def direct_peer(self) -> Mode:
        """The mode of the direct row this mode's added latency is counted against."""
        if self.paced:
            return Mode.SSE_PACED
        return Mode.SSE if self.streams else Mode.JSON

    @property
    def relay(self) -> str:
        """The ceiling reference a row in this mode is read against."""
        return RELAY_GRPC if self.grpc else RELAY_HTTP


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One way of calling a target: h2load's URL, body file and headers."""

    url: str
    body: Path
    headers: tuple[tuple[str, str], ...]
    http1: bool


@dataclass
class Target:
    """A thing under load: its process tree and its endpoints (none when it could not run)."""

    name: str
    #: The modes it is measured in, in table order.
    modes: tuple[Mode, ...] = ()
    #: The running process (paused while other targets are measured); None for "direct".
    service: Service | None = None
    pid: int = 0
    endpoints: dict[Mode, Endpoint] = field(default_factory=dict)
    version: str = ""
    #: Why the target has no endpoints (could not be installed or started).
    error: str = ""
    grpc_port: int = 0
    http_port: int = 0
    #: The fake upstream this target calls (its counters check that calls got through); 0 for
    #: a target that calls none.
    upstream_port: int = 0


@dataclass(frozen=True, slots=True)
class Bodies:
    """The request body files, written once per run."""

    openai_unary: Path
    openai_stream: Path
    openai_stream_paced: Path
    gateway_json: Path
    gateway_json_paced: Path
    grpc_unary: Path
    grpc_stream: Path
    grpc_stream_paced: Path


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: no compression flag, 4-byte big-endian length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def messages(pace_ms: float = 0.0) -> list[dict[str, str]]:
    """The conversation sent; with `pace_ms`, it asks the fake to pace its stream's chunks."""
    text = f"{PROMPT} [pace {pace_ms:g} ms]" if pace_ms > 0 else PROMPT
    return [{"role": "user", "content": text}]


def complete_request() -> pb.CompleteRequest:
    """The unary gRPC request."""
    return pb.CompleteRequest(
        model=MODEL, messages=[pb.Message(role=m["role"], content=m["content"]) for m in messages()]
    )


def stream_request(pace_ms: float = 0.0) -> pb.StreamCompleteRequest:
    """The streaming gRPC request."""
    return pb.StreamCompleteRequest(
        model=MODEL,
        messages=[pb.Message(role=m["role"], content=m["content"]) for m in messages(pace_ms)],
    )


def write_bodies(place: Path, pace_ms: float) -> Bodies:
    """Write every request body h2load sends into `place` (paced ones at `pace_ms`)."""
    openai = {"model": MODEL, "messages": messages()}
    paced = {"model": MODEL, "messages": messages(pace_ms)}
    bodies = Bodies(
        openai_unary=place / "openai-unary.json",
        openai_stream=place / "openai-stream.json",
        openai_stream_paced=place / "openai-stream-paced.json",
        gateway_json=place / "gateway.json",
        gateway_json_paced=place / "gateway-paced.json",
        grpc_unary=place / "grpc-unary.bin",
        grpc_stream=place / "grpc-stream.bin",
        grpc_stream_paced=place / "grpc-stream-paced.bin",
    )
    bodies.openai_unary.write_text(json.dumps(openai))
    bodies.openai_stream.write_text(json.dumps({**openai, "stream": True}))
    bodies.openai_stream_paced.write_text(json.dumps({**paced, "stream": True}))
    bodies.gateway_json.write_text(json.dumps(openai))
    bodies.gateway_json_paced.write_text(json.dumps(paced))
    bodies.grpc_unary.write_bytes(grpc_frame(complete_request().SerializeToString()))
    bodies.grpc_stream.write_bytes(grpc_frame(stream_request().SerializeToString()))
    bodies.grpc_stream_paced.write_bytes(grpc_frame(stream_request(pace_ms).SerializeToString()))
    return bodies


#: Direct calls to the fake: unary, streamed, and streamed at a pace (the paced rows' floor).
DIRECT_MODES = (Mode.JSON, Mode.SSE, Mode.SSE_PACED)
#: The gateway's OpenAI-compatible route: the same modes as its JSON API.
GATEWAY_CHAT_MODES = (Mode.JSON, Mode.SSE, Mode.SSE_PACED)
PEER_MODES = (Mode.JSON, Mode.SSE)
GATEWAY_MODES = (
    Mode.JSON,
    Mode.GRPC,
    Mode.SSE,
    Mode.GRPC_STREAM,
    Mode.SSE_PACED,
    Mode.GRPC_STREAM_PACED,
)
RELAY_HTTP_MODES = (Mode.JSON, Mode.SSE, Mode.SSE_PACED)
RELAY_GRPC_MODES = (Mode.GRPC, Mode.GRPC_STREAM, Mode.GRPC_STREAM_PACED)
#: The fixed answers call no upstream, so pacing means nothing to them.
GRPC_FIXED_MODES = (Mode.GRPC, Mode.GRPC_STREAM)
_JSON = ("content-type", "application/json")


def openai_endpoints(base: str, bodies: Bodies, headers: dict[str, str]) -> dict[Mode, Endpoint]:
    """Chat Completions at `base` (e.g. "http://127.0.0.1:P/v1"), unary and streamed."""
    extra = tuple((name, value) for name, value in headers.items() if name != "content-type")
    url = f"{base}/chat/completions"
    return {
        Mode.JSON: Endpoint(url, bodies.openai_unary, (_JSON, *extra), http1=True),
        Mode.SSE: Endpoint(url, bodies.openai_stream, (_JSON, *extra), http1=True),
        Mode.SSE_PACED: Endpoint(url, bodies.openai_stream_paced, (_JSON, *extra), http1=True),
    }


def gateway_endpoints(
    bodies: Bodies, *, http_port: int = 0, grpc_port: int = 0
) -> dict[Mode, Endpoint]:
    """The gateway's API (JSON on `http_port`, gRPC on `grpc_port`; either may be absent),
    with the bench bearer token: the gateway's and the ceiling references' endpoints."""
    auth = ("authorization", f"Bearer {GATEWAY_TOKEN}")
    endpoints: dict[Mode, Endpoint] = {}
    headers: tuple[tuple[str, str], ...]
    if http_port:
        http = f"http://127.0.0.1:{http_port}/v1"
        headers = (_JSON, auth)
        endpoints[Mode.JSON] = Endpoint(f"{http}/complete", bodies.gateway_json, headers, True)
        stream = f"{http}/complete:stream"
        endpoints[Mode.SSE] = Endpoint(stream, bodies.gateway_json, headers, True)
        endpoints[Mode.SSE_PACED] = Endpoint(stream, bodies.gateway_json_paced, headers, True)
    if grpc_port:
        grpc = f"http://127.0.0.1:{grpc_port}/{GRPC_SERVICE}"
        headers = (("content-type", "application/grpc"), ("te", "trailers"), auth)
        endpoints[Mode.GRPC] = Endpoint(f"{grpc}/Complete", bodies.grpc_unary, headers, False)
        stream = f"{grpc}/StreamComplete"
        endpoints[Mode.GRPC_STREAM] = Endpoint(stream, bodies.grpc_stream, headers, False)
        endpoints[Mode.GRPC_STREAM_PACED] = Endpoint(
            stream, bodies.grpc_stream_paced, headers, False
        )
    return endpoints
