"""Checks the environment and the YAML file share: the error, URLs, unknown keys, references.

`ConfigError` names the setting at fault (an environment variable, or a place in the file such
as `providers.vllm.base_url`); `gateway.config` is where callers catch it from. A misspelt key
or a reference to nothing is an error at start, never a surprise at the first call: the error
names the place and, when one is close, the name that was probably meant. Messages quote names
(keys, models, deployments), never other values from the file: one may be a credential.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping

from gateway.pipeline.routing.groups import COMPLEXITY, Capacity, RoutingConfig
from providers.base import ProviderSettings
from providers.registry import ADAPTERS, RouteTable

#: How alike a name must be to another (difflib's ratio) to be offered as "did you mean".
SUGGESTION_CUTOFF = 0.6
#: Valid names listed in an error when none is close.
MAX_LISTED_NAMES = 12


class ConfigError(Exception):
    """Configuration that the gateway cannot start with; `setting` names the culprit."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


def check_url(setting: str, url: str) -> str:
    """`url` without its trailing slash, when it is an http:// or https:// URL."""
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(setting, "must be an http:// or https:// URL")
    return url.rstrip("/")


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice most like `name`, when one is alike enough to be a likely misspelling."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=SUGGESTION_CUTOFF)
    return matches[0] if matches else None


def hint(name: str, choices: Collection[str]) -> str:
    """ "did you mean X?" for the closest choice, else the valid choices (the first few)."""
    close = closest(name, choices)
    if close is not None:
        return f"did you mean {close}?"
    listed = sorted(choices)
    shown = ", ".join(listed[:MAX_LISTED_NAMES])
    more = f" (and {len(listed) - MAX_LISTED_NAMES} more)" if len(listed) > MAX_LISTED_NAMES else ""
    return f"valid: {shown}{more}" if listed else "nothing is valid here"


def check_keys(where: str, keys: Iterable[object], valid: Collection[str], what: str) -> None:
    """Raise for the first of `keys` that is not in `valid`, naming it and the likely one."""
    for key in keys:
        if key not in valid:
            place = f"{where}.{key}" if where else str(key)
            raise ConfigError(place, f"unknown {what}; {hint(str(key), valid)}")


def check_references(
    providers: Iterable[ProviderSettings],
    aliases: Mapping[str, str],
    fallbacks: Mapping[str, tuple[str, ...]],
    prices: Collection[str],
    groups: Collection[str] = (),
) -> None:
    """Every alias target, fallback (key and chain) and price key reaches a configured deployment
    or names one of the model `groups`.

    They are checked with the very rules calls are routed by, so what starts is what serves.
    """
    routes = RouteTable(providers, aliases)

    def unrouted(model: str) -> bool:
        return model not in groups and routes.target(model) is None

    for alias, target in aliases.items():
        if target in aliases:
            raise ConfigError(
                f"models.{alias}",
                f"{target!r} is an alias; an alias names a model, a group or "
                "'<deployment>/<model>' (aliases do not chain)",
            )
        if unrouted(target):
            raise ConfigError(f"models.{alias}", _unrouted(target, routes, aliases=False))
    for model, chain in fallbacks.items():
        if unrouted(model):
            raise ConfigError(f"fallbacks.{model}", _unrouted(model, routes, aliases=True))
        for index, fallback in enumerate(chain):
            if unrouted(fallback):
                where = f"fallbacks.{model}[{index}]"
                raise ConfigError(where, _unrouted(fallback, routes, aliases=True))
    for key in prices:
        _check_price_key(key, routes)


