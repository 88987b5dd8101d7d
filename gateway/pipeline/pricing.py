"""What a completion cost: a price table per model, applied to the usage the provider reported.

Prices are US dollars per million tokens: input, output, cached input (prompt tokens read from
the vendor's prompt cache) and cache write (prompt tokens written to it). Only a price known to
be the call's price is charged:

- the built-in list prices below are the vendors' prices for their own public APIs, so they
  apply only to a deployment whose base URL is its adapter's default (`SPEC.default_base_url`);
- the YAML config's `prices:` table applies to any deployment, and wins over a list price::

    prices:
      gpt-4o-mini: {input: 0.15, output: 0.60, cached_input: 0.075}
      vllm/*: {input: 0, output: 0}          # every model of the vllm deployment is free

Any other call costs 0: an OpenAI-compatible server behind `OPENAI_BASE_URL` is not billed at
OpenAI's list price. Such a deployment's listed models without a price are logged once at start
(others once at first use); local servers (Ollama, the mock) cost nothing without a word.

A price is found by "<deployment>/<model>", then "<deployment>/*", then the model name, then the
longest listed name the model starts with followed by "-" (so dated snapshots such as
"gpt-4o-mini-2024-07-18" take "gpt-4o-mini").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from providers.base import ProviderSettings
from providers.registry import ADAPTERS, Route
from providers.types import Usage

log = logging.getLogger("gateway.pricing")

PER_TOKENS = 1_000_000
FREE_KINDS = frozenset({"mock", "ollama"})
#: Lookups remembered per (deployment, model); answered model names come from upstreams, so
#: the memory is bounded (forgotten whole when full).
MAX_REMEMBERED_LOOKUPS = 1024
#: The fields of a price in the config file.
PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")
#: Where a price comes from (as `ProviderStatus` shows it).
LIST: Final = "list"
CONFIG: Final = "config"
NONE: Final = "none"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; cached input and cache writes default to the input price."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        """The cost of `usage` in USD."""
        cached = usage.cached_tokens
        written = usage.cache_creation_tokens
        uncached = max(usage.prompt_tokens - cached - written, 0)
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        total = (
            uncached * self.input
            + cached * cached_price
            + written * write_price
            + usage.completion_tokens * self.output
        )
        return total / PER_TOKENS


def _p(
    input_: float, output: float, cached: float | None = None, write: float | None = None
) -> Price:
    return Price(input=input_, output=output, cached_input=cached, cache_write=write)


#: Public list prices (USD per million tokens), standard tier, short context.
DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "o3": _p(2.00, 8.00, 0.50),
    "o4-mini": _p(1.10, 4.40, 0.275),
    # Anthropic (cache reads 0.1x input, 5-minute cache writes 1.25x input)
    "claude-opus-4-5": _p(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-1": _p(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4": _p(15.00, 75.00, 1.50, 18.75),
    "claude-sonnet-4-5": _p(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4": _p(3.00, 15.00, 0.30, 3.75),
    "claude-3-7-sonnet": _p(3.00, 15.00, 0.30, 3.75),
    "claude-haiku-4-5": _p(1.00, 5.00, 0.10, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08, 1.00),
    # Google Gemini (prompts up to 200k tokens)
    "gemini-2.5-pro": _p(1.25, 10.00, 0.31),
    "gemini-2.5-flash": _p(0.30, 2.50, 0.075),
    "gemini-2.5-flash-lite": _p(0.10, 0.40, 0.025),
    "gemini-2.0-flash": _p(0.10, 0.40, 0.025),
    # Cohere
    "command-a-03-2025": _p(2.50, 10.00),
    "command-r-plus-08-2024": _p(2.50, 10.00),
    "command-r-08-2024": _p(0.15, 0.60),
    "command-r7b-12-2024": _p(0.0375, 0.15),
    # Embedding models: input tokens only
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    "text-embedding-ada-002": _p(0.10, 0.0),
    "gemini-embedding-001": _p(0.15, 0.0),
    "embed-v4.0": _p(0.12, 0.0),
    "embed-english-v3.0": _p(0.10, 0.0),
    "embed-multilingual-v3.0": _p(0.10, 0.0),
    "embed-english-light-v3.0": _p(0.10, 0.0),
    "embed-multilingual-light-v3.0": _p(0.10, 0.0),
}


def calls_vendor_api(deployment: ProviderSettings) -> bool:
    """Whether the deployment calls its vendor's public API, where the list prices are the price."""
    spec = ADAPTERS.get(deployment.kind)
    return (
        spec is not None
        and deployment.kind not in FREE_KINDS
        and bool(spec.default_base_url)
        and deployment.base_url.rstrip("/") == spec.default_base_url.rstrip("/")
    )


