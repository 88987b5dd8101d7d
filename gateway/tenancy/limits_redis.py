"""Rate limits and budgets in Redis, so that they hold across every replica.

A rate-limit decision is one Lua script run (EVALSHA, falling back to EVAL when the server has
not seen the script): it reads the server's clock (`TIME`, so replicas with skewed clocks agree),
reads each limit's sub-windows (`gateway.tenancy.limits.BUCKETS`), checks every limit and
charges all of them or none. Each limit is one hash `<prefix><name>:<key>` with, for each of
`BUCKETS + 1` slots (a sub-window's index modulo that), the fields `i<slot>` (the sub-window's
index) and `c<slot>` (its count), expiring two windows after its last charge.

A month's spend is one float counter `<prefix><key>:<YYYYMM>` (INCRBYFLOAT), expiring after
`BUDGET_TTL_SECONDS`; `over_budget` reads all of a call's counters with one MGET.

Both are handed a client built by the process (one bounded pool, no retries, shared with the
cache) and never close it. No operation is slower than `timeout`: each runs under
`asyncio.timeout(timeout)`, whatever the client's own socket timeouts. A failed or late
operation is counted (`failures_total`, `on_failure`) and then the `fail_open` policy decides:
see `gateway.limits`. Messages and logs name host, port and database, never credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from gateway.tenancy.limits import (
    ADMITTED,
    BUCKETS,
    DEFAULT_WINDOW_SECONDS,
    DEGRADED,
    UNAVAILABLE,
    BudgetDecision,
    Decision,
    Limit,
    Reason,
    WindowCounts,
    budget_decision,
    build_decision,
    check_distinct,
    utc_month,
    utc_now,
)

log = logging.getLogger("gateway.limits")

DEFAULT_LIMIT_PREFIX = "aigw:rl:"
"""Prepended to every rate-limit key."""

DEFAULT_BUDGET_PREFIX = "aigw:budget:"
"""Prepended to every budget key."""

BUDGET_TTL_SECONDS = 35 * 24 * 3600
"""A month's spend counter outlives its month by a few days, then goes."""

_T = TypeVar("_T")

# Shared by both scripts: the server's clock and one limit's sub-window counts.
_PRELUDE = f"""
local window = tonumber(ARGV[1])
local buckets = {BUCKETS}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local span = window / buckets
local bucket = math.floor(now / span)
local into = now - bucket * span
local function counts(key)
  local fields = {{}}
  for k = 0, buckets do
    local slot = (bucket - buckets + k) % (buckets + 1)
    fields[2 * k + 1] = 'i' .. slot
    fields[2 * k + 2] = 'c' .. slot
  end
  local stored = redis.call('HMGET', key, unpack(fields))
  local found = {{}}
  for k = 0, buckets do
    local count = 0
    if tonumber(stored[2 * k + 1]) == bucket - buckets + k then
      count = tonumber(stored[2 * k + 2])
    end
    found[k + 1] = count
  end
  return found
end
local function store(key, current)
  local slot = bucket % (buckets + 1)
  redis.call('HSET', key, 'i' .. slot, string.format('%d', bucket), 'c' .. slot, current)
  redis.call('PEXPIRE', key, 2 * window)
end
"""

ACQUIRE_SCRIPT = (
    _PRELUDE
    + """
-- KEYS: one hash per limit. ARGV: window (ms), then limit and amount of each limit.
-- Returns {admitted 0/1, ms into the sub-window, then for each limit its sub-window counts
-- (oldest first, `buckets + 1` of them) and fits 0/1}, the counts as they were before any charge.
local reply = {1, into}
for i, key in ipairs(KEYS) do
  local found = counts(key)
  local total = 0
  for k = 1, buckets + 1 do
    total = total + found[k]
    table.insert(reply, found[k])
  end
  local limit, amount = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local fit = 1
  if total + amount > limit then
    fit = 0
    reply[1] = 0
  end
  table.insert(reply, fit)
end
if reply[1] == 1 then
  for i, key in ipairs(KEYS) do
    local current = reply[2 + (i - 1) * (buckets + 2) + buckets + 1]
    store(key, current + tonumber(ARGV[2 * i + 1]))
  end
end
return reply
"""
)

