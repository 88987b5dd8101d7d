"""The line-up under test: the fake (called directly), the gateway and the peers, started.

Anything that cannot be installed or started becomes a target with an `error` (its rows say
why) and the benchmark goes on with the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from bench import peers
from bench.services import Service, start_gateway, start_upstream
from bench.targets import (
    GATEWAY_MODES,
    OPENAI_MODES,
    Bodies,
    Target,
    gateway_endpoints,
    openai_endpoints,
)


@dataclass
class Setup:
    """The running services and the targets they make."""

    place: Path
    bodies: Bodies
    upstream_port: int = 0
    services: list[Service] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    async def stop(self) -> None:
        """Stop every service, newest first."""
        for service in reversed(self.services):
            await service.stop()
        self.services.clear()


async def start_targets(
    setup: Setup, workers: int | None, litellm_workers: list[int] | None
) -> None:
    """The fake (direct), the gateway (`WORKERS`=`workers`) and the peers (unless None)."""
    fake, port = await start_upstream(setup.place)
    setup.services.append(fake)
    setup.upstream_port = port
    direct = openai_endpoints(f"http://127.0.0.1:{port}/v1", setup.bodies, {})
    setup.targets.append(Target("direct", OPENAI_MODES, fake.pid, direct, upstream_port=port))
    gateway = Target("gateway", GATEWAY_MODES, upstream_port=port)
    try:
        service, ports = await start_gateway(setup.place, port, workers)
    except Exception as exc:  # the table says so; the direct rows still run
        gateway.error = reason(exc)
    else:
        setup.services.append(service)
        gateway.pid = service.pid
        gateway.endpoints = gateway_endpoints(ports.http, ports.grpc, setup.bodies)
        gateway.grpc_port = ports.grpc
    setup.targets.append(gateway)
    if litellm_workers is not None:
        await start_peers(setup, litellm_workers)


async def start_peers(setup: Setup, litellm_workers: list[int]) -> None:
    """Install (first use) and start LiteLLM (one instance per worker count) and Portkey."""
    port = setup.upstream_port
    litellm = [Target(f"litellm-{n}w", OPENAI_MODES, upstream_port=port) for n in litellm_workers]
    portkey = Target("portkey", OPENAI_MODES, upstream_port=port)
    litellm_version, portkey_version = await asyncio.gather(
        asyncio.to_thread(peers.install_litellm),
        asyncio.to_thread(peers.install_portkey),
        return_exceptions=True,
    )
    setup.versions["litellm"] = _installed(litellm, litellm_version)
    setup.versions["portkey"] = _installed([portkey], portkey_version)
    setup.versions["node"] = peers.node_version()

    async def litellm_up(target: Target, workers: int) -> None:
        service, lport, key = await peers.start_litellm(setup.place, port, workers)
        setup.services.append(service)
        target.pid = service.pid
        target.endpoints = openai_endpoints(
            f"http://127.0.0.1:{lport}/v1", setup.bodies, {"authorization": f"Bearer {key}"}
        )

    async def portkey_up(target: Target) -> None:
        service, pport = await peers.start_portkey(setup.place, port)
        setup.services.append(service)
        target.pid = service.pid
        headers = peers.portkey_headers(port)
        target.endpoints = openai_endpoints(f"http://127.0.0.1:{pport}/v1", setup.bodies, headers)

    starts = [
        (t, litellm_up(t, n)) for t, n in zip(litellm, litellm_workers, strict=True) if not t.error
    ]
    if not portkey.error:
        starts.append((portkey, portkey_up(portkey)))
    outcomes = await asyncio.gather(*(start for _, start in starts), return_exceptions=True)
    for (target, _), outcome in zip(starts, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            target.error = f"did not start: {reason(outcome)}"
            target.endpoints = {}
    setup.targets += [*litellm, portkey]


def _installed(targets: list[Target], outcome: str | BaseException) -> str:
    """Mark `targets` with the installed version, or with why the install failed."""
    if isinstance(outcome, BaseException):
        for target in targets:
            target.error = f"install failed: {reason(outcome)}"
        return "not installed"
    for target in targets:
        target.version = outcome
    return outcome


def reason(exc: object) -> str:
    """The first line of an error, short enough for a table note."""
    text = str(exc).strip().splitlines()
    return (text[0].rstrip(":") if text else type(exc).__name__)[:160]
