"""The line-up under test: the fake (called directly), the ceiling references, the gateway and
the peers, started; and `focus`, which keeps every target but the measured one paused.

Anything that cannot be installed or started becomes a target with an `error` (its rows say
why) and the benchmark goes on with the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from bench import peers
from bench.services import (
    DEFAULT_CLIENT,
    GATEWAY_TOKEN,
    Service,
    start_ceiling,
    start_gateway,
    start_upstream,
)
from bench.targets import (
    DIRECT_MODES,
    GATEWAY_CHAT,
    GATEWAY_CHAT_MODES,
    GATEWAY_MODES,
    GRPC_FIXED,
    GRPC_FIXED_MODES,
    PEER_MODES,
    RELAY_GRPC,
    RELAY_GRPC_MODES,
    RELAY_HTTP,
    RELAY_HTTP_MODES,
    Bodies,
    Mode,
    Target,
    gateway_endpoints,
    openai_endpoints,
)


@dataclass(frozen=True, slots=True)
class Choice:
    """Which targets to start and in which modes to measure them."""

    #: The gateway's `WORKERS` (None: unset); the ceiling references run as many workers.
    workers: int | None
    #: The worker count the gateway uses when `workers` is None (the CPUs it may use).
    default_workers: int
    ceiling: bool = True
    #: LiteLLM instances by worker count; None: no peers.
    litellm_workers: list[int] | None = None
    #: Only targets with these names, only these modes (None: all).
    names: Collection[str] | None = None
    modes: Collection[Mode] | None = None
    paced: bool = True
    #: The gateway's upstream HTTP clients (`UPSTREAM_HTTP_CLIENT`), one gateway target each:
    #: "gateway" for the default client, "gateway-<client>" for another.
    upstream_clients: tuple[str, ...] = (DEFAULT_CLIENT,)

    def wanted(self, name: str) -> bool:
        """Whether the target called `name` is to be started."""
        return self.names is None or name in self.names

    def modes_of(self, modes: tuple[Mode, ...]) -> tuple[Mode, ...]:
        """The modes of `modes` to measure."""
        return tuple(
            m
            for m in modes
            if (self.modes is None or m in self.modes) and (self.paced or not m.paced)
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

    async def focus(self, target: Target) -> None:
        """Pause every target's processes but `target`'s, and resume those if paused.

        The fake upstream (the direct target) always runs: everything else calls it.
        """
        for other in self.targets:
            # Targets may share a process (the gateway and its OpenAI-compatible route).
            if other.service is not None and other.service is not target.service:
                other.service.pause()
        if target.service is not None:
            await target.service.resume()


async def start_targets(setup: Setup, choice: Choice) -> None:
    """The fake (direct), the ceiling references, the gateway and the peers, as `choice` says."""
    fake, port = await start_upstream(setup.place)
    setup.services.append(fake)
    setup.upstream_port = port
    if choice.wanted("direct"):
        direct = openai_endpoints(f"http://127.0.0.1:{port}/v1", setup.bodies, {})
        modes = choice.modes_of(DIRECT_MODES)
        setup.targets.append(Target("direct", modes, pid=fake.pid, endpoints=direct))
    if choice.ceiling:
        await start_references(setup, choice)
    for client in choice.upstream_clients:
        name = gateway_name(client)
        if not choice.wanted(name):
            continue
        gateway = Target(name, choice.modes_of(GATEWAY_MODES), upstream_port=port)
        gateway.version = f"UPSTREAM_HTTP_CLIENT={client}"

        async def start(gateway: Target = gateway, client: str = client) -> None:
            await _gateway(setup, gateway, choice.workers, client)

        await _start(setup, gateway, start)
        if client == DEFAULT_CLIENT and choice.wanted(GATEWAY_CHAT):
            setup.targets.append(chat_route(setup, gateway, choice.modes_of(GATEWAY_CHAT_MODES)))
    if choice.litellm_workers is not None:
        await start_peers(setup, choice)
    setup.targets = [t for t in setup.targets if t.modes]


async def start_references(setup: Setup, choice: Choice) -> None:
    """The ceiling references, with as many workers as the gateway."""
    workers = choice.workers or choice.default_workers
    port = setup.upstream_port
    kinds = [
        (RELAY_HTTP, RELAY_HTTP_MODES, port),
        (RELAY_GRPC, RELAY_GRPC_MODES, port),
        (GRPC_FIXED, GRPC_FIXED_MODES, 0),
    ]
    for name, modes, upstream in kinds:
        if not choice.wanted(name):
            continue
        target = Target(name, choice.modes_of(modes), upstream_port=upstream)
        target.version = f"{workers} workers"

        async def start(target: Target = target) -> None:
            service, listening = await start_ceiling(setup.place, target.name, workers, port)
            _started(setup, target, service)
            if target.name == RELAY_HTTP:
                target.endpoints = gateway_endpoints(setup.bodies, http_port=listening)
            else:
                target.endpoints = gateway_endpoints(setup.bodies, grpc_port=listening)
                target.grpc_port = listening

        await _start(setup, target, start)


def chat_route(setup: Setup, gateway: Target, modes: tuple[Mode, ...]) -> Target:
    """The same gateway process called at `/v1/chat/completions`, as the peers are: its rows
    compare the OpenAI-compatible route with the gateway's own API on the same process."""
    target = Target(GATEWAY_CHAT, modes, service=gateway.service, pid=gateway.pid)
    target.upstream_port, target.error = gateway.upstream_port, gateway.error
    target.version = "/v1/chat/completions"
    if not gateway.error:
        base = f"http://127.0.0.1:{gateway.http_port}/v1"
        headers = {"authorization": f"Bearer {GATEWAY_TOKEN}"}
        target.endpoints = openai_endpoints(base, setup.bodies, headers)
    return target


