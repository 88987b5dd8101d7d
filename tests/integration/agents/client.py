"""One client for both transports: a request body in, the gateway's answer as the JSON shim's dict.

Tests write a request once as the JSON shim's body; `GrpcClient` sends it as the proto message
(`json_format.ParseDict`) and reads the answer back as proto3 JSON with the field names kept,
which is what `JsonClient` gets from `/v1/complete`. A stream comes back as its messages, and
`Reply.of_stream` folds them the way a client would: text, reasoning, calls by index.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import grpc
import orjson
from google.protobuf import json_format

from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.sse import read_sse

Json = dict[str, Any]


class RefusedError(Exception):
    """The gateway answered an error: its gRPC code name and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def of_body(cls, error: Json) -> RefusedError:
        """The refusal a JSON shim's error body's `error` object carries."""
        return cls(error["code"], error["message"])


@dataclass
class Reply:
    """A whole answer, unary or folded from a stream, in the JSON shim's field names."""

    content: str
    finish_reason: str
    tool_calls: list[Json]
    reasoning: str
    reasoning_parts: list[Json]
    usage: Json
    #: The stream's messages as they came (empty for a unary answer).
    chunks: list[Json] = field(default_factory=list)

    @classmethod
    def of_unary(cls, body: Json) -> Reply:
        """The answer a `CompleteResponse` body carries."""
        return cls(
            content=body.get("content", ""),
            finish_reason=body.get("finish_reason", ""),
            tool_calls=body.get("tool_calls", []),
            reasoning=body.get("reasoning", ""),
            reasoning_parts=body.get("reasoning_parts", []),
            usage=body.get("usage", {}),
        )

    @classmethod
    def of_stream(cls, chunks: list[Json]) -> Reply:
        """The answer `StreamCompleteResponse` messages make up, calls joined by index."""
        calls: dict[int, Json] = {}
        for delta in (d for c in chunks for d in c.get("tool_call_deltas", [])):
            index = delta.get("index", 0)
            if index not in calls:
                calls[index] = {"id": delta.get("id", ""), "name": delta.get("name", "")}
                calls[index]["arguments"] = ""
            calls[index]["arguments"] += delta.get("arguments", "")
        last = chunks[-1] if chunks else {}
        return cls(
            content="".join(c.get("delta", "") for c in chunks),
            finish_reason=last.get("finish_reason", ""),
            tool_calls=[calls[i] for i in sorted(calls)],
            reasoning="".join(c.get("reasoning_delta", "") for c in chunks),
            reasoning_parts=[p for c in chunks for p in c.get("reasoning_parts", [])],
            usage=last.get("usage", {}),
            chunks=chunks,
        )

    def turn(self) -> Json:
        """This answer as the assistant message that goes back in the next request."""
        message: Json = {"role": "assistant", "tool_calls": self.tool_calls}
        if self.content:
            message["content"] = self.content
        if self.reasoning_parts:
            message["reasoning"] = self.reasoning_parts
        return message


class Client(Protocol):
    """The gateway over one transport."""

    name: str

    async def complete(self, body: Json) -> Reply:
        """The unary answer to `body`; `RefusedError` on an error."""
        ...

    async def stream(self, body: Json) -> Reply:
        """The streamed answer to `body`, folded; `RefusedError` on an error."""
        ...


class GrpcClient:
    """`Complete` and `StreamComplete` over gRPC."""

    name = "grpc"

    def __init__(self, stub: pb_grpc.GatewayServiceStub) -> None:
        self._stub = stub

    async def complete(self, body: Json) -> Reply:
        request = json_format.ParseDict(body, pb.CompleteRequest())
        with _refusals():
            response = await self._stub.Complete(request)
        return Reply.of_unary(_as_json(response))

    async def stream(self, body: Json) -> Reply:
        request = json_format.ParseDict(body, pb.StreamCompleteRequest())
        with _refusals():
            chunks = [_as_json(m) async for m in self._stub.StreamComplete(request)]
        return Reply.of_stream(chunks)


class JsonClient:
    """`POST /v1/complete` and `/v1/complete:stream` (SSE) on the JSON shim."""

    name = "json"

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self._http = http
        self._url = base_url + "/v1/complete"

    async def complete(self, body: Json) -> Reply:
        async with self._http.post(self._url, data=orjson.dumps(body)) as response:
            answer = orjson.loads(await response.read())
        if response.status != 200:
            raise RefusedError.of_body(answer["error"])
        return Reply.of_unary(answer)

    async def stream(self, body: Json) -> Reply:
        async with self._http.post(self._url + ":stream", data=orjson.dumps(body)) as response:
            if response.status != 200:
                raise RefusedError.of_body(orjson.loads(await response.read())["error"])
            events = await read_sse(response)
        assert events[-1] == ("message", "[DONE]"), events[-1]
        chunks = []
        for kind, data in events[:-1]:
            if kind == "error":
                raise RefusedError.of_body(orjson.loads(data)["error"])
            chunks.append(orjson.loads(data))
        return Reply.of_stream(chunks)


@contextmanager
def _refusals() -> Iterator[None]:
    """A gRPC error status raised as the `RefusedError` both clients raise."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise RefusedError(exc.code().name, exc.details() or "") from None


def _as_json(message: pb.CompleteResponse | pb.StreamCompleteResponse) -> Json:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)
