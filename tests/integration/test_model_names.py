"""Model names that would change the URL of a vendor that puts the model in its path.

Azure names the deployment (`/openai/deployments/{model}/...`) and Gemini the model
(`/{version}/models/{model}:generateContent`) in the URL path. A model `..` or `.` (on its own,
after "<provider>/", or pinned), a name with a "/" for those vendors, control characters, "?"
and "#" are refused as INVALID_ARGUMENT on both transports, and nothing reaches the vendor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
from aiohttp import web

from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway


class Recorder:
    """A loopback server that records the raw path of every request it gets (and answers 404)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> web.Response:
        self.paths.append(request.raw_path)
        return web.json_response({"error": {"code": 404, "message": "nothing here"}}, status=404)


@pytest.fixture
async def vendor() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    await recorder.start()
    yield recorder
    await recorder.close()


@pytest.fixture
async def gw(start_gateway: StartGateway, vendor: Recorder) -> RunningGateway:
    base_url = f"http://127.0.0.1:{vendor.port}"
    providers = tuple(
        ProviderSettings(name=kind, kind=kind, base_url=base_url, api_keys=("k",), models=("m",))
        for kind in ("azure_openai", "gemini")
    )
    return await start_gateway(providers=providers, circuit_breaker_fail_max=1)


BAD_REQUESTS: list[dict[str, Any]] = [
    {"model": ".."},
    {"model": "."},
    {"model": "azure_openai/.."},
    {"model": "azure_openai/."},
    {"model": "gemini/models/.."},
    {"model": "..", "provider": "azure_openai"},
    {"model": "m", "fallback_models": ["azure_openai/.."]},
    {"model": "azure_openai/a/b"},  # a "/" where the vendor puts the model in its path
    {"model": "gemini/x/y"},
    {"model": "gemini/models/x/../y"},
    {"model": "azure_openai/m?api-version=1"},
    {"model": "azure_openai/m#x"},
    {"model": "azure_openai/m\r\nx-evil: 1"},
    {"model": "..", "provider": "gemini"},
]


@pytest.mark.parametrize("fields", BAD_REQUESTS, ids=lambda f: repr(f)[:60])
async def test_a_model_that_would_change_the_vendors_url_is_invalid_argument_on_both_transports(
    gw: RunningGateway, vendor: Recorder, fields: dict[str, Any]
) -> None:
    message = pb.Message(role="user", content="hi")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(pb.CompleteRequest(messages=[message], **fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}], **fields})
    for path in ("/v1/complete", "/v1/complete:stream"):
        async with gw.http.post(gw.http_url + path, data=body) as reply:
            error = (await reply.json())["error"]
            assert (reply.status, error["code"]) == (400, "INVALID_ARGUMENT"), error
            assert error["message"].startswith(("model: ", "fallback_models[0]: "))
    assert vendor.paths == []  # nothing was sent
    status = await gw.stub.ProviderStatus(pb.ProviderStatusRequest())
    failures = {p.name: p.consecutive_failures for p in status.providers if p.configured}
    assert failures == {"azure_openai": 0, "gemini": 0}


async def test_a_plain_model_name_still_reaches_the_vendors_path(
    gw: RunningGateway, vendor: Recorder
) -> None:
    body = orjson.dumps(
        {"model": "azure_openai/my-deploy.v2", "messages": [{"role": "user", "content": "hi"}]}
    )
    async with gw.http.post(gw.http_url + "/v1/complete", data=body) as reply:
        assert reply.status == 404  # the recorder has no such deployment
    assert vendor.paths == [
        "/openai/deployments/my-deploy.v2/chat/completions?api-version=2024-10-21"
    ]
