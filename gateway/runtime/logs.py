"""Structured logs: one JSON object per line, each carrying the current request id.

The request id lives in a context variable set by the transports when a call starts, so every
log line written while serving that call carries it without being passed around.

Nothing here blocks the event loop: the loop only makes the record and stamps it with the
request id and trace context (context variables, readable only there); a background thread
(`logging.handlers.QueueListener`) formats the line and writes it to stdout, one write for as
many lines as are waiting. Whatever is queued is written at exit.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

import orjson
from opentelemetry import trace

from gateway.pipeline.ids import request_id_var

#: How long the writer thread lets records gather once one has woken it.
LINGER_SECONDS = 0.005

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
#: Top-level loggers of this project's packages: LOG_LEVEL applies to these.
OWN_LOGGERS = ("gateway", "providers", "resilience", "cache", "metrics")
#: Every other library's loggers, unless LOG_LEVEL_THIRD_PARTY says otherwise.
THIRD_PARTY_DEFAULT_LEVEL = logging.WARNING
#: The record attribute the loop stamps with (request id, trace id, span id); 0 ids: no span.
_CONTEXT = "_gateway_context"

LogContext = tuple[str | None, int, int]


def current_context() -> LogContext:
    """The request id and the current span's trace and span ids (0 when there is no span)."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        return request_id_var.get(), span.trace_id, span.span_id
    return request_id_var.get(), 0, 0


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra={...}` keys become top-level fields.

    The request id and trace ids are the ones stamped on the record where it was made, else
    (a record formatted where it was made) the current ones.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        context: LogContext | None = getattr(record, _CONTEXT, None)
        request_id, trace_id, span_id = context if context is not None else current_context()
        entry: dict[str, Any] = {
            "ts": f"{self._timestamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if request_id is not None:
            entry["request_id"] = request_id
        if trace_id:
            entry["trace_id"] = format(trace_id, "032x")
            entry["span_id"] = format(span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()

    def _timestamp(self, created: float) -> str:
        """UTC to the second, worked out once per second."""
        second = int(created)
        cached, text = self._second
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return text


class _StampingQueueHandler(QueueHandler):
    """Queues records unformatted, stamped with the context only the loop's task can read."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        setattr(record, _CONTEXT, current_context())
        if record.args:
            # Rendered now: the arguments may change before the writer thread gets to them.
            record.msg, record.args = record.getMessage(), None
        return record


class _LineWriter(logging.StreamHandler[TextIO]):
    """Writes lines to the stream, leaving the flush to the listener (once the queue is empty)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _Listener(QueueListener):
    """Writes queued records on its thread in batches, flushing whenever the queue runs dry.

    Once woken by a record it lingers a moment before writing, so that under load the loop's
    records pile up meanwhile: queueing one then wakes nobody and takes no system call, and the
    thread takes the GIL from the loop once per batch rather than once per line.
    """

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord], writer: _LineWriter) -> None:
        super().__init__(records, writer)
        self._records = records

    def dequeue(self, block: bool) -> logging.LogRecord:
        try:
            return self._records.get_nowait()
        except queue.Empty:
            pass
        for handler in self.handlers:
            handler.flush()
        record = self._records.get()
        time.sleep(LINGER_SECONDS)
        return record

    def stop(self) -> None:
        """Write everything queued, then end the thread (once; later calls do nothing)."""
        if self._thread is None:
            return
        super().stop()
        for handler in self.handlers:
            handler.flush()


_listener: _Listener | None = None


def configure_logging(level: str, third_party_level: str = "") -> None:
    """Send all logs to stdout as JSON lines, written off the calling thread.

    `level` applies to the gateway's own loggers (`OWN_LOGGERS`); every other library logs at
    `third_party_level`, by default WARNING (or `level` when that is quieter): LOG_LEVEL=DEBUG
    is for the gateway, not for asyncio, aiosqlite, SQLAlchemy or gRPC.
    """
    global _listener  # one writer thread per process, replaced on reconfiguring
    if _listener is not None:
        _listener.stop()
        atexit.unregister(_listener.stop)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = _LineWriter(sys.stdout)
    writer.setFormatter(JsonFormatter())
    _listener = _Listener(records, writer)
    _listener.start()
    atexit.register(_listener.stop)  # runs before logging's own shutdown: nothing queued is lost
    root = logging.getLogger()
    root.handlers[:] = [_StampingQueueHandler(records)]
    own = logging.getLevelNamesMapping()[level]
    root.setLevel(third_party_level or max(own, THIRD_PARTY_DEFAULT_LEVEL))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
    # Fields no line shows, which every record would otherwise look up (the caller's frame,
    # thread and process names): see "Optimization" in the logging HOWTO.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
