"""The YAML file's `groups` and `routes`: what they load into, and every mistake start refuses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config.checks import check_references
from gateway.config.settings import ConfigError, Settings, load_settings
from gateway.pipeline.routing.groups import (
    Capacity,
    Member,
    ModelGroup,
    RouteContext,
    RouteRule,
    Tier,
)
from providers.base import ProviderSettings

# Two OpenAI-kind deployments and an Anthropic one, each with its own listed models.
PROVIDERS = """
providers:
  azure-eu:
    kind: openai
    base_url: http://127.0.0.1:9001/v1
    models: [gpt-4o]
  azure-us:
    kind: openai
    base_url: http://127.0.0.1:9002/v1
    models: [gpt-4o, gpt-4o-mini]
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:9003
    models: [claude-sonnet-4-5]
"""


def load(tmp_path: Path, text: str, **environ: str) -> Settings:
    """Settings from a config file holding `PROVIDERS` and `text`."""
    return load_settings(with_yaml(tmp_path, text, **environ))


def error(tmp_path: Path, text: str) -> str:
    """The message of the `ConfigError` loading `PROVIDERS` and `text` raises."""
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    return str(raised.value)


def with_yaml(tmp_path: Path, text: str, **environ: str) -> dict[str, str]:
    path = tmp_path / "gateway.yaml"
    path.write_text(PROVIDERS + textwrap.dedent(text), encoding="utf-8")
    return {"GATEWAY_CONFIG": str(path), **environ}


# What loads


def test_a_group_loads_its_members_with_model_weight_and_capacity(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        groups:
          gpt-4o:
            strategy: latency
            exploration: 0.1
            deployments:
              - deployment: azure-eu
                model: gpt-4o-eu
                weight: 3
                rpm: 600
                tpm: 150000
                max_concurrent: 20
                context_window: 128000
              - deployment: azure-us
        """,
    )

    assert settings.routing.groups == {
        "gpt-4o": ModelGroup(
            "gpt-4o",
            "latency",
            members=(
                Member("azure-eu", "gpt-4o-eu", 3.0, Capacity(600, 150000, 20, 128000)),
                Member("azure-us", "gpt-4o", 1.0, Capacity()),
            ),
            exploration=0.1,
        )
    }


def test_a_group_without_a_strategy_is_weighted(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        groups:
          chat:
            deployments: [{deployment: azure-eu, model: gpt-4o}]
        """,
    )

    assert settings.routing.groups["chat"].strategy == "weighted"


def test_a_complexity_group_loads_its_tiers_keywords_and_examples(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        groups:
          pool:
            deployments: [{deployment: azure-eu, model: gpt-4o}, {deployment: azure-us}]
          assistant:
            strategy: complexity
            tiers:
              - {name: light, model: azure-us/gpt-4o-mini, max_score: 0.3}
              - {name: standard, model: pool, max_score: 0.6}
              - {name: heavy, model: claude-sonnet-4-5}
            keywords: {"root cause": 0.2, "thanks": -0.1}
            examples:
              heavy: ["Design a sharded rate limiter"]
        """,
    )

    assert settings.routing.groups["assistant"] == ModelGroup(
        "assistant",
        "complexity",
        tiers=(
            Tier("light", "azure-us/gpt-4o-mini", 0.3),
            Tier("standard", "pool", 0.6),
            Tier("heavy", "claude-sonnet-4-5", 1.0),
        ),
        keywords={"root cause": 0.2, "thanks": -0.1},
        examples={"heavy": ("Design a sharded rate limiter",)},
    )


def test_routes_load_in_order_with_their_conditions(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        routes:
          - when: {tenant: [free, trial], models: [gpt-4o]}
            model: gpt-4o-mini
          - when: {use_case: summarize, api_key: key_123}
            model: claude-sonnet-4-5
        """,
    )

    assert settings.routing.routes == (
        RouteRule(
            "gpt-4o-mini", tenants=frozenset({"free", "trial"}), models=frozenset({"gpt-4o"})
        ),
        RouteRule(
            "claude-sonnet-4-5", use_cases=frozenset({"summarize"}), api_keys=frozenset({"key_123"})
        ),
    )


def test_a_route_needs_every_condition_it_gives() -> None:
    rule = RouteRule("cheap", tenants=frozenset({"free"}), use_cases=frozenset({"chat"}))

    assert rule.matches("any", RouteContext(tenant="free", use_case="chat"))
    assert not rule.matches("any", RouteContext(tenant="free", use_case="code"))
    assert not rule.matches("any", RouteContext(tenant="paid", use_case="chat"))


def test_group_values_are_interpolated_from_the_environment(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        groups:
          chat:
            deployments: [{deployment: "${CHAT_DEPLOYMENT:-azure-eu}", model: "${CHAT_MODEL}"}]
        """,
        CHAT_MODEL="gpt-4o-2024-08-06",
    )

    assert settings.routing.groups["chat"].members == (Member("azure-eu", "gpt-4o-2024-08-06"),)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("models: {default: chat}", "models.default: "),
        ("fallbacks: {claude-sonnet-4-5: [chat]}", "fallbacks.claude-sonnet-4-5[0]: "),
        ("fallbacks: {chat: [claude-sonnet-4-5]}", "fallbacks.chat: "),
    ],
)
def test_aliases_and_fallbacks_may_name_a_group_now_calls_route_through_groups(
    tmp_path: Path, text: str, place: str
) -> None:
    settings = load(
        tmp_path,
        f"""
        groups:
          chat: {{deployments: [{{deployment: azure-eu, model: gpt-4o}}, {{deployment: azure-us}}]}}
        {text}
        """,
    )

    assert "chat" in settings.routing.groups
    named = {*settings.aliases.values(), *settings.fallbacks, *sum(settings.fallbacks.values(), ())}
    assert "chat" in named, place