class PriceTable:
    """Finds the price of a deployment's model, and where it comes from, and costs completions.

    `configured` is the config's `prices:`; the list prices apply to the `deployments` that call
    their vendor's public API. Building the table warns about listed models without a price.
    """

    def __init__(
        self,
        configured: Mapping[str, Price],
        deployments: Iterable[ProviderSettings] = (),
        *,
        list_prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        deployments = tuple(deployments)
        self._configured = dict(configured)
        self._with_list = {**list_prices, **configured}
        self._list_priced = frozenset(d.name for d in deployments if calls_vendor_api(d))
        # Longest names first, so "gpt-4o-mini-…" matches "gpt-4o-mini" before "gpt-4o".
        self._configured_by_length = sorted(self._configured, key=len, reverse=True)
        self._with_list_by_length = sorted(self._with_list, key=len, reverse=True)
        self._warned: set[tuple[str, str]] = set()
        self._found: dict[tuple[str, str], tuple[Price | None, str]] = {}
        for deployment in deployments:
            self._warn_unpriced(deployment)

    def lookup(self, deployment: str, model: str) -> Price | None:
        """The price for `model` on `deployment`, or None when none is known."""
        return self.priced(deployment, model)[0]

    def priced(self, deployment: str, model: str) -> tuple[Price | None, str]:
        """The price for `model` on `deployment` and its source: "list", "config" or "none"."""
        try:
            return self._found[deployment, model]
        except KeyError:
            pass
        if len(self._found) >= MAX_REMEMBERED_LOOKUPS:
            self._found.clear()
        found = self._found[deployment, model] = self._search(deployment, model)
        return found

    def source(self, deployment: str) -> str:
        """Where the deployment's models without a price of their own take one from."""
        if f"{deployment}/*" in self._configured:
            return CONFIG
        return LIST if deployment in self._list_priced else NONE

    def _search(self, deployment: str, model: str) -> tuple[Price | None, str]:
        if deployment in self._list_priced:
            prices, by_length = self._with_list, self._with_list_by_length
        else:
            prices, by_length = self._configured, self._configured_by_length
        for key in (f"{deployment}/{model}", f"{deployment}/*", model):
            if key in prices:
                return prices[key], CONFIG if key in self._configured else LIST
        for name in by_length:
            if model.startswith(name + "-"):
                return prices[name], CONFIG if name in self._configured else LIST
        return None, NONE

    def cost(self, deployment: str, kind: str, models: tuple[str, ...], usage: Usage) -> float:
        """USD for `usage`, priced by the first of `models` with a price (0 when none has)."""
        for model in models:
            price = self.lookup(deployment, model)
            if price is not None:
                return price.cost(usage)
        if kind not in FREE_KINDS:
            self._warn_once(deployment, models[0] if models else "")
        return 0.0

    def _warn_unpriced(self, deployment: ProviderSettings) -> None:
        """One line at start for a deployment's listed models that have no price."""
        name = deployment.name
        unpriced = [m for m in deployment.models if self.lookup(name, m) is None]
        if deployment.kind in FREE_KINDS or not unpriced:
            return
        self._warned.update((name, model) for model in unpriced)
        log.warning(
            "no price for these models; their calls cost 0 (price them under 'prices:' in the "
            f"config){_why_no_list_price(deployment)}",
            extra={"provider": name, "models": unpriced},
        )

    def _warn_once(self, deployment: str, model: str) -> None:
        if (deployment, model) not in self._warned:
            self._warned.add((deployment, model))
            log.warning(
                "no price for model; its cost counts as 0 (add it under 'prices:' in the config)",
                extra={"provider": deployment, "model": model},
            )


def cost_of(prices: PriceTable, route: Route, answered_model: str, usage: Usage | None) -> float:
    """USD for a call's `usage` on `route`, priced by the model that answered, else the one
    asked for (0 without usage)."""
    if usage is None:
        return 0.0
    models = (answered_model, route.model) if answered_model else (route.model,)
    return prices.cost(route.provider.name, route.provider.kind, models, usage)


def _why_no_list_price(deployment: ProviderSettings) -> str:
    if calls_vendor_api(deployment):
        return ""
    return (
        "; list prices apply only to a deployment calling the vendor's public API, "
        "and this one's base URL is another"
    )
