"""The YAML file's `groups` and `routes` sections, read into `gateway.pipeline.routing` values.

    groups:
      gpt-4o:                      # the public model name callers ask for
        strategy: latency          # weighted (default), least_busy, latency, cost, usage
        deployments:
          - {deployment: azure-eu, model: gpt-4o-eu, weight: 2, rpm: 600, tpm: 150000}
          - {deployment: openai, context_window: 128000}    # model: the group's name
      assistant:
        strategy: complexity
        tiers:                     # cheapest first; the last takes every score
          - {name: light, model: gpt-4o-mini, max_score: 0.25}
          - {name: heavy, model: gpt-4o}
        keywords: {"root cause": 0.2}
    routes:
      - when: {tenant: free-tier, models: [gpt-4o]}
        model: gpt-4o-mini

Each section's shape is checked here, naming the place at fault (`groups.gpt-4o.deployments[1].
rpm`); what the names refer to (deployments, models, other groups) is checked with the rest of
the file's references (`gateway.config.checks.check_routing`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.config.checks import ConfigError, check_keys, hint
from gateway.pipeline.routing.groups import (
    COMPLEXITY,
    DEFAULT_EXPLORATION,
    LATENCY,
    STRATEGIES,
    WEIGHTED,
    Capacity,
    Member,
    ModelGroup,
    RouteRule,
    Tier,
)

#: The keys a group may have, by strategy.
_GROUP_KEYS = {
    strategy: ("strategy", "deployments", *(("exploration",) if strategy == LATENCY else ()))
    for strategy in STRATEGIES
    if strategy != COMPLEXITY
}
_GROUP_KEYS[COMPLEXITY] = ("strategy", "tiers", "keywords", "examples")
_MEMBER_KEYS = ("deployment", "model", "weight", "rpm", "tpm", "max_concurrent", "context_window")
_TIER_KEYS = ("name", "model", "max_score")
_ROUTE_KEYS = ("when", "model")
_WHEN_KEYS = ("tenant", "use_case", "api_key", "models")
#: The most `exploration` may be: past it, a latency group no longer follows latency.
MAX_EXPLORATION = 0.5


def read_groups(section: Mapping[Any, Any]) -> dict[str, ModelGroup]:
    """`groups`: public model name -> its group."""
    groups = {}
    for name, spec in section.items():
        where = f"groups.{name}"
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigError(where, "a group's name must be a model name")
        if not isinstance(spec, dict):
            raise ConfigError(
                where, "must be a mapping with a strategy and its deployments or tiers"
            )
        groups[name] = _group(name, spec, where)
    return groups


def read_routes(section: object) -> tuple[RouteRule, ...]:
    """`routes`: the conditional routes, in order."""
    if not isinstance(section, list):
        raise ConfigError("routes", "must be a list of {when: {...}, model: ...}")
    return tuple(_route(spec, f"routes[{index}]") for index, spec in enumerate(section))


def _group(name: str, spec: dict[str, Any], where: str) -> ModelGroup:
    strategy = spec.get("strategy", WEIGHTED)
    if strategy not in STRATEGIES:
        shown = f"{strategy!r} " if isinstance(strategy, str) else ""
        raise ConfigError(
            f"{where}.strategy", f"{shown}is not a strategy; {hint(str(strategy), STRATEGIES)}"
        )
    allowed = _GROUP_KEYS[strategy]
    for key in spec:
        owners = [s for s, keys in _GROUP_KEYS.items() if key in keys and s != strategy]
        if key not in allowed and owners:
            raise ConfigError(
                f"{where}.{key}", f"is for strategy {' or '.join(owners)}, not {strategy}"
            )
    check_keys(where, spec, allowed, f"key for strategy {strategy}")
    if strategy == COMPLEXITY:
        tiers = _tiers(spec.get("tiers"), f"{where}.tiers")
        return ModelGroup(
            name,
            strategy,
            tiers=tiers,
            keywords=_keywords(spec.get("keywords", {}), f"{where}.keywords"),
            examples=_examples(spec.get("examples", {}), f"{where}.examples", tiers),
        )
    members = spec.get("deployments")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"{where}.deployments", "must be a list of one or more deployments")
    parsed = tuple(_member(name, m, f"{where}.deployments[{i}]") for i, m in enumerate(members))
    seen: set[str] = set()
    for index, member in enumerate(parsed):
        if member.key in seen:
            raise ConfigError(
                f"{where}.deployments[{index}]", f"{member.key} is in the group twice"
            )
        seen.add(member.key)
    exploration = _number(spec, "exploration", where, low=0.0, high=MAX_EXPLORATION)
    return ModelGroup(
        name,
        strategy,
        members=parsed,
        exploration=DEFAULT_EXPLORATION if exploration is None else exploration,
    )


def _member(group: str, spec: object, where: str) -> Member:
    if not isinstance(spec, dict):
        raise ConfigError(where, "must be a mapping with a deployment (and its model, weight...)")
    check_keys(where, spec, _MEMBER_KEYS, "key of a group's deployment")
    deployment = _text(spec, "deployment", where)
    model = _text(spec, "model", where) if "model" in spec else group
    weight = _number(spec, "weight", where, low=0.0)
    if weight == 0:
        raise ConfigError(f"{where}.weight", "must be more than 0")
    capacity = Capacity(
        rpm=_count(spec, "rpm", where),
        tpm=_count(spec, "tpm", where),
        max_concurrent=_count(spec, "max_concurrent", where),
        context_window=_count(spec, "context_window", where),
    )
    return Member(deployment, model, 1.0 if weight is None else weight, capacity)


def _tiers(spec: object, where: str) -> tuple[Tier, ...]:
    if not isinstance(spec, list) or not spec:
        raise ConfigError(
            where, "must be a list of tiers, cheapest first: {name, model, max_score}"
        )
    tiers: list[Tier] = []
    for index, item in enumerate(spec):
        place = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(place, "must be a mapping: {name, model, max_score}")
        check_keys(place, item, _TIER_KEYS, "key of a tier")
        name, model = _text(item, "name", place), _text(item, "model", place)
        if any(t.name == name for t in tiers):
            raise ConfigError(f"{place}.name", f"tier {name!r} is named twice")
        last = index == len(spec) - 1
        max_score = _number(item, "max_score", place, low=0.0, high=1.0)
        if max_score is None and not last:
            raise ConfigError(f"{place}.max_score", "required for every tier but the last")
        if last and max_score not in (None, 1.0):
            raise ConfigError(f"{place}.max_score", "the last tier takes every score: leave it out")
        if tiers and max_score is not None and max_score <= tiers[-1].max_score:
            raise ConfigError(
                f"{place}.max_score", "must be more than the tier before's (cheapest tier first)"
            )
        tiers.append(Tier(name, model, 1.0 if max_score is None else max_score))
    return tuple(tiers)


def _keywords(spec: object, where: str) -> dict[str, float]:
    if not isinstance(spec, dict):
        raise ConfigError(where, "must map a phrase to the points it adds (-1 to 1)")
    keywords = {}
    for phrase, points in spec.items():
        if not isinstance(phrase, str) or not phrase.strip():
            raise ConfigError(where, "a phrase must be text")
        if not _is_number(points) or not -1 <= float(points) <= 1:
            raise ConfigError(f"{where}.{phrase}", "must be a number from -1 to 1")
        keywords[phrase.strip()] = float(points)
    return keywords


def _examples(spec: object, where: str, tiers: tuple[Tier, ...]) -> dict[str, tuple[str, ...]]:
    if not isinstance(spec, dict):
        raise ConfigError(where, "must map a tier name to a list of example requests")
    names = [tier.name for tier in tiers]
    examples = {}
    for tier, texts in spec.items():
        if tier not in names:
            raise ConfigError(
                f"{where}.{tier}", f"is not a tier of this group; {hint(tier, names)}"
            )
        if not isinstance(texts, list) or not all(isinstance(t, str) and t for t in texts):
            raise ConfigError(f"{where}.{tier}", "must be a list of example requests")
        examples[str(tier)] = tuple(texts)
    return examples


def _route(spec: object, where: str) -> RouteRule:
    if not isinstance(spec, dict):
        raise ConfigError(where, "must be a mapping: {when: {...}, model: ...}")
    check_keys(where, spec, _ROUTE_KEYS, "key of a route")
    when = spec.get("when")
    if not isinstance(when, dict) or not when:
        raise ConfigError(
            f"{where}.when", f"must be a mapping with some of: {', '.join(_WHEN_KEYS)}"
        )
    check_keys(f"{where}.when", when, _WHEN_KEYS, "condition")
    values = {key: _names(when[key], f"{where}.when.{key}") for key in when}
    if not set(values) - {"models"}:
        raise ConfigError(
            f"{where}.when",
            "needs a tenant, use_case or api_key (a route for every caller is an alias: "
            "put it under models:)",
        )
    return RouteRule(
        model=_text(spec, "model", where),
        tenants=values.get("tenant", frozenset()),
        use_cases=values.get("use_case", frozenset()),
        api_keys=values.get("api_key", frozenset()),
        models=values.get("models", frozenset()),
    )


def _names(value: object, where: str) -> frozenset[str]:
    """A name or a list of names."""
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(where, "must be a name or a list of names")
    return frozenset(names)


def _text(spec: Mapping[str, Any], key: str, where: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "required, and must be a name")
    return value.strip()


def _number(
    spec: Mapping[str, Any], key: str, where: str, *, low: float, high: float = math.inf
) -> float | None:
    if key not in spec:
        return None
    value = spec[key]
    if not _is_number(value) or not low <= float(value) <= high:
        bound = f"from {low:g} to {high:g}" if high != math.inf else f"of at least {low:g}"
        raise ConfigError(f"{where}.{key}", f"must be a number {bound}")
    return float(value)


def _count(spec: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in spec:
        return None
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.{key}", "must be a whole number of at least 1")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
