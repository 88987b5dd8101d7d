"""What the usage ledger records: one `RequestRecord` per call, with an `AttemptRecord` per try.

Records are plain frozen values, made on the hot path and handed to the `UsageWriter`. They also
round-trip through one line of JSON each (`to_json` / `from_json`) for the spill file, with
datetimes as ISO 8601 in UTC.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.store.values import to_utc


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One try at one provider deployment while serving a call."""

    #: 1 for the first try, then 2, 3… (unique within the call).
    attempt: int
    provider: str
    model: str
    #: "ok", "error", "timeout", "rate_limited", … as the router names it.
    outcome: str
    #: The error's code name when the try failed, else "".
    error_code: str = ""
    latency_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One call to the gateway that got past validation, as the ledger stores it."""

    #: The gateway-made id of this call: the ledger's key, unique even when `request_id` repeats.
    id: str
    #: The caller's `x-request-id` (or the one the gateway made up).
    request_id: str
    tenant_id: str
    api_key_id: str | None
    #: "grpc" or "http".
    transport: str
    rpc: str
    #: The model the caller asked for.
    model: str
    #: The provider and its model that finally served the call (None when none did).
    provider: str | None
    provider_model: str | None
    #: "OK" or the gRPC status name the caller got.
    status: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    #: Completion tokens spent on reasoning (a part of `completion_tokens`).
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    #: Whether the answer came from the gateway's cache.
    cached: bool = False
    latency_ms: int = 0
    started_at: datetime
    finished_at: datetime
    attempts: tuple[AttemptRecord, ...] = ()

    def to_json(self) -> str:
        """This record as one line of JSON (no newline), datetimes in ISO 8601 UTC."""
        return self.to_line()[:-1].decode()

    def to_line(self) -> bytes:
        """`to_json` as UTF-8 with its newline: what the journal and the spill file hold."""
        if self.started_at.tzinfo is UTC and self.finished_at.tzinfo is UTC:
            # The usual case (the gateway makes its times in UTC), on the journal's hot path:
            # orjson writes the dataclass itself, with no dict built for the row.
            return orjson.dumps(self, option=orjson.OPT_APPEND_NEWLINE)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["started_at"] = to_utc(self.started_at).isoformat()
        fields["finished_at"] = to_utc(self.finished_at).isoformat()
        fields["attempts"] = [dataclasses.asdict(attempt) for attempt in self.attempts]
        return orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_json(cls, line: str | bytes) -> RequestRecord:
        """The record `to_json` wrote; raises ValueError when `line` is not one."""
        try:
            fields: dict[str, Any] = orjson.loads(line)
            fields["started_at"] = datetime.fromisoformat(fields["started_at"])
            fields["finished_at"] = datetime.fromisoformat(fields["finished_at"])
            fields["attempts"] = tuple(AttemptRecord(**a) for a in fields["attempts"])
            return cls(**fields)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError("not a serialised RequestRecord") from exc
