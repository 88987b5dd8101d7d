"""Our implementations fit the protocols they stand in for: checked by mypy (`make type`), not run.

An `isinstance` check against a `runtime_checkable` protocol only sees attribute names; these
assignments are checked signature by signature, argument and return types included. A class
that drifts from its protocol fails `make type`, naming the member that no longer fits.
"""

from __future__ import annotations

from redis.asyncio import Redis

from cache.backend import CacheBackend
from cache.memory import MemoryCache
from cache.redis_backend import RedisCache
from gateway.tenancy.limits import Budgets, MemoryBudgets, MemoryRateLimiter, RateLimiter
from gateway.tenancy.limits_redis import RedisBudgets, RedisRateLimiter
from providers.anthropic import AnthropicProvider
from providers.azure_openai import AzureOpenAIProvider
from providers.base import Provider, ProviderFactory, ProviderSettings
from providers.cohere import CohereProvider
from providers.gemini import GeminiProvider
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.mock import MockProvider
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider

#: Every adapter class is a factory of `Provider`s: built from settings, a session and keys.
FACTORIES: tuple[ProviderFactory, ...] = (
    AnthropicProvider,
    AzureOpenAIProvider,
    CohereProvider,
    GeminiProvider,
    MockProvider,
    OllamaProvider,
    OpenAIProvider,
)


def providers(settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> list[Provider]:
    """Each adapter's instances are `Provider`s."""
    return [
        AnthropicProvider(settings, session, keys),
        AzureOpenAIProvider(settings, session, keys),
        CohereProvider(settings, session, keys),
        GeminiProvider(settings, session, keys),
        MockProvider(settings, session, keys),
        OllamaProvider(settings, session, keys),
        OpenAIProvider(settings, session, keys),
    ]


def quota_backends(client: Redis) -> tuple[list[RateLimiter], list[Budgets]]:
    """Rate limiters and budgets, in memory and in Redis."""
    limiters: list[RateLimiter] = [MemoryRateLimiter(), RedisRateLimiter(client, timeout=0.1)]
    budgets: list[Budgets] = [MemoryBudgets(), RedisBudgets(client, timeout=0.1)]
    return limiters, budgets


def cache_backends(client: Redis) -> list[CacheBackend]:
    """Cache backends, in memory and in Redis."""
    return [MemoryCache(1024), RedisCache(client, timeout=0.1)]
