"""When PostgreSQL goes away, the writer keeps every row and stores each once when it is back.

The engine reaches PostgreSQL through a TCP proxy the test controls; the test checks the tables
through a direct engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import create_engine
from gateway.store.migrate import upgrade
from gateway.store.models import provider_attempts
from gateway.store.writer import UsageWriter
from tests.postgres_support import PostgresSchema
from tests.store.rows import count_rows, eventually, fast_writer, make_record, stored_ids
from tests.store.tcp_proxy import TcpProxy

TIMEOUT = 0.5


@dataclass(frozen=True)
class Outage:
    """A proxy in front of PostgreSQL, an engine through it, and one straight to the server."""

    proxy: TcpProxy
    proxied: AsyncEngine
    direct: AsyncEngine


@pytest.fixture(name="outage")
async def outage_fixture(postgres_schema_url: PostgresSchema) -> AsyncIterator[Outage]:
    """An `Outage` on a freshly migrated schema; everything is closed afterwards."""
    url, schema = postgres_schema_url.url, postgres_schema_url.name
    await upgrade(url, schema=schema)
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied_url = target.set(host="127.0.0.1", port=proxy.port)
    proxied = create_engine(proxied_url.render_as_string(hide_password=False), schema=schema)
    direct = create_engine(url, schema=schema)
    yield Outage(proxy=proxy, proxied=proxied, direct=direct)
    await proxied.dispose()
    await proxy.aclose()
    await direct.dispose()


async def record_slowly(writer: UsageWriter, numbers: range) -> None:
    """Record calls `numbers` in small bursts, giving the flusher turns in between."""
    for n in numbers:
        writer.record(make_record(n))
        if n % 20 == 0:
            await asyncio.sleep(0.01)


async def assert_stored_once(engine: AsyncEngine, calls: int) -> None:
    """Calls 0 … `calls`-1 are stored once each, with both of their attempts."""
    assert await stored_ids(engine) == [make_record(n).id for n in range(calls)]
    assert await count_rows(engine, provider_attempts) == 2 * calls


async def test_rows_recorded_while_the_database_is_down_land_exactly_once(
    outage: Outage, tmp_path: Path
) -> None:
    writer = fast_writer(
        outage.proxied,
        tmp_path / "spill.jsonl",
        max_pending=50,
        batch_size=20,
        write_timeout=TIMEOUT,
    )
    writer.start()
    await record_slowly(writer, range(100))
    await eventually(lambda: writer.written_total >= 100)

    outage.proxy.cut()
    await record_slowly(writer, range(100, 300))
    await eventually(lambda: writer.failures_total >= 2)
    assert writer.spilled_total > 0
    assert writer.pending <= 50 + 20

    outage.proxy.restore()
    await eventually(lambda: writer.pending == 0 and writer.written_total >= 300)
    await writer.aclose(timeout=10)
    await assert_stored_once(outage.direct, 300)


async def test_a_database_that_stops_answering_is_bounded_by_the_write_timeout(
    outage: Outage, tmp_path: Path
) -> None:
    writer = fast_writer(outage.proxied, tmp_path / "spill.jsonl", write_timeout=TIMEOUT)
    writer.start()
    outage.proxy.stall()
    await record_slowly(writer, range(50))
    await eventually(lambda: writer.failures_total >= 2)
    assert writer.written_total == 0

    outage.proxy.restore()
    await eventually(lambda: writer.written_total >= 50)
    await writer.aclose(timeout=10)
    await assert_stored_once(outage.direct, 50)


async def test_rows_spilled_at_shutdown_during_an_outage_are_stored_by_the_next_writer(
    outage: Outage, tmp_path: Path
) -> None:
    spill_path = tmp_path / "spill.jsonl"
    first = fast_writer(outage.proxied, spill_path, write_timeout=TIMEOUT)
    first.start()
    outage.proxy.cut()
    await record_slowly(first, range(80))
    await first.aclose(timeout=0.3)
    assert (first.pending, first.spilled_total) == (0, 80)

    outage.proxy.restore()
    second = fast_writer(outage.proxied, spill_path, write_timeout=TIMEOUT)
    second.start()
    await second.aclose(timeout=10)
    await assert_stored_once(outage.direct, 80)
