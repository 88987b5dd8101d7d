"""The official `openai` Node package against a real gateway (`python -m gateway`).

examples/node/openai-chat.mjs makes a completion, a stream with usage and a model listing with
the pinned `openai` package from the repository's package.json; its answers are compared with
the Python SDK's. `make test` installs node_modules; without it the tests skip, under CI they
fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.processes import GatewayProcess, spawn

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "node" / "openai-chat.mjs"
TOKEN = "openai-node-token"
PROMPT = "Say hello from Node"

pytestmark = pytest.mark.timeout(120)


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "openai").is_dir():
        message = "node and node_modules (openai) are needed: run `npm install`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayProcess]:
    started = await spawn(INTERNAL_AUTH_TOKEN=TOKEN)
    yield started
    assert await started.stop() == 0


async def run_node(gateway: GatewayProcess, token: str) -> tuple[int, list[dict[str, Any]]]:
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(SCRIPT),
        f"http://127.0.0.1:{gateway.http_port}/v1",
        "mock",
        PROMPT,
        cwd=SCRIPT.parent,
        env={**os.environ, "AIGW_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    assert not err or process.returncode == 0, err.decode()
    return process.returncode, [json.loads(line) for line in out.decode().splitlines()]


async def test_the_node_sdk_completes_streams_and_lists_like_the_python_sdk(
    gateway: GatewayProcess,
) -> None:
    async with AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gateway.http_port}/v1",
        api_key=TOKEN,
        _strict_response_validation=True,
    ) as python:
        expected = await python.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": PROMPT}]
        )
    code, (created, streamed, listed) = await run_node(gateway, TOKEN)
    assert code == 0
    assert created["content"] == expected.choices[0].message.content
    assert created["finishReason"] == "stop"
    assert created["provider"] == "mock"
    assert created["requestId"]
    assert expected.usage is not None
    assert created["usage"]["total_tokens"] == expected.usage.total_tokens
    assert streamed["content"] == expected.choices[0].message.content
    assert streamed["chunks"] > 2
    assert streamed["usage"]["total_tokens"] == expected.usage.total_tokens
    assert set(listed["models"]) == {"mock", "mock/mock"}


async def test_the_node_sdk_sees_a_wrong_key_as_a_401(gateway: GatewayProcess) -> None:
    code, lines = await run_node(gateway, "wrong-token")
    assert code == 1
    assert lines == [{"error": 401, "code": "invalid_api_key"}]
