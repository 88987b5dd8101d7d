"""The YAML file `GATEWAY_CONFIG` names: provider deployments, model aliases, prices, fallbacks,
model groups and conditional routes (`gateway.config.groups`).

`${VAR}` and `${VAR:-default}` in any string value are replaced from the environment::

    providers:
      vllm:
        kind: openai
        base_url: http://127.0.0.1:8000/v1
        api_key: ${VLLM_API_KEY:-}
        models: [llama-3.1-8b-instruct]
    models:
      fast: openai/gpt-4o-mini

Each section is checked when it is read, and a problem raises `ConfigError` naming its place in
the file (`providers.vllm.base_url`), never quoting the file's text: it may hold a key. A key the
file may not have (a misspelt `base-url`, an option the deployment's adapter does not declare) is
such a problem, with the likely intended key; references between sections (aliases, fallbacks,
prices naming deployments) are checked once everything is read (`config_checks`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.config.checks import ConfigError, check_keys, check_url, hint
from gateway.config.groups import read_groups, read_routes
from gateway.pipeline.pricing import PRICE_FIELDS, Price
from gateway.pipeline.routing.groups import RoutingConfig
from providers.base import AdapterSpec, ProviderSettings
from providers.registry import ADAPTERS

_SECTIONS = ("providers", "models", "prices", "fallbacks", "groups", "routes")
#: Keys every deployment may have; an adapter adds the options its `SPEC` declares.
_DEPLOYMENT_KEYS = ("kind", "models", "base_url", "api_key", "api_keys")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class ConfigFile:
    """The file's sections, read and checked one at a time (no file: every section empty)."""

    def __init__(self, sections: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self._sections = sections
        self._environ = environ

    @classmethod
    def load(cls, environ: Mapping[str, str]) -> ConfigFile:
        """Parse the file `GATEWAY_CONFIG` in `environ` names, if it names one."""
        return cls(_load_yaml(environ), environ)

    def providers(self) -> dict[str, ProviderSettings]:
        """`providers`: deployment name -> its settings."""
        section = self._section("providers", "must be a mapping of deployment name to settings")
        providers = {}
        for name, spec in section.items():
            where = f"providers.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(where, "name must be lower-case letters, digits, '.', '_' or '-'")
            if not isinstance(spec, dict):
                raise ConfigError(where, "must be a mapping")
            adapter = _adapter(name, self._interpolate(spec.get("kind"), f"{where}.kind"), where)
            check_keys(where, spec, _deployment_keys(adapter), f"key for kind {adapter.kind}")
            spec = {k: self._interpolate(v, f"{where}.{k}") for k, v in spec.items() if k != "kind"}
            providers[name] = _provider(name, adapter, spec, where)
        return providers

    def aliases(self) -> dict[str, str]:
        """`models`: public model name -> the model it stands for."""
        section = self._section("models", "must be a mapping of public model name to target model")
        aliases = {}
        for alias, target in section.items():
            target = self._interpolate(target, f"models.{alias}")
            if not isinstance(alias, str) or not isinstance(target, str) or not target:
                raise ConfigError(f"models.{alias}", "must map a model name to a target model name")
            aliases[alias] = target
        return aliases

    def prices(self) -> dict[str, Price]:
        """`prices`: model (or "deployment/model", "deployment/*") -> USD per million tokens."""
        section = self._section("prices", "must be a mapping of model name to prices")
        return {str(model): _price(spec, f"prices.{model}") for model, spec in section.items()}

    def fallbacks(self) -> dict[str, tuple[str, ...]]:
        """`fallbacks`: requested model -> the models to fall back to, in order."""
        section = self._section("fallbacks", "must map a model name to a list of fallback models")
        chains = {}
        for model, chain in section.items():
            chain = self._interpolate(chain, f"fallbacks.{model}")
            if not isinstance(chain, list) or not all(isinstance(m, str) and m for m in chain):
                raise ConfigError(f"fallbacks.{model}", "must be a list of model names")
            chains[str(model)] = tuple(chain)
        return chains

    def routing(self) -> RoutingConfig:
        """`groups` (public model name -> model group) and `routes` (conditional routes)."""
        groups = self._section("groups", "must map a public model name to its group")
        routes = self._sections.get("routes")
        return RoutingConfig(
            groups=read_groups(self._interpolate(groups, "groups")),
            routes=read_routes(self._interpolate(routes, "routes")) if routes is not None else (),
        )

    def _section(self, name: str, problem: str) -> dict[Any, Any]:
        """A section as a mapping (empty when it is absent), else `problem` is raised."""
        section = self._sections.get(name)
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise ConfigError(name, problem)
        return section

    def _interpolate(self, value: object, where: str) -> Any:
        """`value` with `${VAR}` and `${VAR:-default}` replaced, in a string or in the strings
        of a list or mapping (its values)."""
        if isinstance(value, str):

            def replace(match: re.Match[str]) -> str:
                name, default = match.group(1), match.group(2)
                if self._environ.get(name):
                    return self._environ[name]
                if name in self._environ and default is None:
                    return ""  # ${VAR} set to "": empty, as in the shell
                if default is None:
                    raise ConfigError(where, f"refers to ${{{name}}}, which is not set")
                return default

            return _INTERPOLATION.sub(replace, value)
        if isinstance(value, list):
            return [self._interpolate(item, where) for item in value]
        if isinstance(value, dict):
            return {k: self._interpolate(v, f"{where}.{k}") for k, v in value.items()}
        return value


def _load_yaml(environ: Mapping[str, str]) -> dict[str, Any]:
    """The file's top-level mapping ({} with no file or an empty one)."""
    path = (environ.get("GATEWAY_CONFIG") or "").strip()
    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("GATEWAY_CONFIG", f"cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("GATEWAY_CONFIG", f"{path!r} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may hold a key: give the place only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("GATEWAY_CONFIG", f"{path!r} is not valid YAML{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            "GATEWAY_CONFIG", f"must be a mapping with some of: {', '.join(_SECTIONS)}"
        )
    check_keys("", loaded, _SECTIONS, "section of the GATEWAY_CONFIG file")
    return loaded


def _adapter(name: str, kind: object, where: str) -> AdapterSpec:
    """The adapter `kind` names; without a `kind`, the deployment's name must be a kind."""
    if kind is None:
        if name in ADAPTERS:
            return ADAPTERS[name]
        raise ConfigError(
            f"{where}.kind",
            f"missing, and {name!r} is not an adapter kind; {hint(name, ADAPTERS)}",
        )
    if not isinstance(kind, str) or kind not in ADAPTERS:
        shown = f"{kind!r} " if isinstance(kind, str) else ""
        raise ConfigError(
            f"{where}.kind", f"{shown}is not an adapter kind; {hint(str(kind), ADAPTERS)}"
        )
    return ADAPTERS[kind]


def _deployment_keys(adapter: AdapterSpec) -> frozenset[str]:
    """What a deployment of this kind may set: the common keys and its adapter's options."""
    return frozenset(_DEPLOYMENT_KEYS) | set(adapter.env_options) | adapter.number_options


def _provider(
    name: str, adapter: AdapterSpec, spec: dict[str, Any], where: str
) -> ProviderSettings:
    kind = adapter.kind
    models = spec.pop("models", list(adapter.default_models))
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ConfigError(f"{where}.models", "must be a list of model names")
    base_url = str(spec.pop("base_url", "") or adapter.default_base_url)
    if not base_url and not adapter.built_in:
        raise ConfigError(f"{where}.base_url", f"required for kind {kind}")
    return ProviderSettings(
        name=name,
        kind=kind,
        models=tuple(models),
        base_url=check_url(f"{where}.base_url", base_url) if base_url else "",
        api_keys=_keys(spec, where),
        options=_options(spec, where, adapter.number_options),
    )


def _keys(spec: dict[str, Any], where: str) -> tuple[str, ...]:
    """`api_key` (one, or comma-separated) and/or `api_keys` (a list) make the key pool."""
    single = spec.pop("api_key", "")
    many = spec.pop("api_keys", [])
    if not isinstance(single, str):
        raise ConfigError(f"{where}.api_key", "must be a string")
    if not isinstance(many, list) or not all(isinstance(k, str) for k in many):
        raise ConfigError(f"{where}.api_keys", "must be a list of strings")
    return tuple(k.strip() for k in [*single.split(","), *many] if k.strip())


def _options(spec: dict[str, Any], where: str, numeric: frozenset[str]) -> dict[str, object]:
    for key, value in spec.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"{where}.{key}", "must be a string, number or boolean")
        if key in numeric and not _is_number(value):
            raise ConfigError(f"{where}.{key}", f"must be a number, got {value!r}")
    return dict(spec)


def _price(spec: object, where: str) -> Price:
    if isinstance(spec, dict):
        check_keys(where, spec, PRICE_FIELDS, "price field")
    if not isinstance(spec, dict) or not {"input", "output"} <= set(spec):
        raise ConfigError(where, "must give 'input' and 'output' (USD per million tokens)")
    for field_name, value in spec.items():
        if not (_is_number(value) and float(value) >= 0) or isinstance(value, bool):
            raise ConfigError(f"{where}.{field_name}", f"must be a price >= 0, got {value!r}")
    return Price(
        input=float(spec["input"]),
        output=float(spec["output"]),
        cached_input=float(spec["cached_input"]) if "cached_input" in spec else None,
        cache_write=float(spec["cache_write"]) if "cache_write" in spec else None,
    )


def _is_number(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
