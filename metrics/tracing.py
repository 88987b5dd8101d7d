"""OpenTelemetry tracing: set up once per process, from the standard `OTEL_*` variables.

The SDK reads `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_RESOURCE_ATTRIBUTES` and the
exporter's `OTEL_EXPORTER_OTLP_*` itself. The SDK is installed only when an OTLP endpoint is
configured; otherwise the API's no-op tracer stays, which still carries a caller's W3C trace
context through the gateway (to the upstream call and into the logs). Prompts and completions
are never put on spans unless `GATEWAY_TRACE_CONTENT` is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from opentelemetry import baggage, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TRACER_NAME = "ai-gateway"
SERVICE_NAME = "ai-gateway"

#: Our adapter kinds as OpenTelemetry GenAI `gen_ai.system` values.
GEN_AI_SYSTEMS: Mapping[str, str] = {
    "openai": "openai",
    "azure_openai": "az.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "ollama": "ollama",
    "mock": "mock",
}


def configure_tracing(*, export: bool) -> None:
    """Install the process's tracer provider (spans exported over OTLP when `export`)."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if export:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


_recorded = False


def spans_recorded() -> bool:
    """Whether a real tracer provider (the SDK's) is installed in this process.

    Once one is installed it stays, so a yes is remembered; a no is asked again (cheaply).
    """
    global _recorded
    if not _recorded:
        provider = trace.get_tracer_provider()
        _recorded = not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    return _recorded


@cache
def tracer() -> trace.Tracer:
    """The gateway's tracer (the global provider's; a no-op one until configured).

    Made once, not per span: until a provider is installed it is the API's proxy, which
    follows the provider installed later.
    """
    return trace.get_tracer(TRACER_NAME)


def inject_headers(span: trace.Span) -> tuple[tuple[str, str], ...]:
    """W3C trace-context headers that make `span` the parent of the upstream's spans.

    None when there is nothing to carry (no trace context and no baggage: no SDK and a caller
    that sent none), without running the propagators.
    """
    if not span.get_span_context().is_valid and not baggage.get_all():
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return tuple(carrier.items())
