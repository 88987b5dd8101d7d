"""The API from another language: a Node.js client generated from proto/, against a real gateway.

Follows the README's "Calling it from other languages" recipe, offline: `buf generate` with the
template in examples/node (the proto module is proto/, which carries the two google/api files it
imports, so nothing is fetched), into a temporary copy of the example; then examples/node's
client.mjs (Connect for Node, gRPC transport) calls Complete and StreamComplete on a gateway
started with `python -m gateway`, and its answers are compared with the Python client's.

`make test` installs what this needs (`npm install`: buf, protoc-gen-es, the Connect runtime);
without node_modules the tests skip, under CI they fail.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.processes import GatewayProcess, spawn

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "node"
NODE_MODULES = REPO / "node_modules"
VENDORED = REPO / "proto" / "google" / "api"
TOKEN = "node-client-token"
PROMPT = "Say hello from Node"

# Generating the client and starting node take a few seconds each, more on a busy machine.
pytestmark = pytest.mark.timeout(120)


def _tools() -> tuple[str, Path]:
    """node, and the buf that `npm install` put in node_modules."""
    node = shutil.which("node")
    buf = NODE_MODULES / ".bin" / "buf"
    plugin = NODE_MODULES / ".bin" / "protoc-gen-es"
    if node is None or not buf.exists() or not plugin.exists():
        message = "node and node_modules (buf, protoc-gen-es) are needed: run `npm install`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node, buf


async def _run(*command: str | Path, cwd: Path, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *map(str, command),
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/node copied (without generated code) and its client generated from proto/."""
    _, buf = _tools()
    root = tmp_path_factory.mktemp("node-client")
    example = root / EXAMPLE.relative_to(REPO)
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("gen", "node_modules"))
    (root / "node_modules").symlink_to(NODE_MODULES)
    done = subprocess.run(  # noqa: S603  # buf from node_modules, this checkout's paths
        [buf, "generate", "--template", example / "buf.gen.yaml", "-o", root],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (example / "gen" / "gateway" / "v1" / "gateway_pb.js").is_file()
    return example


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayProcess]:
    """A real gateway (mock provider) that wants a bearer token."""
    started = await spawn(INTERNAL_AUTH_TOKEN=TOKEN)
    yield started
    assert await started.stop() == 0


async def _python_answer(gateway: GatewayProcess) -> pb.CompleteResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        reply: pb.CompleteResponse = await pb_grpc.GatewayServiceStub(channel).Complete(
            pb.CompleteRequest(model="mock", messages=[pb.Message(role="user", content=PROMPT)]),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
        )
    return reply


async def _node(example: Path, gateway: GatewayProcess, token: str) -> tuple[int, list[Any], str]:
    node, _ = _tools()
    code, out, err = await _run(
        node,
        example / "client.mjs",
        f"127.0.0.1:{gateway.grpc_port}",
        "mock",
        PROMPT,
        cwd=example,
        AIGW_TOKEN=token,
    )
    return code, [json.loads(line) for line in out.splitlines()], err


async def test_node_client_completes_and_streams_like_the_python_client(
    generated: Path, gateway: GatewayProcess
) -> None:
    expected = await _python_answer(gateway)
    code, (complete, stream), err = await _node(generated, gateway, TOKEN)
    assert code == 0, err
    assert complete["rpc"] == "Complete"
    assert complete["provider"] == "mock"
    assert complete["content"] == expected.content
    assert complete["finishReason"] == "stop"
    assert complete["usage"]["totalTokens"] == expected.usage.total_tokens > 0
    assert stream["rpc"] == "StreamComplete"
    assert stream["content"] == expected.content  # the deltas, joined
    assert stream["messages"] > 1
    assert stream["finishReason"] == "stop"
    assert stream["usage"]["totalTokens"] == expected.usage.total_tokens


async def test_node_client_reports_the_grpc_status_of_a_refused_call(
    generated: Path, gateway: GatewayProcess
) -> None:
    code, lines, _ = await _node(generated, gateway, "wrong-token")
    assert code == 1
    assert [(line["rpc"], line["error"]) for line in lines] == [("Complete", "unauthenticated")]
    assert "wrong-token" not in lines[0]["message"]


@pytest.mark.parametrize("name", ["annotations.proto", "http.proto"])
def test_vendored_google_api_files_match_the_ones_python_is_generated_with(name: str) -> None:
    """proto/google/api/* is what other languages compile against; scripts/protoc.sh builds the
    Python code against googleapis-common-protos: the two must not drift apart."""
    spec = importlib.util.find_spec("google.api")  # googleapis-common-protos
    assert spec is not None
    assert spec.submodule_search_locations
    installed = Path(spec.submodule_search_locations[0]) / name
    vendored = VENDORED / name
    assert vendored.read_bytes() == installed.read_bytes(), (
        f"copy {installed} to {vendored} (googleapis-common-protos was upgraded)"
    )
