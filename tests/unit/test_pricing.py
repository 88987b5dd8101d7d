"""Costs come from the price table applied to reported usage; unknown prices cost 0, once warned."""

from __future__ import annotations

import logging

import pytest

from gateway.pipeline.pricing import DEFAULT_PRICES, Price, PriceTable
from providers.base import ProviderSettings
from providers.openai import SPEC as OPENAI_SPEC
from providers.types import Usage

TABLE = PriceTable(
    {
        **DEFAULT_PRICES,
        "vllm/*": Price(0.0, 0.0),
        "openai/special": Price(1.0, 1.0),
    }
)


def test_uncached_cached_and_output_tokens_are_priced_separately() -> None:
    price = Price(input=2.0, output=10.0, cached_input=0.5)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=400_000)
    # 600k uncached x $2 + 400k cached x $0.5 + 100k out x $10
    assert price.cost(usage) == pytest.approx(1.2 + 0.2 + 1.0)


def test_cache_writes_are_priced_at_the_cache_write_price() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = Usage(prompt_tokens=3_000, cached_tokens=1_000, cache_creation_tokens=1_000)
    assert price.cost(usage) == pytest.approx((1_000 * 3.0 + 1_000 * 0.3 + 1_000 * 3.75) / 1e6)


def test_cached_input_defaults_to_the_input_price() -> None:
    usage = Usage(prompt_tokens=100, cached_tokens=100)
    assert Price(input=1.0, output=0.0).cost(usage) == pytest.approx(100 / 1e6)


def test_dated_snapshot_takes_the_longest_listed_prefix() -> None:
    assert TABLE.lookup("openai", "gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert TABLE.lookup("openai", "gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert (
        TABLE.lookup("anthropic", "claude-sonnet-4-5-20250929")
        == (DEFAULT_PRICES["claude-sonnet-4-5"])
    )


def test_deployment_specific_prices_win_over_model_prices() -> None:
    assert TABLE.lookup("openai", "special") == Price(1.0, 1.0)
    assert TABLE.lookup("vllm", "gpt-4o") == Price(0.0, 0.0)


def test_a_prefix_must_end_at_a_dash() -> None:
    assert TABLE.lookup("openai", "gpt-4oz") is None


def test_first_model_with_a_price_is_used() -> None:
    usage = Usage(prompt_tokens=1_000_000)
    cost = TABLE.cost("azure", "azure_openai", ("my-deployment", "gpt-4o"), usage)
    assert cost == pytest.approx(2.50)


def test_unknown_price_costs_zero_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable({})
    with caplog.at_level(logging.WARNING, logger="gateway.pricing"):
        assert table.cost("openai", "openai", ("mystery",), Usage(prompt_tokens=10)) == 0.0
        assert table.cost("openai", "openai", ("mystery",), Usage(prompt_tokens=10)) == 0.0
    assert len([r for r in caplog.records if "no price" in r.getMessage()]) == 1


def test_local_kinds_cost_zero_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.pricing"):
        assert PriceTable({}).cost("ollama", "ollama", ("llama3",), Usage(prompt_tokens=9)) == 0
    assert caplog.records == []


# List prices only where the deployment calls the vendor's own public API

VENDOR = ProviderSettings(
    name="openai", kind="openai", models=("gpt-4o-mini",), base_url=OPENAI_SPEC.default_base_url
)
#: An OpenAI-compatible server of one's own (a vLLM behind OPENAI_BASE_URL).
LOCAL = ProviderSettings(
    name="openai", kind="openai", models=("gpt-4o-mini",), base_url="http://127.0.0.1:8000/v1"
)
ONE_MILLION_IN = Usage(prompt_tokens=1_000_000)


def test_list_prices_apply_to_a_deployment_calling_the_vendor_api() -> None:
    table = PriceTable({}, [VENDOR])

    assert table.cost("openai", "openai", ("gpt-4o-mini",), ONE_MILLION_IN) == pytest.approx(0.15)
    assert table.priced("openai", "gpt-4o-mini") == (DEFAULT_PRICES["gpt-4o-mini"], "list")


def test_list_prices_do_not_apply_to_a_deployment_at_another_url() -> None:
    table = PriceTable({}, [LOCAL])

    assert table.cost("openai", "openai", ("gpt-4o-mini",), ONE_MILLION_IN) == 0.0
    assert table.priced("openai", "gpt-4o-mini") == (None, "none")


def test_a_deployment_at_another_url_warns_once_per_model_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.pricing"):
        table = PriceTable({}, [LOCAL])
        table.cost("openai", "openai", ("gpt-4o-mini",), ONE_MILLION_IN)
        table.cost("openai", "openai", ("gpt-4o-mini",), ONE_MILLION_IN)

    (warning,) = caplog.records
    assert (getattr(warning, "provider", None), getattr(warning, "models", None)) == (
        "openai",
        ["gpt-4o-mini"],
    )
    assert "vendor's public API" in warning.getMessage()


def test_a_deployment_price_from_the_config_applies_at_another_url() -> None:
    table = PriceTable({"openai/*": Price(0.1, 0.2)}, [LOCAL])

    assert table.priced("openai", "gpt-4o-mini") == (Price(0.1, 0.2), "config")
    assert table.cost("openai", "openai", ("gpt-4o-mini",), ONE_MILLION_IN) == pytest.approx(0.1)


def test_a_plain_model_price_from_the_config_applies_at_another_url() -> None:
    table = PriceTable({"gpt-4o-mini": Price(0.3, 0.4)}, [LOCAL])

    assert table.priced("openai", "gpt-4o-mini-2024-07-18") == (Price(0.3, 0.4), "config")


def test_a_config_price_wins_over_the_list_price() -> None:
    table = PriceTable({"gpt-4o-mini": Price(0.3, 0.4)}, [VENDOR])

    assert table.priced("openai", "gpt-4o-mini") == (Price(0.3, 0.4), "config")
    assert table.priced("openai", "gpt-4o") == (DEFAULT_PRICES["gpt-4o"], "list")


@pytest.mark.parametrize(
    ("prices", "deployment", "source"),
    [({}, VENDOR, "list"), ({}, LOCAL, "none"), ({"openai/*": Price(0, 0)}, LOCAL, "config")],
    ids=["vendor-api", "elsewhere", "configured"],
)
def test_a_deployment_says_where_its_prices_come_from(
    prices: dict[str, Price], deployment: ProviderSettings, source: str
) -> None:
    assert PriceTable(prices, [deployment]).source("openai") == source
