"""Log lines are written off the event loop, keep each call's request id, and none is lost at exit.

Each test runs a small program in its own process: logging is process-wide state.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import orjson
import pytest

from gateway.config.settings import ConfigError, load_settings

LINES = 3000

CALLS_THAT_LOG = textwrap.dedent(
    f"""
    import asyncio, logging, sys
    from gateway.pipeline.ids import request_id_var
    from gateway.runtime.logs import configure_logging

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


def _levels_program(*configure_args: str) -> str:
    """A program that configures logging with `configure_args` and logs at every level."""
    return textwrap.dedent(
        f"""
        import logging, sys
        from gateway.runtime.logs import configure_logging

        configure_logging({", ".join(repr(a) for a in configure_args)})
        names = ["gateway", "gateway.core", "providers.openai", "resilience.breaker", "cache",
                 "metrics", "asyncio", "aiohttp.access", "aiohttp.server", "grpc._cython.cygrpc",
                 "sqlalchemy.engine.Engine", "aiosqlite", "alembic.runtime.migration",
                 "urllib3.connectionpool", "redis"]
        for name in names:
            for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
                logging.getLogger(name).log(level, "x")
        print("logged", file=sys.stderr, flush=True)
        """
    )


OURS = ("gateway", "gateway.core", "providers.openai", "resilience.breaker", "cache", "metrics")
THEIRS = (
    "asyncio",
    "aiohttp.access",
    "aiohttp.server",
    "grpc._cython.cygrpc",
    "sqlalchemy.engine.Engine",
    "aiosqlite",
    "alembic.runtime.migration",
    "urllib3.connectionpool",
    "redis",
)


def _written(*configure_args: str) -> set[tuple[str, str]]:
    lines, _ = _run(_levels_program(*configure_args))
    return {(str(e["logger"]), str(e["level"])) for e in lines}


def test_debug_applies_to_the_gateways_own_loggers_and_third_party_ones_stay_at_warning() -> None:
    written = _written("DEBUG")
    assert written == {
        *((name, level) for name in OURS for level in ("debug", "info", "warning", "error")),
        *((name, level) for name in THEIRS for level in ("warning", "error")),
    }


def test_third_party_loggers_follow_their_own_level_when_one_is_asked_for() -> None:
    written = _written("DEBUG", "INFO")
    assert {(name, level) for name, level in written if name in THEIRS} == {
        (name, level) for name in THEIRS for level in ("info", "warning", "error")
    }


def test_a_quieter_log_level_quiets_third_party_loggers_too() -> None:
    written = _written("ERROR")
    assert written == {(name, "error") for name in (*OURS, *THEIRS)}


def test_log_level_third_party_is_read_and_checked() -> None:
    assert load_settings({}).log_level_third_party == ""
    assert load_settings({"LOG_LEVEL_THIRD_PARTY": "info"}).log_level_third_party == "INFO"
    with pytest.raises(ConfigError, match="LOG_LEVEL_THIRD_PARTY"):
        load_settings({"LOG_LEVEL_THIRD_PARTY": "chatty"})
