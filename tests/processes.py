"""Real gateway processes (`python -m gateway`) for tests that need the whole program."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

import orjson

START_TIMEOUT = 30.0


@dataclass
class GatewayProcess:
    """`python -m gateway` on free loopback ports, and every log line it printed."""

    process: asyncio.subprocess.Process
    environment: dict[str, str] = field(default_factory=dict)
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0
    logs: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listening = asyncio.Event()

        async def read_logs() -> None:
            assert self.process.stdout is not None
            async for line in self.process.stdout:
                entry = orjson.loads(line)  # every line must be one JSON object
                self.logs.append(entry)
                if entry.get("msg") == "gateway listening":
                    self.grpc_port, self.http_port = entry["grpc_port"], entry["http_port"]
                    self.metrics_port = entry["metrics_port"]
                    listening.set()

        self._reader = asyncio.create_task(read_logs())
        await asyncio.wait_for(listening.wait(), START_TIMEOUT)

    async def stop(self) -> int:
        """SIGTERM, then the exit status once it has drained."""
        if self.process.returncode is None:
            self.process.terminate()
        return await self.wait_exit()

    async def wait_exit(self) -> int:
        code = await asyncio.wait_for(self.process.wait(), START_TIMEOUT)
        if self._reader is not None:
            await self._reader
        return code


async def spawn(**env: str) -> GatewayProcess:
    """Start a gateway on free loopback ports with `env` (and PATH); wait until it listens."""
    place = tempfile.mkdtemp(prefix="aigw-proc-")
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "WORKERS": "1",  # one process unless a test asks for more
        "DATABASE_URL": f"sqlite:///{place}/usage.db",
        "USAGE_SPILL_PATH": f"{place}/usage.spill.jsonl",
        "BIND_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
        "HTTP_PORT": "0",
        "METRICS_PORT": "0",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=environ, stdout=asyncio.subprocess.PIPE
    )
    started = GatewayProcess(process, environ)
    try:
        await started.start()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return started
