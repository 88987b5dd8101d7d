"""Assembling the gateway's parts from settings: store, Redis, auth, limits, cache, core.

`runtime.server.Server` owns the lifetimes; this module only builds.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from cache.backend import CacheBackend
from cache.layer import ResponseCache
from cache.memory import MemoryCache
from cache.redis_backend import RedisCache
from gateway.config.settings import Settings, UpstreamSettings
from gateway.errors import ServiceUnavailableError
from gateway.pipeline.dispatch import Dispatcher
from gateway.pipeline.image_fetch import ImageFetcher
from gateway.pipeline.planning import PlanRetries, RoutedPlans
from gateway.pipeline.pricing import PriceTable
from gateway.pipeline.routing.capacity import CapacityGate, capacity_limiter
from gateway.pipeline.routing.features import IMAGES, REASONING, STRUCTURED_OUTPUT, TOOLS
from gateway.pipeline.routing.groups import Member
from gateway.pipeline.routing.router import Router, open_circuits, price_lookup
from gateway.pipeline.routing.state import DeploymentStates
from gateway.pipeline.service import CallPolicy, CompletionService, UsageSink
from gateway.runtime.redis import redis_client
from gateway.runtime.startup import StartupError as StartupError  # re-exported: raised from here
from gateway.runtime.startup import using_database
from gateway.store import repository
from gateway.store.engine import create_engine, database_url
from gateway.store.migrate import HEAD, current_revision, upgrade
from gateway.store.writer import UsageWriter
from gateway.tenancy.auth import Authenticator, JwtSettings, KeyGrant
from gateway.tenancy.limits import Budgets, MemoryBudgets, MemoryRateLimiter, RateLimiter
from gateway.tenancy.limits_redis import RedisBudgets, RedisRateLimiter
from gateway.tenancy.quotas import Quotas
from metrics import (
    ADMISSION_QUEUE_DEPTH,
    ADMISSION_WAIT,
    CIRCUIT_STATE,
    CIRCUIT_TRANSITIONS,
    RATE_LIMIT_BACKEND_FAILURES,
    USAGE_PENDING,
)
from providers.base import Capabilities
from providers.http.aiohttp_client import AiohttpClient
from providers.http.client import UpstreamClient
from providers.http.httptools_client import HttptoolsClient
from providers.registry import ProviderRegistry, RouteTable
from resilience.admission import Admission
from resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breakers, log_state_change
from resilience.retry import Backoff, RetryBudget

log = logging.getLogger("gateway")

#: How long an idle connection to a provider is kept for the next call.
UPSTREAM_KEEPALIVE_SECONDS = 60.0


def build_upstream_client(
    settings: UpstreamSettings, ssl_context: ssl.SSLContext | None = None
) -> UpstreamClient:
    """The HTTP client every provider adapter shares (make it inside the running loop); TLS
    with `ssl_context`, else `upstream_ssl_context(settings.ca_bundle)`."""
    context = ssl_context or upstream_ssl_context(settings.ca_bundle)
    if settings.client == "httptools":
        return HttptoolsClient(
            keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS,
            ssl_context=context,
            proxies=settings.proxies,
        )
    return AiohttpClient(
        keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS, ssl_context=context, proxies=settings.proxies
    )


def upstream_ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """The system's trust store (which honours SSL_CERT_FILE), plus `ca_bundle` when given."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


async def prepare_store(settings: Settings) -> bool:
    """Migrate the store, or check it is migrated; True when this call migrated it.

    Raises `DatabaseUnavailableError` when the database cannot be reached or used, and
    `StartupError` when its schema is behind and migrating is not ours to do.
    """
    url = database_url(settings.database_url)
    migrate = settings.auto_migrate
    if migrate is None:
        migrate = url.startswith("sqlite")  # the embedded default sets itself up
    with using_database(url):
        if migrate:
            await upgrade(url)
            return True
        revision = await current_revision(url)
    if revision != HEAD:
        raise StartupError(
            f"the database schema is at {revision or 'nothing'}, not {HEAD}: "
            "run `ai-gateway migrate` first"
        )
    return False


async def open_store(settings: Settings) -> tuple[AsyncEngine, UsageWriter]:
    """The store's engine, migrated (or checked), and a started usage writer."""
    await prepare_store(settings)
    engine = create_engine(database_url(settings.database_url))
    writer = UsageWriter(engine, spill_path=Path(settings.usage_spill_path))
    writer.start()
    USAGE_PENDING.set_function(lambda: writer.pending)
    return engine, writer


