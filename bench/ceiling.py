"""The ceiling references: `python -m bench.ceiling KIND --workers N [--upstream-port U]`.

KIND is `relay-http` (`bench.relay_http`), `relay-grpc` or `grpc-fixed` (`bench.relay_grpc`).
Like the gateway, it runs as a supervisor and N worker processes on uvloop, each binding the
same port with `SO_REUSEPORT` so the kernel spreads connections over them. The supervisor
reserves the port (bound, not listening), starts the workers, waits until each says it
listens, prints one JSON line `{"port": P}`, and on SIGTERM/SIGINT stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys

KINDS = ("relay-http", "relay-grpc", "grpc-fixed")
READY = b"ready\n"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
HOST = "127.0.0.1"


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def worker(kind: str, port: int, upstream_port: int) -> None:
    """Serve `kind` on `port` (shared with the other workers) until a signal."""
    upstream = f"http://{HOST}:{upstream_port}/v1/chat/completions"
    if kind == "relay-http":
        from aiohttp import web

        from bench.relay_http import create_app

        runner = web.AppRunner(create_app(upstream), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port, reuse_port=True, backlog=4096).start()
        _announce()
        try:
            await _until_signal()
        finally:
            await runner.cleanup()
        return
    import grpc

    from bench.relay_grpc import FixedServicer, RelayServicer
    from gateway.v1 import gateway_pb2_grpc as pb_grpc

    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    relay = RelayServicer(upstream) if kind == "relay-grpc" else None
    servicer = relay or FixedServicer()
    pb_grpc.add_GatewayServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"{HOST}:{port}")
    await server.start()
    _announce()
    try:
        await _until_signal()
    finally:
        await server.stop(0)
        if relay is not None:
            await relay.aclose()


def _announce() -> None:
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()


async def supervise(kind: str, workers: int, upstream_port: int) -> int:
    """Reserve a port, start `workers` workers on it, print it, stop them on a signal."""
    reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind((HOST, 0))
    port = int(reserved.getsockname()[1])
    argv = [sys.executable, "-m", "bench.ceiling", kind, "--worker-port", str(port)]
    argv += ["--upstream-port", str(upstream_port)]
    started = [
        await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(workers)
    ]
    try:
        for process in started:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            if line != READY:
                print(f"bench.ceiling: a {kind} worker did not start", file=sys.stderr)
                return 1
        print(json.dumps({"port": port, "workers": workers}), flush=True)
        await _until_signal()
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in started:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        reserved.close()
    return 0


def main() -> int:
    """Parse options; run the supervisor or (with `--worker-port`) one worker."""
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--upstream-port", type=int, default=0, help="the fake upstream's port")
    parser.add_argument("--worker-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kind.startswith("relay") and not args.upstream_port:
        parser.error(f"{args.kind} needs --upstream-port")
    import uvloop

    if args.worker_port:
        uvloop.run(worker(args.kind, args.worker_port, args.upstream_port))
        return 0
    return uvloop.run(supervise(args.kind, args.workers, args.upstream_port))


if __name__ == "__main__":
    sys.exit(main())