def test_references_may_name_groups_once_groups_route() -> None:
    providers = (ProviderSettings("azure-eu", "openai", ("gpt-4o",), "http://a.test"),)

    check_references(providers, {"default": "chat"}, {"chat": ("gpt-4o",)}, (), {"chat"})
    with pytest.raises(ConfigError, match=r"^fallbacks\.chat: "):
        check_references(providers, {}, {"chat": ("gpt-4o",)}, ())


def test_a_file_without_groups_keeps_every_existing_rule(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        models:
          fast: azure-us/gpt-4o-mini
        fallbacks:
          gpt-4o: [claude-sonnet-4-5]
        """,
    )

    assert settings.routing.groups == {}
    assert settings.routing.routes == ()
    assert settings.aliases == {"fast": "azure-us/gpt-4o-mini"}


# What start refuses, naming the place


@pytest.mark.parametrize(
    ("text", "place", "said"),
    [
        (
            "groups: {chat: {strategy: leastbusy, deployments: [{deployment: azure-eu}]}}",
            "groups.chat.strategy: ",
            "did you mean",
        ),
        (
            "groups: {chat: {deployments: [{deployment: azure-eu, wieght: 2}]}}",
            "groups.chat.deployments[0].wieght: ",
            "did you mean weight?",
        ),
        (
            "groups: {chat: {deployments: [{deployment: azure-eu}], tiers: []}}",
            "groups.chat.tiers: ",
            "is for strategy complexity, not weighted",
        ),
        (
            "groups: {chat: {strategy: cost, exploration: 0.1, deployments: [{deployment: a}]}}",
            "groups.chat.exploration: ",
            "is for strategy latency, not cost",
        ),
        (
            "groups: {chat: {strategy: latency, exploration: 0.9, deployments: [{deployment: a}]}}",
            "groups.chat.exploration: ",
            "from 0 to 0.5",
        ),
        ("groups: {chat: {deployments: []}}", "groups.chat.deployments: ", "one or more"),
        (
            "groups: {chat: {deployments: [{deployment: azure-eu, weight: 0}]}}",
            "groups.chat.deployments[0].weight: ",
            "more than 0",
        ),
        (
            "groups: {chat: {deployments: [{deployment: azure-eu, rpm: 1.5}]}}",
            "groups.chat.deployments[0].rpm: ",
            "whole number",
        ),
        (
            "groups: {chat: {deployments: [{deployment: azure-eu, tpm: true}]}}",
            "groups.chat.deployments[0].tpm: ",
            "whole number",
        ),
        (
            "groups: {chat: {deployments: [{deployment: azur-eu}]}}",
            "groups.chat.deployments[0].deployment: ",
            "did you mean azure-eu?",
        ),
        (
            "groups: {chat: {deployments: [{deployment: azure-eu}, {deployment: azure-eu}]}}",
            "groups.chat.deployments[1]: ",
            "in the group twice",
        ),
        (
            "groups: {chat: {deployments: [{model: gpt-4o}]}}",
            "groups.chat.deployments[0].deployment: ",
            "required",
        ),
    ],
)
def test_a_bad_group_is_refused_naming_its_place(
    tmp_path: Path, text: str, place: str, said: str
) -> None:
    message = error(tmp_path, text)

    assert message.startswith(place)
    assert said in message


@pytest.mark.parametrize(
    ("tiers", "place", "said"),
    [
        (
            "[{name: a, model: gpt-4o}, {name: b, model: gpt-4o-mini}]",
            "tiers[0].max_score: ",
            "required for every tier but the last",
        ),
        (
            "[{name: a, model: gpt-4o, max_score: 0.6}, {name: b, model: gpt-4o, max_score: 0.4},"
            " {name: c, model: gpt-4o}]",
            "tiers[1].max_score: ",
            "more than the tier before",
        ),
        (
            "[{name: a, model: gpt-4o, max_score: 0.5}, {name: a, model: gpt-4o}]",
            "tiers[1].name: ",
            "named twice",
        ),
        (
            "[{name: a, model: gpt-4o, max_score: 0.5}, {name: b, model: gpt-4o, max_score: 0.9}]",
            "tiers[1].max_score: ",
            "the last tier takes every score",
        ),
        (
            "[{name: a, model: gpt-4o, max_score: 1.5}, {name: b, model: gpt-4o}]",
            "tiers[0].max_score: ",
            "from 0 to 1",
        ),
        ("[{name: a, model: gpt-4o-mni}]", "tiers[0].model: ", "did you mean gpt-4o-mini?"),
        ("[{name: a, modle: gpt-4o}]", "tiers[0].modle: ", "did you mean model?"),
    ],
)
def test_bad_tiers_are_refused_naming_their_place(
    tmp_path: Path, tiers: str, place: str, said: str
) -> None:
    message = error(tmp_path, f"groups: {{smart: {{strategy: complexity, tiers: {tiers}}}}}")

    assert message.startswith(f"groups.smart.{place}")
    assert said in message


def test_a_tier_naming_a_complexity_group_is_refused(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        groups:
          inner: {strategy: complexity, tiers: [{name: only, model: gpt-4o}]}
          outer: {strategy: complexity, tiers: [{name: only, model: inner}]}
        """,
    )

    assert message.startswith("groups.outer.tiers[0].model: ")
    assert "complexity group" in message


