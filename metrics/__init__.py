"""Prometheus metrics: the only place metric names are defined.

Labels are bounded sets (RPC, transport, status code, provider, model): never user ids or prompts.

With several worker processes (`WORKERS`), prometheus_client's multiprocess mode is on in each
worker (the supervisor sets `PROMETHEUS_MULTIPROC_DIR`): counters and histograms are summed over
the workers by `metrics.endpoint`, and each gauge says how its workers' values combine.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "gateway_requests_total",
    "Calls served, by RPC, transport and gRPC status code.",
    ["rpc", "transport", "code"],
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time from the start of a call to its last byte, by RPC and transport.",
    ["rpc", "transport"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "gateway_in_flight_requests",
    "Calls being served now, by transport.",
    ["transport"],
    multiprocess_mode="livesum",
)
REQUEST_READS_CUT = Counter(
    "gateway_request_reads_cut_total",
    "Requests cut because their head, body or message did not arrive within its time bound, "
    "by transport and phase (head, body, message).",
    ["transport", "phase"],
)
UNDECODABLE_REQUESTS = Counter(
    "gateway_undecodable_requests_total",
    "Requests refused because their request message was missing, cut short or undecodable, "
    "by transport (gRPC).",
    ["transport"],
)
UPSTREAM_ATTEMPTS = Counter(
    "gateway_upstream_attempts_total",
    "Calls made to providers, by provider deployment and outcome.",
    ["provider", "outcome"],
)


RETRIES = Counter(
    "gateway_retries_total",
    "Tries repeated on the same provider deployment, by the error that caused them.",
    ["reason"],
)
FALLBACKS = Counter(
    "gateway_fallbacks_total",
    "Calls that moved on to a fallback deployment, by the deployment fallen back to.",
    ["provider"],
)
CIRCUIT_STATE = Gauge(
    "gateway_circuit_state",
    "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
    ["provider"],
    multiprocess_mode="livemax",  # each worker has its own breakers: the worst one shows
)
CIRCUIT_TRANSITIONS = Counter(
    "gateway_circuit_transitions_total",
    "Circuit breaker state changes per deployment.",
    ["provider", "from_state", "to_state"],
)
ADMISSION_QUEUE_DEPTH = Gauge(
    "gateway_admission_queue_depth",
    "Calls waiting for an upstream slot.",
    multiprocess_mode="livesum",
)
ADMISSION_WAIT = Histogram(
    "gateway_admission_wait_seconds",
    "Time calls waited for an upstream slot (0 when admitted at once).",
    buckets=(0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ADMISSION_REJECTED = Counter(
    "gateway_admission_rejected_total",
    "Calls refused at once because the admission queue was full.",
)


CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups_total",
    "Cache lookups by backend and result (hit, miss, coalesced, bypass).",
    ["backend", "result"],
)
CACHE_ERRORS = Counter(
    "gateway_cache_errors_total",
    "Cache backend failures (each served as a miss), by backend and operation.",
    ["backend", "operation"],
)
CACHE_STORED_BYTES = Counter(
    "gateway_cache_stored_bytes_total",
    "Bytes written to the cache, by backend.",
    ["backend"],
)
CACHE_SAVED_USD = Counter(
    "gateway_cache_saved_usd_total",
    "What answers served from the cache would have cost, in USD.",
)


UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_latency_seconds",
    "Duration of each try against a provider (to the whole answer, or to a stream's end).",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gateway_time_to_first_token_seconds",
    "Time from the start of a streamed call to its first text sent to the caller.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "gateway_tokens_total",
    "Tokens billed by providers, by deployment, model and type (prompt, completion, cached, "
    "reasoning: the part of completion spent reasoning).",
    ["provider", "model", "type"],
)
COST = Counter(
    "gateway_cost_usd_total",
    "What provider answers cost, in USD, by deployment and model.",
    ["provider", "model"],
)
RATE_LIMIT_BACKEND_FAILURES = Counter(
    "gateway_rate_limit_backend_failures_total",
    "Rate-limit or budget checks that could not reach their backend (Redis).",
)
USAGE_PENDING = Gauge(
    "gateway_usage_pending_rows",
    "Usage ledger rows waiting to be written to the database.",
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total",
    "Calls refused for the caller's own limits, by what limited them.",
    ["limit"],
)


ROUTING_DECISIONS = Counter(
    "gateway_routing_decisions_total",
    "Calls routed through a model group, by group, strategy, the deployment put first and why "
    "(weighted, fewest_in_flight, fastest, unmeasured, explore, cheapest, most_headroom, pinned, "
    "tier:<name> for a complexity group).",
    ["group", "strategy", "provider", "reason"],
)
ROUTING_SKIPPED = Counter(
    "gateway_routing_skipped_total",
    "Group members left out of a call's order, by group, deployment and reason (circuit_open, "
    "at_capacity, context_window, lacks_<capability>).",
    ["group", "provider", "reason"],
)
ROUTING_COMPLEXITY_SCORE = Histogram(
    "gateway_routing_complexity_score",
    "Complexity scores of the calls to a complexity group (0 simple to 1 hard), by group.",
    ["group"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
DEPLOYMENT_IN_FLIGHT = Gauge(
    "gateway_deployment_in_flight",
    "Calls in flight to a group member, by deployment and model.",
    ["provider", "model"],
    multiprocess_mode="livesum",
)
DEPLOYMENT_LATENCY = Gauge(
    "gateway_deployment_recent_latency_seconds",
    "Recent (decayed average) latency of a group member, by deployment, model and kind "
    "(ttft: time to first token of streams; unary: whole answers).",
    ["provider", "model", "kind"],
    multiprocess_mode="livemostrecent",
)
DEPLOYMENT_CAPACITY_USED = Gauge(
    "gateway_deployment_capacity_used_ratio",
    "Share of a group member's capacity used as last seen, by deployment, model and limit "
    "(rpm, tpm, concurrent).",
    ["provider", "model", "limit"],
    multiprocess_mode="livemax",
)


@cache
def labeled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once: label sets here are bounded, so is this cache."""
    return metric.labels(*values)


def forget_worker(directory: str, pid: int) -> None:
    """Drop a worker that exited from the live gauges (its counters stay in the sums)."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]  # untyped upstream
