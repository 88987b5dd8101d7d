"""Prometheus metrics: the only place metric names are defined.

Labels are bounded sets (RPC, transport, status code, provider, model): never user ids or prompts.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

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
)
UPSTREAM_ATTEMPTS = Counter(
    "gateway_upstream_attempts_total",
    "Calls made to providers, by provider deployment and outcome.",
    ["provider", "outcome"],
)


def render_latest() -> tuple[bytes, str]:
    """The current metrics in Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