def build_authenticator(settings: Settings, engine: AsyncEngine) -> Authenticator:
    """Shared tokens, the admin token, store-backed API keys and (optionally) JWT."""

    async def lookup(secret: str) -> KeyGrant | None:
        try:
            info = await repository.find_api_key(engine, secret)
        except Exception as exc:  # the store is down: the caller gets UNAVAILABLE, not 401
            raise ServiceUnavailableError(
                "API keys cannot be checked right now; retry shortly", retry_after=1.0
            ) from exc
        if info is None:
            return None
        return KeyGrant(
            key_id=info.id,
            tenant=info.tenant_id,
            key_rpm=info.requests_per_minute,
            key_tpm=info.tokens_per_minute,
            key_budget_usd=info.monthly_budget_usd,
            tenant_rpm=info.tenant_requests_per_minute,
            tenant_tpm=info.tenant_tokens_per_minute,
            tenant_budget_usd=info.tenant_monthly_budget_usd,
        )

    jwt_settings = None
    if settings.jwt_secret or settings.jwt_jwks_url:
        jwt_settings = JwtSettings(
            secret=settings.jwt_secret,
            jwks_url=settings.jwt_jwks_url,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            tenant_claim=settings.jwt_tenant_claim,
        )
    return Authenticator(
        settings.auth_tokens,
        admin_tokens=settings.admin_tokens,
        keys=lookup,
        jwt_settings=jwt_settings,
        require_credential=settings.require_api_key,
        key_lookup_timeout=settings.key_lookup_timeout_seconds,
        key_max_stale=settings.key_max_stale_seconds,
    )


def build_redis(settings: Settings) -> Redis | None:
    """The process's one Redis client, shared by the cache, rate limits and budgets (None
    without `redis_url`); the caller closes it. Its own timeouts are the longest of their
    bounds: each of them bounds its operations by its own."""
    if not settings.redis_url:
        return None
    timeout = max(settings.cache_redis_timeout, settings.rate_limit_redis_timeout)
    return redis_client(settings.redis_url, timeout=timeout)


def build_quotas(settings: Settings, redis: Redis | None) -> Quotas:
    """Rate limits and budgets: in Redis (`redis`) when it is configured, else in this process."""
    limiter: RateLimiter
    budgets: Budgets
    if redis is not None:
        fail_open = settings.rate_limit_fail_open
        on_failure = RATE_LIMIT_BACKEND_FAILURES.inc
        timeout = settings.rate_limit_redis_timeout
        limiter = RedisRateLimiter(
            redis, timeout=timeout, fail_open=fail_open, on_failure=on_failure
        )
        budgets = RedisBudgets(redis, timeout=timeout, fail_open=fail_open, on_failure=on_failure)
    else:
        limiter, budgets = MemoryRateLimiter(), MemoryBudgets()
    return Quotas(
        limiter,
        budgets,
        default_rpm=settings.requests_per_minute,
        default_tpm=settings.tokens_per_minute,
    )


def build_cache(settings: Settings, redis: Redis | None) -> ResponseCache | None:
    """The response cache on the configured backend (None when it is off); Redis is `redis`."""
    backend: CacheBackend
    choice = settings.cache_backend
    if choice == "off":
        return None
    if redis is not None and choice in ("redis", "auto"):
        backend = RedisCache(
            redis, timeout=settings.cache_redis_timeout, prefix=settings.cache_key_prefix
        )
    else:
        backend = MemoryCache(settings.cache_max_bytes)
    return ResponseCache(backend, default_ttl=settings.cache_ttl)


