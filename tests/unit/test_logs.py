"""Log lines are written off the event loop, keep each call's request id, and none is lost at exit.

Each test runs a small program in its own process: logging is process-wide state.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import orjson

LINES = 3000

CALLS_THAT_LOG = textwrap.dedent(
    f"""
    import asyncio, logging, sys
    from gateway.logs import configure_logging, request_id_var

    configure_logging("INFO")
    log = logging.getLogger("gateway.test")

    async def call(n):
        request_id_var.set(f"r-{{n}}")
        await asyncio.sleep(0)
        log.info("line %d", n, extra={{"n": n, "pad": "x" * 200}})

    async def main():
        await asyncio.gather(*(call(n) for n in range({LINES})))

    asyncio.run(main())
    print("logged", file=sys.stderr, flush=True)
    """
)


def _run(program: str) -> tuple[list[dict[str, object]], str]:
    command = [sys.executable, "-c", program]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:  # noqa: S603 (our own program)
        assert process.stderr is not None
        assert process.stdout is not None
        stalled = threading.Timer(20.0, process.kill)
        stalled.start()
        try:
            # Nobody reads stdout until the program says it has logged everything: its ~700 KB
            # of lines would fill the pipe long before if the logging calls wrote them.
            said = process.stderr.readline().decode()
            out = process.stdout.read()
        finally:
            stalled.cancel()
        assert process.wait(timeout=30) == 0
    return [orjson.loads(line) for line in out.splitlines()], said


def test_logging_calls_return_while_nobody_reads_stdout() -> None:
    _, said = _run(CALLS_THAT_LOG)
    assert said == "logged\n"


def test_every_line_queued_before_exit_is_written_with_its_calls_request_id() -> None:
    lines, _ = _run(CALLS_THAT_LOG)
    assert [(e["msg"], e["request_id"], e["n"]) for e in lines] == [
        (f"line {n}", f"r-{n}", n) for n in range(LINES)
    ]
