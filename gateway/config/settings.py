"""Settings: loaded once at start-up from the environment and an optional YAML file.

Nothing else in the gateway reads `os.environ`. Invalid configuration raises `ConfigError`
naming the setting; the CLI prints it as one line and exits with status 2.

The YAML file (`GATEWAY_CONFIG`, read by `gateway.config.file`) adds provider deployments, model
aliases, prices, fallbacks, model groups and conditional routes; this module reads the
environment and puts the two together.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.checks import ConfigError as ConfigError  # re-exported: callers catch it here
from gateway.config.checks import check_references, check_routing, check_url
from gateway.config.file import ConfigFile
from gateway.pipeline.image_fetch import (
    DEFAULT_MAX_BYTES as DEFAULT_IMAGE_FETCH_MAX_BYTES,
)
from gateway.pipeline.image_fetch import (
    DEFAULT_TIMEOUT_SECONDS as DEFAULT_IMAGE_FETCH_TIMEOUT_SECONDS,
)
from gateway.pipeline.image_fetch import ImageFetchPolicy
from gateway.pipeline.image_guard import AddressPolicy
from gateway.pipeline.pricing import Price
from gateway.pipeline.routing.groups import RoutingConfig
from gateway.tenancy.key_grants import (
    DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS,
    DEFAULT_KEY_MAX_STALE_SECONDS,
)
from providers.base import AdapterSpec, ProviderSettings
from providers.http.proxies import ProxySettings
from providers.mock import SPEC as MOCK_SPEC
from providers.registry import ADAPTERS

DEFAULT_BIND_HOST = "0.0.0.0"
DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8080
DEFAULT_METRICS_PORT = 9090
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20.0
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_HEADER_READ_TIMEOUT_SECONDS = 10.0
DEFAULT_BODY_READ_TIMEOUT_SECONDS = 30.0
DEFAULT_REQUEST_TIMEOUT_SECONDS = 300.0
DEFAULT_KEY_COOLDOWN_SECONDS = 60.0
DEFAULT_CIRCUIT_BREAKER_FAIL_MAX = 5
DEFAULT_CIRCUIT_BREAKER_RESET_TIMEOUT = 60.0
DEFAULT_RETRY_BACKOFF_BASE_SECONDS = 0.2
DEFAULT_RETRY_BACKOFF_CAP_SECONDS = 5.0
DEFAULT_PRIMARY_RETRIES = 2
DEFAULT_FALLBACK_RETRIES = 1
DEFAULT_RETRY_BUDGET_RATIO = 0.2
DEFAULT_PER_TRY_TIMEOUT_SECONDS = 60.0
DEFAULT_STREAM_IDLE_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_WORKERS = 512
DEFAULT_QUEUE_SIZE = 1024
DEFAULT_CACHE_TTL = 3600.0
DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_CACHE_REDIS_TIMEOUT_MS = 50.0
DEFAULT_RATE_LIMIT_REDIS_TIMEOUT_MS = 100.0
DEFAULT_CACHE_KEY_PREFIX = "aigw:cache:"
DEFAULT_DATABASE_URL = "sqlite:///ai-gateway.db"
DEFAULT_USAGE_SPILL_PATH = "ai-gateway-usage.spill.jsonl"
CACHE_BACKENDS = ("auto", "memory", "redis", "off")
UPSTREAM_HTTP_CLIENTS = ("aiohttp", "httptools")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """Connection management of the gRPC server (seconds, bytes)."""

    max_connection_age: float = 300.0
    max_connection_age_grace: float = 30.0
    keepalive_time: float = 60.0
    keepalive_timeout: float = 20.0
    min_ping_interval: float = 10.0
    max_send_message_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """How the gateway reaches providers over HTTP."""

    #: The HTTP client implementation: the hand-written "httptools" (less CPU per call) or
    #: aiohttp's client ("aiohttp").
    client: str = "httptools"
    #: PEM file of CA certificates trusted for provider HTTPS, on top of the system's ("": none).
    ca_bundle: str = ""
    #: HTTP_PROXY / HTTPS_PROXY / NO_PROXY (lowercase names win, as with curl and urllib).
    proxies: ProxySettings = field(default_factory=lambda: ProxySettings())


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway is configured with."""

    bind_host: str = DEFAULT_BIND_HOST
    #: Worker processes sharing the ports (SO_REUSEPORT); 1 serves from this process alone;
    #: 0 (WORKERS unset): chosen at start by `gateway.workers.plan_workers`.
    workers: int = 1
    grpc_port: int = DEFAULT_GRPC_PORT
    http_port: int = DEFAULT_HTTP_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    log_level: str = DEFAULT_LOG_LEVEL
    #: Level of other libraries' loggers; "": WARNING, or `log_level` when that is quieter.
    log_level_third_party: str = ""
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: A request's head (HTTP) must arrive within this from its first byte (or the connection's
    #: opening); its body (HTTP) or message (gRPC) within `body_read_timeout_seconds` after.
    header_read_timeout_seconds: float = DEFAULT_HEADER_READ_TIMEOUT_SECONDS
    body_read_timeout_seconds: float = DEFAULT_BODY_READ_TIMEOUT_SECONDS
    #: gRPC behind a load balancer: connections are closed (gracefully) after this age, so
    #: long-lived clients rebalance onto new replicas; keepalive pings find dead peers.
    grpc: GrpcSettings = field(default_factory=lambda: GrpcSettings())
    upstream: UpstreamSettings = field(default_factory=lambda: UpstreamSettings())
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    #: How long a key answered with 401/403 (or 429 without retry-after) rests.
    key_cooldown_seconds: float = DEFAULT_KEY_COOLDOWN_SECONDS
    circuit_breaker_fail_max: int = DEFAULT_CIRCUIT_BREAKER_FAIL_MAX
    circuit_breaker_reset_timeout: float = DEFAULT_CIRCUIT_BREAKER_RESET_TIMEOUT
    retry_backoff_base_seconds: float = DEFAULT_RETRY_BACKOFF_BASE_SECONDS
    retry_backoff_cap_seconds: float = DEFAULT_RETRY_BACKOFF_CAP_SECONDS
    primary_retries: int = DEFAULT_PRIMARY_RETRIES
    fallback_retries: int = DEFAULT_FALLBACK_RETRIES
    retry_budget_ratio: float = DEFAULT_RETRY_BUDGET_RATIO
    per_try_timeout_seconds: float = DEFAULT_PER_TRY_TIMEOUT_SECONDS
    stream_idle_timeout_seconds: float = DEFAULT_STREAM_IDLE_TIMEOUT_SECONDS
    #: Upstream calls in flight at once (0: no limit), and calls that may wait for one.
    max_workers: int = DEFAULT_MAX_WORKERS
    queue_size: int = DEFAULT_QUEUE_SIZE
    #: Shared state: the cache (and, later, limits) live in Redis when it is set.
    redis_url: str = field(default="", repr=False)
    #: "auto": Redis when `redis_url` is set, else memory; or "memory", "redis", "off".
    cache_backend: str = "auto"
    cache_ttl: float = DEFAULT_CACHE_TTL
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    cache_redis_timeout: float = DEFAULT_CACHE_REDIS_TIMEOUT_MS / 1000
    #: Prefix of every cache key in Redis (separates environments sharing one Redis).
    cache_key_prefix: str = DEFAULT_CACHE_KEY_PREFIX
    #: Tracing: off with the standard OTEL_SDK_DISABLED; spans exported when an OTLP endpoint
    #: is set (the SDK reads the other OTEL_* variables itself).
    tracing_enabled: bool = True
    tracing_export: bool = False
    #: Put prompts and completions on spans (GATEWAY_TRACE_CONTENT); off by default.
    trace_content: bool = False
    #: How https images are fetched for vendors that take images only as bytes (IMAGE_FETCH_*).
    image_fetch: ImageFetchPolicy = field(default_factory=ImageFetchPolicy)
    #: The usage store: a SQLite file by default, PostgreSQL in production.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    #: Apply migrations at start-up (default: yes for SQLite; run `ai-gateway migrate` else).
    auto_migrate: bool | None = None
    usage_spill_path: str = DEFAULT_USAGE_SPILL_PATH
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)
    require_api_key: bool = False
    #: Bound on one API key lookup in the store, and how long after the store last answered
    #: its answer still holds while the store fails (stale-if-error; 0: never).
    key_lookup_timeout_seconds: float = DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS
    key_max_stale_seconds: float = DEFAULT_KEY_MAX_STALE_SECONDS
    jwt_secret: str = field(default="", repr=False)
    jwt_jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_tenant_claim: str = "tenant"
    #: Default limits per tenant (0: none); keys and tenants may set their own.
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    #: When Redis cannot be reached: admit (True, counted) or refuse with UNAVAILABLE.
    rate_limit_fail_open: bool = True
    #: How long a rate-limit or budget check may wait for Redis before it counts as a failure.
    rate_limit_redis_timeout: float = DEFAULT_RATE_LIMIT_REDIS_TIMEOUT_MS / 1000
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    providers: tuple[ProviderSettings, ...] = ()
    #: Public model name -> "provider/model" or a model name another rule resolves.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: The YAML's prices: model (or "deployment/model", "deployment/*") -> price. They apply to
    #: every deployment; the built-in list prices only to those calling the vendor's public API.
    prices: Mapping[str, Price] = field(default_factory=dict)
    #: Requested model -> models to fall back to, in order.
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Model groups (public name -> deployments and strategy) and conditional routes.
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    #: OpenAI-compatible routes: drop a field the deployment cannot honour (and name it in
    #: `x-gateway-dropped-params`) instead of refusing the request with a 400.
    drop_unsupported_params: bool = False


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build `Settings` from an environment mapping (and the YAML file it may name)."""
    env = _Env(environ)
    file_config = ConfigFile.load(environ)
    providers = _providers(env, file_config)
    aliases, fallbacks, prices = (
        file_config.aliases(),
        file_config.fallbacks(),
        file_config.prices(),
    )
    routing = file_config.routing()
    # Calls route through model groups, so aliases and fallbacks may name them.
    check_references(providers, aliases, fallbacks, prices, routing.groups.keys())
    check_routing(routing, providers, aliases)
    return Settings(
        bind_host=env.text("BIND_HOST", DEFAULT_BIND_HOST),
        workers=env.integer("WORKERS", 0, low=1),
        grpc_port=env.port("GRPC_PORT", DEFAULT_GRPC_PORT),
        http_port=env.port("HTTP_PORT", DEFAULT_HTTP_PORT),
        metrics_port=env.port("METRICS_PORT", DEFAULT_METRICS_PORT),
        log_level=env.choice("LOG_LEVEL", DEFAULT_LOG_LEVEL, LOG_LEVELS),
        log_level_third_party=env.choice("LOG_LEVEL_THIRD_PARTY", "WARNING", LOG_LEVELS)
        if env.raw("LOG_LEVEL_THIRD_PARTY")
        else "",
        shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE_SECONDS),
        max_request_bytes=int(env.number("MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, low=1)),
        header_read_timeout_seconds=env.number(
            "HEADER_READ_TIMEOUT_SECONDS", DEFAULT_HEADER_READ_TIMEOUT_SECONDS, low=0.001
        ),
        body_read_timeout_seconds=env.number(
            "BODY_READ_TIMEOUT_SECONDS", DEFAULT_BODY_READ_TIMEOUT_SECONDS, low=0.001
        ),
        grpc=_grpc_settings(env),
        upstream=_upstream_settings(env),
        request_timeout_seconds=env.number(
            "REQUEST_TIMEOUT_SECONDS", DEFAULT_REQUEST_TIMEOUT_SECONDS, low=0.001
        ),
        key_cooldown_seconds=env.number("KEY_COOLDOWN_SECONDS", DEFAULT_KEY_COOLDOWN_SECONDS),
        circuit_breaker_fail_max=env.integer(
            "CIRCUIT_BREAKER_FAIL_MAX", DEFAULT_CIRCUIT_BREAKER_FAIL_MAX, low=1
        ),
        circuit_breaker_reset_timeout=env.number(
            "CIRCUIT_BREAKER_RESET_TIMEOUT", DEFAULT_CIRCUIT_BREAKER_RESET_TIMEOUT, low=0.001
        ),
        retry_backoff_base_seconds=env.number(
            "RETRY_BACKOFF_BASE_SECONDS", DEFAULT_RETRY_BACKOFF_BASE_SECONDS
        ),
        retry_backoff_cap_seconds=env.number(
            "RETRY_BACKOFF_CAP_SECONDS", DEFAULT_RETRY_BACKOFF_CAP_SECONDS
        ),
        primary_retries=env.integer("PRIMARY_RETRIES", DEFAULT_PRIMARY_RETRIES),
        fallback_retries=env.integer("FALLBACK_RETRIES", DEFAULT_FALLBACK_RETRIES),
        retry_budget_ratio=env.number("RETRY_BUDGET_RATIO", DEFAULT_RETRY_BUDGET_RATIO),
        per_try_timeout_seconds=env.number(
            "PER_TRY_TIMEOUT_SECONDS", DEFAULT_PER_TRY_TIMEOUT_SECONDS, low=0.001
        ),
        stream_idle_timeout_seconds=env.number(
            "STREAM_IDLE_TIMEOUT_SECONDS", DEFAULT_STREAM_IDLE_TIMEOUT_SECONDS, low=0.001
        ),
        max_workers=env.integer("MAX_WORKERS", DEFAULT_MAX_WORKERS),
        queue_size=env.integer("QUEUE_SIZE", DEFAULT_QUEUE_SIZE),
        redis_url=_redis_url(env),
        cache_backend=_cache_backend(env),
        cache_ttl=env.number("CACHE_TTL", DEFAULT_CACHE_TTL, low=1),
        cache_max_bytes=env.integer("CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES, low=1),
        cache_redis_timeout=env.number(
            "CACHE_REDIS_TIMEOUT_MS", DEFAULT_CACHE_REDIS_TIMEOUT_MS, low=1
        )
        / 1000,
        cache_key_prefix=env.text("CACHE_KEY_PREFIX", DEFAULT_CACHE_KEY_PREFIX),
        tracing_enabled=not env.flag("OTEL_SDK_DISABLED"),
        tracing_export=bool(
            env.raw("OTEL_EXPORTER_OTLP_ENDPOINT") or env.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        ),
        trace_content=env.flag("GATEWAY_TRACE_CONTENT"),
        image_fetch=_image_fetch(env),
        database_url=_database_url(env),
        auto_migrate=env.flag("AUTO_MIGRATE") if env.raw("AUTO_MIGRATE") else None,
        usage_spill_path=env.text("USAGE_SPILL_PATH", DEFAULT_USAGE_SPILL_PATH),
        admin_tokens=env.tokens("ADMIN_TOKEN"),
        require_api_key=env.flag("REQUIRE_API_KEY"),
        key_lookup_timeout_seconds=env.number(
            "KEY_LOOKUP_TIMEOUT_SECONDS", DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS, low=0.001
        ),
        key_max_stale_seconds=env.number("KEY_MAX_STALE_SECONDS", DEFAULT_KEY_MAX_STALE_SECONDS),
        jwt_secret=env.raw("JWT_SECRET") or "",
        jwt_jwks_url=env.raw("JWT_JWKS_URL") or "",
        jwt_issuer=env.raw("JWT_ISSUER") or "",
        jwt_audience=env.raw("JWT_AUDIENCE") or "",
        jwt_tenant_claim=env.text("JWT_TENANT_CLAIM", "tenant"),
        requests_per_minute=env.integer("REQUESTS_PER_MINUTE", 0),
        tokens_per_minute=env.integer("TOKENS_PER_MINUTE", 0),
        rate_limit_fail_open=not env.raw("RATE_LIMIT_FAIL_OPEN")
        or env.flag("RATE_LIMIT_FAIL_OPEN"),
        rate_limit_redis_timeout=env.number(
            "RATE_LIMIT_REDIS_TIMEOUT_MS", DEFAULT_RATE_LIMIT_REDIS_TIMEOUT_MS, low=1
        )
        / 1000,
        auth_tokens=env.tokens("INTERNAL_AUTH_TOKEN"),
        providers=providers,
        aliases=aliases,
        prices=prices,
        fallbacks=fallbacks,
        routing=routing,
        drop_unsupported_params=env.flag("DROP_UNSUPPORTED_PARAMS"),
    )


class _Env:
    """Typed reads of environment variables, each failure naming its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return value.strip() if value is not None and value.strip() else None

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def port(self, name: str, default: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdecimal()) or not 0 <= int(value) <= 65535:
            raise ConfigError(name, f"must be a port number from 0 to 65535, got {value!r}")
        return int(value)

    def number(self, name: str, default: float, *, low: float = 0.0) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
        if not number >= low or number == float("inf"):
            raise ConfigError(name, f"must be a finite number of at least {low:g}, got {value!r}")
        return number

    def integer(self, name: str, default: int, *, low: int = 0) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdecimal()) or int(value) < low:
            raise ConfigError(name, f"must be a whole number of at least {low}, got {value!r}")
        return int(value)

    def flag(self, name: str) -> bool:
        value = (self.raw(name) or "false").lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(name, f"must be true or false, got {value!r}")
        return value in ("true", "1", "yes")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.raw(name) or default).upper()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def tokens(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        tokens = tuple(t.strip() for t in value.split(",") if t.strip())
        if not tokens:
            raise ConfigError(name, "is set but holds no token")
        return tokens


def _providers(env: _Env, file_config: ConfigFile) -> tuple[ProviderSettings, ...]:
    """The deployments from the environment and the file; the built-in mock only when wanted.

    The mock serves when no real provider is configured (the embedded defaults), or when
    `MOCK_ENABLED=true`; a deployment of kind mock in the file is always kept.
    """
    providers = {}
    for spec in ADAPTERS.values():
        deployment = _env_provider(env, spec) if spec.env_prefix and not spec.built_in else None
        if deployment is not None:
            providers[spec.kind] = deployment
    providers.update(file_config.providers())
    real = any(p.kind != MOCK_SPEC.kind for p in providers.values())
    enabled = env.flag("MOCK_ENABLED") if env.raw("MOCK_ENABLED") else not real
    mock = _env_provider(env, MOCK_SPEC)
    if enabled and mock is not None:
        providers.setdefault(mock.name, mock)  # a file deployment of that name wins
    if not providers:
        raise ConfigError(
            "MOCK_ENABLED",
            "is false and no provider is configured: set a provider's API key or base URL, "
            "or add a deployment to the GATEWAY_CONFIG file",
        )
    return tuple(sorted(providers.values(), key=lambda p: p.name))


def _env_provider(env: _Env, spec: AdapterSpec) -> ProviderSettings | None:
    """The kind's deployment when `<PREFIX>_API_KEY` or `<PREFIX>_BASE_URL` is set (or built in)."""
    prefix = spec.env_prefix
    keys = env.tokens(f"{prefix}_API_KEY")
    base_url = env.raw(f"{prefix}_BASE_URL")
    if not (spec.built_in or keys or base_url):
        return None
    base_url = base_url or spec.default_base_url
    if not base_url and not spec.built_in:
        raise ConfigError(f"{prefix}_BASE_URL", f"required to use {spec.kind}")
    models = env.raw(f"{prefix}_MODELS")
    options: dict[str, object] = {}
    for option, suffix in spec.env_options.items():
        name = f"{prefix}_{suffix}"
        if env.raw(name) is not None:
            numeric = option in spec.number_options
            options[option] = env.number(name, 0.0) if numeric else env.raw(name)
    return ProviderSettings(
        name=spec.kind,
        kind=spec.kind,
        models=_split(models) if models else spec.default_models,
        base_url=check_url(f"{prefix}_BASE_URL", base_url) if base_url else "",
        api_keys=keys,
        options=options,
    )


def _database_url(env: _Env) -> str:
    url = env.raw("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not re.match(r"^(sqlite|postgresql|postgres)(\+\w+)?://", url):
        raise ConfigError("DATABASE_URL", "must be a sqlite:// or postgresql:// URL")
    return url


def _redis_url(env: _Env) -> str:
    url = env.raw("REDIS_URL") or ""
    if url and not re.match(r"^(redis|rediss|unix)://", url):
        raise ConfigError("REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
    return url


def _cache_backend(env: _Env) -> str:
    backend = (env.raw("CACHE_BACKEND") or "auto").lower()
    if backend not in CACHE_BACKENDS:
        raise ConfigError("CACHE_BACKEND", f"must be one of {', '.join(CACHE_BACKENDS)}")
    if backend == "redis" and not env.raw("REDIS_URL"):
        raise ConfigError("CACHE_BACKEND", "is redis but REDIS_URL is not set")
    return backend


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _grpc_settings(env: _Env) -> GrpcSettings:
    defaults = GrpcSettings()
    return GrpcSettings(
        max_connection_age=env.number(
            "GRPC_MAX_CONNECTION_AGE_SECONDS", defaults.max_connection_age, low=0.1
        ),
        max_connection_age_grace=env.number(
            "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", defaults.max_connection_age_grace
        ),
        keepalive_time=env.number("GRPC_KEEPALIVE_TIME_SECONDS", defaults.keepalive_time, low=1),
        keepalive_timeout=env.number(
            "GRPC_KEEPALIVE_TIMEOUT_SECONDS", defaults.keepalive_timeout, low=1
        ),
        min_ping_interval=env.number(
            "GRPC_MIN_PING_INTERVAL_SECONDS", defaults.min_ping_interval, low=0.1
        ),
        max_send_message_bytes=env.integer(
            "GRPC_MAX_SEND_MESSAGE_BYTES", defaults.max_send_message_bytes, low=1024
        ),
    )


def _image_fetch(env: _Env) -> ImageFetchPolicy:
    try:
        addresses = AddressPolicy.from_entries(env.tokens("IMAGE_FETCH_ALLOW"))
    except ValueError as exc:
        raise ConfigError("IMAGE_FETCH_ALLOW", str(exc)) from None
    return ImageFetchPolicy(
        max_bytes=env.integer("IMAGE_FETCH_MAX_BYTES", DEFAULT_IMAGE_FETCH_MAX_BYTES, low=1),
        timeout=env.number(
            "IMAGE_FETCH_TIMEOUT_SECONDS", DEFAULT_IMAGE_FETCH_TIMEOUT_SECONDS, low=0.001
        ),
        addresses=addresses,
    )


def _upstream_settings(env: _Env) -> UpstreamSettings:
    ca_bundle = env.raw("UPSTREAM_CA_BUNDLE") or ""
    if ca_bundle:
        try:
            ssl.create_default_context().load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "UPSTREAM_CA_BUNDLE", f"cannot be read as PEM certificates ({type(exc).__name__})"
            ) from None
    client = (env.raw("UPSTREAM_HTTP_CLIENT") or "httptools").lower()
    if client not in UPSTREAM_HTTP_CLIENTS:
        raise ConfigError(
            "UPSTREAM_HTTP_CLIENT", f"must be one of {', '.join(UPSTREAM_HTTP_CLIENTS)}"
        )
    return UpstreamSettings(
        client=client,
        ca_bundle=ca_bundle,
        proxies=ProxySettings(
            http=_proxy_url(env, "http_proxy"),
            https=_proxy_url(env, "https_proxy"),
            no_proxy=env.raw("no_proxy") or env.raw("NO_PROXY") or "",
        ),
    )


def _proxy_url(env: _Env, name: str) -> str:
    """A proxy variable (lowercase first), checked; the message never repeats it (credentials)."""
    chosen = name if env.raw(name) else name.upper()
    url = env.raw(chosen) or ""
    if url and not re.match(r"^http://[^/?#]+/?$", url):
        raise ConfigError(chosen, "must be an http:// proxy URL (http://[user:password@]host:port)")
    return url