ADJUST_SCRIPT = (
    _PRELUDE
    + """
-- KEYS[1]: the limit's hash. ARGV: window (ms), delta. Returns the new current count.
local found = counts(KEYS[1])
local current = math.max(0, found[buckets + 1] + tonumber(ARGV[2]))
store(KEYS[1], current)
return current
"""
)


class _Script:
    """A Lua script run by SHA, sent in full (EVAL) only when the server does not have it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    async def run(self, client: Redis, keys: Sequence[str], args: Sequence[int | str]) -> Any:
        """The script's reply for `keys` and `args`."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.text, len(keys), *keys, *args)


_ACQUIRE = _Script(ACQUIRE_SCRIPT)
_ADJUST = _Script(ADJUST_SCRIPT)


class _BackendError(Exception):
    """A Redis operation failed or ran out of time; the caller applies its policy."""


class _Link:
    """A client, its timeout and its failure count: every Redis operation goes through `run`.

    Logs once when Redis starts failing and once when it answers again, not on every call.
    """

    def __init__(
        self, client: Redis, *, timeout: float, on_failure: Callable[[], None] | None, policy: str
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.client = client
        self.failures_total = 0
        self._timeout = timeout
        self._on_failure = on_failure
        self._policy = policy
        self._failing = False
        kwargs = client.connection_pool.connection_kwargs
        self._where = _describe_server(kwargs)
        self._password: str | None = kwargs.get("password")

    async def run(self, command: str, operation: Awaitable[_T]) -> _T:
        """Await `operation` under the timeout; raise `_BackendError` from whatever went wrong."""
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            self._failed(command, exc)
            raise _BackendError(command) from exc
        if self._failing:
            self._failing = False
            log.info("redis for %s on %s answers again", self._policy, self._where)
        return result

    def _failed(self, command: str, exc: BaseException) -> None:
        self.failures_total += 1
        if not self._failing:
            self._failing = True
            detail = str(exc) or "no reply within the timeout"
            if self._password:
                detail = detail.replace(self._password, "***")
            log.warning(
                "redis %s on %s failed (%s: %s); %s until it answers",
                command,
                self._where,
                type(exc).__name__,
                detail,
                self._policy,
            )
        if self._on_failure is not None:
            self._on_failure()


class RedisRateLimiter:
    """A `RateLimiter` in Redis, shared by every replica using the same `prefix` and `window`.

    The client is the caller's: the limiter uses it and never closes it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        timeout: float,
        prefix: str = DEFAULT_LIMIT_PREFIX,
        window: float = DEFAULT_WINDOW_SECONDS,
        fail_open: bool = True,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._window_ms = round(window * 1000)
        if self._window_ms < 1:
            raise ValueError(f"window must be at least a millisecond, got {window}")
        policy = "rate limits admit every call" if fail_open else "rate limits refuse every call"
        self._link = _Link(client, timeout=timeout, on_failure=on_failure, policy=policy)
        self._prefix = prefix
        self._fail_open = fail_open

    @property
    def failures_total(self) -> int:
        """Operations that failed or timed out since the limiter was built."""
        return self._link.failures_total

    async def acquire(self, limits: Sequence[Limit]) -> Decision:
        """See `RateLimiter.acquire`: one script run, one round trip."""
        if not limits:
            return ADMITTED
        check_distinct(limits)
        keys = [f"{self._prefix}{limit.name}:{limit.key}" for limit in limits]
        args: list[int | str] = [self._window_ms]
        for limit in limits:
            args += (limit.limit, limit.amount)
        client = self._link.client
        try:
            reply = await self._link.run("EVALSHA", _ACQUIRE.run(client, keys, args))
        except _BackendError:
            return DEGRADED if self._fail_open else UNAVAILABLE
        numbers = [int(n) for n in reply]
        rest, size = numbers[2:], BUCKETS + 2
        counts = [WindowCounts(tuple(rest[i : i + size - 1])) for i in range(0, len(rest), size)]
        fitted = [rest[i + size - 1] == 1 for i in range(0, len(rest), size)]
        span = self._window_ms / 1000 / BUCKETS
        return build_decision(limits, counts, fitted, into=numbers[1] / 1000, span=span)

    async def adjust(self, name: str, key: str, delta: int) -> None:
        """See `RateLimiter.adjust`."""
        if delta == 0:
            return
        operation = _ADJUST.run(
            self._link.client, [f"{self._prefix}{name}:{key}"], [self._window_ms, delta]
        )
        with contextlib.suppress(_BackendError):  # counted; a lost correction skews one window
            await self._link.run("EVALSHA", operation)

    async def aclose(self) -> None:
        """Nothing to release: the client is closed by whoever built it."""


class RedisBudgets:
    """`Budgets` in Redis, shared by every replica using the same `prefix`.

    `clock` gives the current time (UTC now by default) and so the month being counted. The
    client is the caller's: the budgets use it and never close it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        timeout: float,
        prefix: str = DEFAULT_BUDGET_PREFIX,
        fail_open: bool = True,
        on_failure: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        policy = "budgets admit every call" if fail_open else "budgets refuse every call"
        self._link = _Link(client, timeout=timeout, on_failure=on_failure, policy=policy)
        self._prefix = prefix
        self._fail_open = fail_open
        self._clock = clock

    @property
    def failures_total(self) -> int:
        """Operations that failed or timed out since the budgets were built."""
        return self._link.failures_total

    async def spend(self, key: str, usd: float) -> None:
        """See `Budgets.spend`: INCRBYFLOAT and EXPIRE in one transaction."""
        # A lost spend is counted; the usage database still has it and seeds the next start.
        with contextlib.suppress(_BackendError):
            await self._link.run("INCRBYFLOAT", self._add(self._key(key), usd))

    async def seed_spend(self, key: str, usd: float) -> bool:
        """See `Budgets.seed_spend`: SET NX with the month's expiry. False if Redis failed."""
        operation = self._link.client.set(self._key(key), usd, nx=True, ex=BUDGET_TTL_SECONDS)
        try:
            return bool(await self._link.run("SET", operation))
        except _BackendError:
            return False

    async def over_budget(self, checks: Sequence[tuple[str, float]]) -> BudgetDecision:
        """See `Budgets.over_budget`: one MGET."""
        if not checks:
            return BudgetDecision(True, Reason.OK)
        keys = [self._key(key) for key, _ in checks]
        try:
            values = await self._link.run("MGET", self._link.client.mget(keys))
        except _BackendError:
            if self._fail_open:
                return BudgetDecision(True, Reason.DEGRADED)
            return BudgetDecision(False, Reason.BACKEND_UNAVAILABLE)
        return budget_decision(checks, [0.0 if v is None else float(v) for v in values])

    async def aclose(self) -> None:
        """Nothing to release: the client is closed by whoever built it."""

    def _key(self, key: str) -> str:
        return f"{self._prefix}{key}:{utc_month(self._clock())}"

    async def _add(self, key: str, usd: float) -> None:
        async with self._link.client.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, BUDGET_TTL_SECONDS)
            await pipe.execute()


def _describe_server(connection_kwargs: dict[str, Any]) -> str:
    """Where the pool connects, without credentials: `host:port/db` or `unix:path/db`."""
    db = connection_kwargs.get("db", 0)
    path = connection_kwargs.get("path")
    if path is not None:
        return f"unix:{path}/{db}"
    return (
        f"{connection_kwargs.get('host', 'localhost')}:{connection_kwargs.get('port', 6379)}/{db}"
    )
