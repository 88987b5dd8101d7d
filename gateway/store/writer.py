"""The usage writer: records calls off the hot path and stores them in batches, losing none.

`record()` appends the row to the journal (`journal.Journal`: one `os.write`, so a process
killed outright loses no row of a call it answered) and to a deque. One background task (the
flusher) takes up to `batch_size` rows at a time and stores them in one transaction
(`ledger.Ledger`, insert-or-ignore; a SQLite file's batches go whole on a thread of their own),
every `flush_interval` or as soon as a batch is full. A single writing task is also what SQLite
wants: concurrent writers would only queue on its lock.

When the database is down or slow (each write is bounded by `write_timeout`) the batch goes back
to the front of the queue and the flusher retries every `retry_interval`. Rows keep arriving
meanwhile; past `max_pending` the oldest go to the spill file (`spill.SpillFile`), which is
replayed before anything else when the writer starts and whenever the database is back. A batch
the database refuses for what it holds (a value too long, say) would be refused forever: its
rows are then stored one by one and any row refused alone is set aside in `<spill>.rejected`.

`aclose(timeout)` stores what it can within `timeout` and spills the rest.

What a dead process left (its journal files) is adopted into the spill file when the next
writer on the same spill path starts, and replayed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.journal import Journal
from gateway.store.ledger import Ledger
from gateway.store.records import RequestRecord
from gateway.store.spill import SpillFile, read_chunk

logger = logging.getLogger(__name__)

#: SQLSTATE classes that say "these rows can never be stored" (data exception, integrity
#: violation), as opposed to "not now". The asyncpg dialect wraps most of them in a plain
#: `DBAPIError`, so the code is what tells.
_REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23"})
#: After a failed journal write, the next failure is logged no sooner than this.
_JOURNAL_ERROR_LOG_SECONDS = 60.0


class UsageWriter:
    """Buffers `RequestRecord`s in memory and stores them from one background task."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        spill_path: Path,
        max_pending: int = 50_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        retry_interval: float = 1.0,
        write_timeout: float = 10.0,
    ) -> None:
        self._ledger = Ledger.for_engine(engine)
        self._spill = SpillFile(spill_path)
        self._rejected = SpillFile(spill_path.with_name(spill_path.name + ".rejected"))
        self._journal = Journal(spill_path.with_name(spill_path.name + ".journal"))
        #: Ids of the rows of the sealed journal file not yet stored, spilled or set aside.
        self._sealed_waiting: set[str] | None = None
        self._journal_error_logged_at = -_JOURNAL_ERROR_LOG_SECONDS
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._write_timeout = write_timeout
        self._pending: deque[RequestRecord] = deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._spill_dirty = False
        self._replay_offset = 0
        self._spill_retry_at = 0.0
        self._spilled_total = 0
        self._written_total = 0
        self._failures_total = 0
        self._rejected_total = 0

    @property
    def pending(self) -> int:
        """Rows held in memory, including the batch being written."""
        return len(self._pending) + self._in_flight

    @property
    def spilled_total(self) -> int:
        """Rows written to the spill file since this writer was made."""
        return self._spilled_total

    @property
    def written_total(self) -> int:
        """Rows sent in committed transactions (a replayed row the table had counts again)."""
        return self._written_total

    @property
    def failures_total(self) -> int:
        """Writes that failed and will be retried (one per failed try, not per row)."""
        return self._failures_total

    @property
    def rejected_total(self) -> int:
        """Rows the database refused to store, set aside in the `.rejected` file."""
        return self._rejected_total

    def record(self, row: RequestRecord) -> None:
        """Queue `row` for storing. Never blocks on the database and never raises.

        Call it from the event loop's thread, before the call's answer leaves: the row is in
        the journal when this returns. After `aclose` the row goes straight to the spill file,
        for the next writer on the same path to replay.
        """
        if self._closed:
            self._spill_rows([row])
            return
        try:
            self._journal.write(row)
        except (OSError, TypeError) as exc:  # the row still waits in memory, as before
            self._journal_failed(exc)
        self._pending.append(row)
        if len(self._pending) > self._max_pending:
            self._spill_overflow()
        elif len(self._pending) >= self._batch_size:
            self._wake.set()

    def start(self) -> None:
        """Start the flusher; rows an earlier process left (spilled or journaled) go first."""
        if self._task is not None:
            raise RuntimeError("the usage writer is already started")
        self._adopt_journal()
        self._spill_dirty = self._spill.has_rows()
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    def _adopt_journal(self) -> None:
        # Blocking file work, once, before the first call: the journal holds at most the rows
        # of the batches the dead process had not stored.
        for leftover in self._journal.leftovers():
            try:
                self._spill.adopt(leftover)
            except OSError as exc:
                # Left where it is for the next start; no journaling meanwhile, or its rows
                # would be sealed and deleted with ours.
                logger.error(
                    "cannot move a usage journal into the spill file; not journaling",
                    extra={"file": leftover.name, "error": _describe(exc)},
                )
                return
            logger.warning(
                "usage rows of a process that stopped abruptly will be stored",
                extra={"file": leftover.name},
            )
        try:
            self._journal.open()
        except OSError as exc:
            self._journal_failed(exc)

    # The budget is split between storing and spilling, which a caller's timeout cannot do.
    async def aclose(self, timeout: float) -> None:  # noqa: ASYNC109
        """Store everything queued within `timeout` seconds, then spill what is left.

        The engine stays open: it belongs to the caller.
        """
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        if self._task is None:
            self.start()
        task = self._task
        assert task is not None
        try:
            await asyncio.wait({task}, timeout=timeout)
        finally:
            try:
                if not task.done():
                    await _cancel(task)
            finally:
                self._closed = True
                self._spill_leftovers()
                # Every row is stored or spilled now, unless spilling failed: then the journal
                # keeps them for the next start.
                self._journal.close(discard=not self._pending)
                await self._ledger.aclose()

    def _spill_leftovers(self) -> None:
        left = list(self._pending)
        self._pending.clear()
        if left and not self._spill_rows(left):
            self._pending.extend(left)
            logger.error("usage rows could not be spilled at shutdown", extra={"rows": len(left)})

    # The flusher.

    async def _run(self) -> None:
        while True:
            await self._wait_for_work()
            try:
                await self._drain()
            except Exception as exc:  # the flusher must outlive any failure; rows are kept
                self._failures_total += 1
                logger.warning(
                    "usage store write failed; will retry",
                    extra={"error": _describe(exc), "pending": self.pending},
                )
                await asyncio.sleep(self._retry_interval)
                continue
            if self._closing:
                return

    async def _wait_for_work(self) -> None:
        self._wake.clear()
        if self._closing or len(self._pending) >= self._batch_size:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._flush_interval):
                await self._wake.wait()

    async def _drain(self) -> None:
        self._seal_journal()
        if self._spill_dirty:
            await self._replay_spill()
        while self._pending:
            count = min(self._batch_size, len(self._pending))
            batch = [self._pending.popleft() for _ in range(count)]
            self._in_flight = count
            try:
                await self._store(batch)
            except BaseException:
                self._pending.extendleft(reversed(batch))
                if len(self._pending) > self._max_pending:
                    self._spill_overflow()
                raise
            finally:
                self._in_flight = 0

    async def _replay_spill(self) -> None:
        while (claimed := self._spill.claim()) is not None:
            at_end = False
            while not at_end:
                chunk = await asyncio.to_thread(
                    read_chunk, claimed, self._replay_offset, self._batch_size
                )
                if chunk.skipped:
                    logger.warning("unreadable spill lines skipped", extra={"lines": chunk.skipped})
                await self._store(chunk.records)
                self._replay_offset = chunk.next_offset
                at_end = chunk.at_end
            self._spill.release()
            self._replay_offset = 0
        self._spill_dirty = False

    async def _store(self, rows: Sequence[RequestRecord]) -> None:
        """Commit `rows`; a batch refused for its content is retried row by row."""
        if not rows:
            return
        try:
            await self._write(rows)
        except DBAPIError as exc:
            if not _refused(exc):
                raise
            if len(rows) == 1:
                self._reject(rows[0])
                return
            for row in rows:
                await self._store([row])

    async def _write(self, rows: Sequence[RequestRecord]) -> None:
        async with asyncio.timeout(self._write_timeout):
            await self._ledger.write(rows)
        self._written_total += len(rows)
        self._settled(rows)

    def _reject(self, row: RequestRecord) -> None:
        logger.error("usage row refused by the database; set aside", extra={"row_id": row.id})
        self._rejected.append([row])
        self._rejected_total += 1
        self._settled([row])

    # The journal.

    def _seal_journal(self) -> None:
        """Seal the journal file when none is sealed: its rows are the ones waiting now."""
        if self._sealed_waiting is not None:
            return
        try:
            sealed = self._journal.seal()
        except OSError as exc:
            self._journal_failed(exc)
            return
        if sealed:
            self._sealed_waiting = {row.id for row in self._pending}
            self._settled(())

    def _settled(self, rows: Sequence[RequestRecord]) -> None:
        """`rows` are stored, spilled or set aside: the sealed file may no longer be needed."""
        waiting = self._sealed_waiting
        if waiting is None:
            return
        for row in rows:
            waiting.discard(row.id)
        if not waiting:
            self._sealed_waiting = None
            try:
                self._journal.discard_sealed()
            except OSError as exc:
                self._journal_failed(exc)

    def _journal_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._journal_error_logged_at >= _JOURNAL_ERROR_LOG_SECONDS:
            self._journal_error_logged_at = now
            logger.error(
                "cannot write the usage journal: rows wait in memory only",
                extra={"file": self._journal.path.name, "error": _describe(exc)},
            )

    # Spilling.

    def _spill_overflow(self) -> None:
        # Written synchronously on the caller's path, but only when `max_pending` rows already
        # wait (the database has been down a while): one append of a whole batch to the page
        # cache costs microseconds per row, keeps memory strictly bounded, and puts the rows on
        # disk at once rather than in a task that may never run if the process is dying.
        # If the file cannot be written, the rows stay in memory (over the bound) rather than
        # be lost, and spilling is tried again after `retry_interval`.
        if time.monotonic() < self._spill_retry_at:
            return
        count = max(
            len(self._pending) - self._max_pending, min(self._batch_size, self._max_pending)
        )
        oldest = [self._pending.popleft() for _ in range(min(count, len(self._pending)))]
        if not self._spill_rows(oldest):
            self._pending.extendleft(reversed(oldest))
            self._spill_retry_at = time.monotonic() + self._retry_interval

    def _spill_rows(self, rows: list[RequestRecord]) -> bool:
        try:
            self._spilled_total += self._spill.append(rows)
        except (OSError, TypeError) as exc:  # TypeError: a field JSON cannot hold
            logger.error("cannot write the usage spill file", extra={"error": _describe(exc)})
            return False
        self._spill_dirty = True
        self._settled(rows)
        return True


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we were cancelled ourselves, not just the flusher


def _refused(exc: DBAPIError) -> bool:
    if isinstance(exc, DataError | IntegrityError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _REFUSED_SQLSTATE_CLASSES


def _describe(exc: BaseException) -> str:
    """The error's class (and the driver's, if wrapped): never its text, which may hold SQL."""
    cause = getattr(exc, "orig", None)
    name = type(exc).__name__
    return f"{name} ({type(cause).__name__})" if cause is not None else name
