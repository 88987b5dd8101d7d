"""What is measured: targets (direct, gateway, peers) and the modes each one is called in.

A target is a process tree to watch plus, per mode, the URL, body file and headers h2load sends.
The gateway is called with its own API (JSON `/v1/complete`, `/v1/complete:stream`, gRPC
`gateway.v1.GatewayService`); the fake ("direct") and the peers with OpenAI Chat Completions.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.services import GATEWAY_TOKEN
from gateway.v1 import gateway_pb2 as pb

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello"}]
GRPC_SERVICE = "gateway.v1.GatewayService"


class Mode(enum.StrEnum):
    """How a target is called."""

    JSON = "json"
    GRPC = "grpc"
    SSE = "sse"
    GRPC_STREAM = "grpc-stream"

    @property
    def streams(self) -> bool:
        """Whether the answer is a stream (SSE or a gRPC server stream)."""
        return self in (Mode.SSE, Mode.GRPC_STREAM)

    @property
    def grpc(self) -> bool:
        """Whether the call is gRPC."""
        return self in (Mode.GRPC, Mode.GRPC_STREAM)

    @property
    def direct_peer(self) -> Mode:
        """The mode of the direct row this mode's added latency is counted against."""
        return Mode.SSE if self.streams else Mode.JSON


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
    pid: int = 0
    endpoints: dict[Mode, Endpoint] = field(default_factory=dict)
    version: str = ""
    #: Why the target has no endpoints (could not be installed or started).
    error: str = ""
    grpc_port: int = 0
    #: The fake upstream this target calls (its counters check that calls got through).
    upstream_port: int = 0


@dataclass(frozen=True, slots=True)
class Bodies:
    """The request body files, written once per run."""

    openai_unary: Path
    openai_stream: Path
    gateway_json: Path
    grpc_unary: Path
    grpc_stream: Path


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: no compression flag, 4-byte big-endian length, bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def complete_request() -> pb.CompleteRequest:
    """The unary gRPC request."""
    return pb.CompleteRequest(model=MODEL, messages=[pb.Message(**m) for m in MESSAGES])


def stream_request() -> pb.StreamCompleteRequest:
    """The streaming gRPC request."""
    return pb.StreamCompleteRequest(model=MODEL, messages=[pb.Message(**m) for m in MESSAGES])


def write_bodies(place: Path) -> Bodies:
    """Write every request body h2load sends into `place`."""
    openai = {"model": MODEL, "messages": MESSAGES}
    bodies = Bodies(
        openai_unary=place / "openai-unary.json",
        openai_stream=place / "openai-stream.json",
        gateway_json=place / "gateway.json",
        grpc_unary=place / "grpc-unary.bin",
        grpc_stream=place / "grpc-stream.bin",
    )
    bodies.openai_unary.write_text(json.dumps(openai))
    bodies.openai_stream.write_text(json.dumps({**openai, "stream": True}))
    bodies.gateway_json.write_text(json.dumps(openai))
    bodies.grpc_unary.write_bytes(grpc_frame(complete_request().SerializeToString()))
    bodies.grpc_stream.write_bytes(grpc_frame(stream_request().SerializeToString()))
    return bodies


OPENAI_MODES = (Mode.JSON, Mode.SSE)
GATEWAY_MODES = (Mode.JSON, Mode.GRPC, Mode.SSE, Mode.GRPC_STREAM)
_JSON = ("content-type", "application/json")


def openai_endpoints(base: str, bodies: Bodies, headers: dict[str, str]) -> dict[Mode, Endpoint]:
    """Chat Completions at `base` (e.g. "http://127.0.0.1:P/v1"), unary and streamed."""
    extra = tuple((name, value) for name, value in headers.items() if name != "content-type")
    url = f"{base}/chat/completions"
    return {
        Mode.JSON: Endpoint(url, bodies.openai_unary, (_JSON, *extra), http1=True),
        Mode.SSE: Endpoint(url, bodies.openai_stream, (_JSON, *extra), http1=True),
    }


def gateway_endpoints(http_port: int, grpc_port: int, bodies: Bodies) -> dict[Mode, Endpoint]:
    """The gateway's JSON shim and gRPC service, with the bench bearer token."""
    auth = ("authorization", f"Bearer {GATEWAY_TOKEN}")
    grpc_headers = (("content-type", "application/grpc"), ("te", "trailers"), auth)
    http = f"http://127.0.0.1:{http_port}"
    grpc = f"http://127.0.0.1:{grpc_port}/{GRPC_SERVICE}"
    return {
        Mode.JSON: Endpoint(f"{http}/v1/complete", bodies.gateway_json, (_JSON, auth), True),
        Mode.GRPC: Endpoint(f"{grpc}/Complete", bodies.grpc_unary, grpc_headers, False),
        Mode.SSE: Endpoint(f"{http}/v1/complete:stream", bodies.gateway_json, (_JSON, auth), True),
        Mode.GRPC_STREAM: Endpoint(
            f"{grpc}/StreamComplete", bodies.grpc_stream, grpc_headers, False
        ),
    }
