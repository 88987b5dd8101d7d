"""`GET /metrics`: the Prometheus text format, for one process or summed over its workers.

A gateway running as one process serves its own registry. Running as several workers, the
supervisor serves what every worker writes to the multiprocess directory (prometheus_client's
multiprocess mode), combined: counters and histograms summed, gauges as each one says.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

METRICS_PATH = "/metrics"


def metrics_app(workers_dir: str | None = None) -> web.Application:
    """The app serving `METRICS_PATH`: this process's metrics, or (`workers_dir` given, an
    existing directory) those of every worker writing there."""
    registry = REGISTRY
    if workers_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=workers_dir)  # type: ignore[no-untyped-call]  # untyped upstream

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics)
    return app