def check_routing(
    routing: RoutingConfig, providers: Iterable[ProviderSettings], aliases: Mapping[str, str]
) -> None:
    """Every name in `groups` and `routes` refers to something that serves.

    A group's deployments are configured and its name is not an alias, nor a path into a
    deployment; a tier's model and a route's model (and the models it applies to) route; a
    tier does not name a complexity group; a deployment's model has one capacity everywhere.
    """
    providers = tuple(providers)
    routes = RouteTable(providers, aliases)
    deployments = routes.deployment_names
    groups = routing.groups
    capacities: dict[str, tuple[Capacity, str]] = {}

    def check_model(model: str, where: str, *, tier: bool = False) -> None:
        target = groups.get(routes.unalias(model))
        if target is None and routes.target(model) is None:
            close = closest(model, [*groups, *routes.known_models()])
            suggestion = (
                f"did you mean {close}?"
                if close is not None
                else "name a group, a listed model or '<deployment>/<model>'"
            )
            problem = f"{model!r} is no group and no model a deployment serves"
            raise ConfigError(where, f"{problem}; {suggestion}")
        if tier and target is not None and target.strategy == COMPLEXITY:
            raise ConfigError(
                where, f"{model!r} is a complexity group; a tier names a model or another group"
            )

    for name, group in groups.items():
        where = f"groups.{name}"
        if name in aliases:
            raise ConfigError(where, f"{name!r} is also an alias under models:; keep one")
        prefix, slash, _ = name.partition("/")
        if slash and prefix in deployments:
            raise ConfigError(where, f"{name!r} reads as '<deployment>/<model>' of {prefix!r}")
        for index, member in enumerate(group.members):
            place = f"{where}.deployments[{index}]"
            if member.deployment not in deployments:
                raise ConfigError(
                    f"{place}.deployment",
                    f"{member.deployment!r} is not a configured deployment; "
                    f"{hint(member.deployment, deployments)}",
                )
            earlier = capacities.setdefault(member.key, (member.capacity, place))
            if earlier[0] != member.capacity:
                raise ConfigError(
                    place,
                    f"{member.key} has another capacity at {earlier[1]}; a deployment's model "
                    "has one capacity (give it once, the same everywhere)",
                )
        for index, tier in enumerate(group.tiers):
            check_model(tier.model, f"{where}.tiers[{index}].model", tier=True)
    for index, rule in enumerate(routing.routes):
        check_model(rule.model, f"routes[{index}].model")
        for model in sorted(rule.models):
            check_model(model, f"routes[{index}].when.models")


def _unrouted(model: str, routes: RouteTable, *, aliases: bool) -> str:
    """Why `model` reaches no deployment, and what was probably meant."""
    deployments = routes.deployment_names
    problem = f"{model!r} is not a model any configured deployment serves"
    prefix, slash, rest = model.partition("/")
    close: str | None = None
    if slash and rest:
        name = closest(prefix, deployments)
        close = f"{name}/{rest}" if name is not None else None
    if close is None:
        close = closest(model, routes.known_models(aliases=aliases))
    suggestion = f"; did you mean {close}?" if close is not None else ""
    off = [k for k in ADAPTERS.values() if k.built_in and k.kind in (prefix, model)]
    if off and off[0].kind not in deployments:
        switch = f"{off[0].env_prefix}_ENABLED"
        suggestion += f"; the built-in {off[0].kind} is off next to real providers ({switch}=true)"
    return (
        f"{problem}{suggestion} (name a listed model, or '<deployment>/<model>' with one of: "
        f"{', '.join(deployments)})"
    )


def _check_price_key(key: str, routes: RouteTable) -> None:
    """A key with a "/" names "<deployment>/<model>" (or "<deployment>/*"), or a listed model."""
    prefix, slash, _ = key.partition("/")
    if not slash or prefix in routes.deployment_names or routes.lists(key):
        return
    deployments = routes.deployment_names
    close = closest(prefix, deployments)
    suggestion = (
        f"did you mean {close}?" if close is not None else f"one of: {', '.join(deployments)}"
    )
    raise ConfigError(
        f"prices.{key}",
        f"{prefix!r} is not a configured deployment (and no deployment lists the model {key!r}); "
        f"{suggestion}",
    )