def build_core(
    settings: Settings,
    registry: ProviderRegistry,
    cache: ResponseCache | None,
    *,
    authenticator: Authenticator | None = None,
    quotas: Quotas | None = None,
    usage: UsageSink | None = None,
    redis: Redis | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> CompletionService:
    """The core with its resilience parts (breakers, retries, admission) wired to metrics, and
    routing through model groups when the config has groups or routes (members' capacity in
    `redis` when there is one). Images are fetched with `ssl_context` (else a context made
    from the settings, as `upstream_ssl_context`)."""
    breakers = Breakers(
        fail_max=settings.circuit_breaker_fail_max,
        reset_timeout=settings.circuit_breaker_reset_timeout,
        on_state_change=_circuit_changed,
    )
    for deployment in registry.deployments:
        CIRCUIT_STATE.labels(deployment.settings.name).set(0)
    prices = PriceTable(settings.prices, settings.providers)
    routed, gate = build_routing(settings, registry, breakers, prices, redis) or (None, None)
    dispatcher = Dispatcher(
        breakers,
        backoff=Backoff(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds),
        budget=RetryBudget(settings.retry_budget_ratio),
        per_try_timeout=settings.per_try_timeout_seconds,
        gate=gate,
    )
    admission = Admission(
        settings.max_workers,
        settings.queue_size,
        on_wait=ADMISSION_WAIT.observe,
        on_depth_change=ADMISSION_QUEUE_DEPTH.set,
    )
    policy = CallPolicy(
        request_timeout=settings.request_timeout_seconds,
        stream_idle_timeout=settings.stream_idle_timeout_seconds,
        primary_retries=settings.primary_retries,
        fallback_retries=settings.fallback_retries,
        fallbacks=settings.fallbacks,
        trace_content=settings.trace_content,
    )
    return CompletionService(
        registry,
        authenticator or Authenticator(settings.auth_tokens),
        prices,
        dispatcher=dispatcher,
        breakers=breakers,
        admission=admission,
        policy=policy,
        cache=cache,
        quotas=quotas,
        usage=usage,
        images=ImageFetcher(
            settings.image_fetch,
            ssl_context=ssl_context or upstream_ssl_context(settings.upstream.ca_bundle),
        ),
        routed=routed,
    )


def build_routing(
    settings: Settings,
    registry: ProviderRegistry,
    breakers: Breakers,
    prices: PriceTable,
    redis: Redis | None,
) -> tuple[RoutedPlans, CapacityGate] | None:
    """Plans through the config's groups and routes, and the members' capacity gate; None when
    the config has neither, so calls to single-deployment models do no routing work at all."""
    config = settings.routing
    if not config.groups and not config.routes:
        return None
    providers = settings.providers
    states = DeploymentStates()
    router = Router(
        config,
        RouteTable(providers, settings.aliases),
        states,
        price_of=price_lookup(prices, providers),
        circuit_open=open_circuits(breakers),
        capabilities=_capabilities_of(registry),
    )
    limiter = capacity_limiter(
        config.groups.values(),
        redis=redis,
        timeout=settings.rate_limit_redis_timeout,
        on_failure=RATE_LIMIT_BACKEND_FAILURES.inc,
    )
    retries = PlanRetries(settings.primary_retries, settings.fallback_retries)
    return RoutedPlans(router, retries, settings.fallbacks), CapacityGate(limiter, states)


def _capabilities_of(registry: ProviderRegistry) -> Callable[[Member], frozenset[str]]:
    """What each member's model can do, in routing's terms, from its adapter's capabilities.

    An adapter's capabilities follow from the model's name, so each member's are worked out
    once, at its first routed call, rather than for every candidate of every call.
    """
    adapters = {d.settings.name: d.provider for d in registry.deployments}
    known: dict[tuple[str, str], frozenset[str]] = {}

    def capabilities(member: Member) -> frozenset[str]:
        key = (member.deployment, member.model)
        found = known.get(key)
        if found is None:
            declared = adapters[member.deployment].capabilities(member.model)
            found = known[key] = _routing_features(declared)
        return found

    return capabilities


def _routing_features(declared: Capabilities) -> frozenset[str]:
    """An adapter's `Capabilities` as the features routing matches requests against."""
    found = {TOOLS} if declared.tools else set()
    if declared.images or declared.image_urls:
        found.add(IMAGES)
    if declared.json_object or declared.json_schema:
        found.add(STRUCTURED_OUTPUT)
    if declared.reasoning_efforts:
        found.add(REASONING)
    return frozenset(found)


def _circuit_changed(deployment: str, old: str, new: str) -> None:
    log_state_change(deployment, old, new)
    CIRCUIT_STATE.labels(deployment).set(_CIRCUIT_GAUGE.get(new, 0))
    CIRCUIT_TRANSITIONS.labels(deployment, old, new).inc()


_CIRCUIT_GAUGE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