def test_examples_for_a_tier_the_group_lacks_are_refused(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        groups:
          smart:
            strategy: complexity
            tiers: [{name: light, model: gpt-4o-mini, max_score: 0.3}, {name: heavy, model: gpt-4o}]
            examples: {hevy: ["Prove it"]}
        """,
    )

    assert message.startswith("groups.smart.examples.hevy: ")
    assert "did you mean heavy?" in message


def test_keyword_points_outside_minus_one_to_one_are_refused(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        groups:
          smart:
            strategy: complexity
            tiers: [{name: only, model: gpt-4o}]
            keywords: {prove: 3}
        """,
    )

    assert message.startswith("groups.smart.keywords.prove: ")


def test_a_group_named_like_an_alias_is_refused(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        models:
          chat: gpt-4o
        groups:
          chat: {deployments: [{deployment: azure-eu, model: gpt-4o}]}
        """,
    )

    assert message.startswith("groups.chat: ")
    assert "alias" in message


def test_a_group_named_like_a_deployment_path_is_refused(tmp_path: Path) -> None:
    message = error(tmp_path, "groups: {azure-eu/gpt-4o: {deployments: [{deployment: azure-us}]}}")

    assert message.startswith("groups.azure-eu/gpt-4o: ")


def test_one_model_of_a_deployment_with_two_capacities_is_refused(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        groups:
          a: {deployments: [{deployment: azure-eu, model: gpt-4o, rpm: 60}]}
          b: {deployments: [{deployment: azure-eu, model: gpt-4o, rpm: 120}]}
        """,
    )

    assert message.startswith("groups.b.deployments[0]: ")
    assert "groups.a.deployments[0]" in message


@pytest.mark.parametrize(
    ("routes", "place", "said"),
    [
        ("[{when: {tenant: free}, model: gpt-4o-mni}]", "routes[0].model: ", "did you mean"),
        ("[{when: {tennant: free}, model: gpt-4o}]", "routes[0].when.tennant: ", "did you mean"),
        ("[{when: {models: [gpt-4o]}, model: gpt-4o-mini}]", "routes[0].when: ", "alias"),
        ("[{when: {}, model: gpt-4o}]", "routes[0].when: ", "some of"),
        ("[{when: {tenant: free}}]", "routes[0].model: ", "required"),
        ("[{when: {tenant: [free, 3]}, model: gpt-4o}]", "routes[0].when.tenant: ", "names"),
        (
            "[{when: {tenant: free, models: [gtp-4o]}, model: gpt-4o}]",
            "routes[0].when.models: ",
            "did you mean gpt-4o?",
        ),
        ("{tenant: free}", "routes: ", "must be a list"),
    ],
)
def test_bad_routes_are_refused_naming_their_place(
    tmp_path: Path, routes: str, place: str, said: str
) -> None:
    message = error(tmp_path, f"routes: {routes}")

    assert message.startswith(place)
    assert said in message


def test_a_misspelt_groups_section_suggests_the_right_one(tmp_path: Path) -> None:
    message = error(tmp_path, "gruops: {}")

    assert message.startswith("gruops: ")
    assert "did you mean groups?" in message


def test_a_fallback_to_an_unknown_group_is_still_refused(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        """
        groups:
          chat: {deployments: [{deployment: azure-eu, model: gpt-4o}]}
        fallbacks:
          gpt-4o: [chta]
        """,
    )

    assert message.startswith("fallbacks.gpt-4o[0]: ")


def test_ai_gateway_check_counts_the_groups_and_routes(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        groups:
          chat: {deployments: [{deployment: azure-eu, model: gpt-4o}, {deployment: azure-us}]}
          mini: {deployments: [{deployment: azure-us, model: gpt-4o-mini}]}
        routes:
          - {when: {tenant: free}, model: mini}
        """,
    )

    checked = subprocess.run(
        [sys.executable, "-m", "gateway", "check"],
        env={"PATH": os.environ.get("PATH", ""), **environ},
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert "; 2 model groups (chat, mini); 1 route;" in checked.stdout