def gateway_name(client: str) -> str:
    """The table name of the gateway target using upstream HTTP `client`."""
    return "gateway" if client == DEFAULT_CLIENT else f"gateway-{client}"


async def _gateway(setup: Setup, gateway: Target, workers: int | None, client: str) -> None:
    service, ports = await start_gateway(
        setup.place, setup.upstream_port, workers, tag=gateway.name, upstream_client=client
    )
    _started(setup, gateway, service)
    gateway.endpoints = gateway_endpoints(setup.bodies, http_port=ports.http, grpc_port=ports.grpc)
    gateway.grpc_port, gateway.http_port = ports.grpc, ports.http


def _started(setup: Setup, target: Target, service: Service) -> None:
    setup.services.append(service)
    target.service = service
    target.pid = service.pid


async def _start(setup: Setup, target: Target, start: Callable[[], Awaitable[None]]) -> None:
    """Run `start` for `target` and add it; a failure becomes the target's error (its rows say
    so; the others still run)."""
    try:
        await start()
    except Exception as exc:
        target.error = reason(exc)
        target.endpoints = {}
    setup.targets.append(target)


async def start_peers(setup: Setup, choice: Choice) -> None:
    """Install (first use) and start LiteLLM (one instance per worker count) and Portkey."""
    port = setup.upstream_port
    modes = choice.modes_of(PEER_MODES)
    counts = [n for n in choice.litellm_workers or [] if choice.wanted(f"litellm-{n}w")]
    litellm = [Target(f"litellm-{n}w", modes, upstream_port=port) for n in counts]
    portkey = Target("portkey", modes, upstream_port=port)
    if not choice.wanted("portkey"):
        portkey.modes = ()
    if not modes or not (litellm or portkey.modes):
        return
    litellm_version, portkey_version = await asyncio.gather(
        _install(peers.install_litellm, bool(litellm)),
        _install(peers.install_portkey, bool(portkey.modes)),
        return_exceptions=True,
    )
    if litellm:
        setup.versions["litellm"] = _installed(litellm, litellm_version)
    if portkey.modes:
        setup.versions["portkey"] = _installed([portkey], portkey_version)
        setup.versions["node"] = peers.node_version()

    async def litellm_up(target: Target, workers: int) -> None:
        service, lport, key = await peers.start_litellm(setup.place, port, workers)
        _started(setup, target, service)
        target.endpoints = openai_endpoints(
            f"http://127.0.0.1:{lport}/v1", setup.bodies, {"authorization": f"Bearer {key}"}
        )

    async def portkey_up(target: Target) -> None:
        service, pport = await peers.start_portkey(setup.place, port)
        _started(setup, target, service)
        headers = peers.portkey_headers(port)
        target.endpoints = openai_endpoints(f"http://127.0.0.1:{pport}/v1", setup.bodies, headers)

    starts = [(t, litellm_up(t, n)) for t, n in zip(litellm, counts, strict=True) if not t.error]
    if portkey.modes and not portkey.error:
        starts.append((portkey, portkey_up(portkey)))
    outcomes = await asyncio.gather(*(start for _, start in starts), return_exceptions=True)
    for (target, _), outcome in zip(starts, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            target.error = f"did not start: {reason(outcome)}"
            target.endpoints = {}
    setup.targets += [*litellm, portkey]


async def _install(install: Callable[[], str], wanted: bool) -> str:
    return await asyncio.to_thread(install) if wanted else ""


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
