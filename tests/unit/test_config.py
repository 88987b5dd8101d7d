"""`load_settings`: defaults, each environment variable, the YAML file, and the errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config.settings import ConfigError, Settings, load_settings
from providers.base import ProviderSettings
from providers.openai import SPEC as OPENAI_SPEC

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-do-not-print-1234"


def provider(settings: Settings, name: str) -> ProviderSettings:
    """The deployment called `name`; fails the test if there is none."""
    by_name = {p.name: p for p in settings.providers}
    assert name in by_name, f"no provider {name!r} in {sorted(by_name)}"
    return by_name[name]


def config_error(environ: dict[str, str]) -> str:
    """The message of the `ConfigError` that loading `environ` raises."""
    with pytest.raises(ConfigError) as exc_info:
        load_settings(environ)
    return str(exc_info.value)


def with_yaml(tmp_path: Path, text: str, **environ: str) -> dict[str, str]:
    """An environment whose `GATEWAY_CONFIG` names a file holding `text`."""
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return {"GATEWAY_CONFIG": str(path), **environ}


# Defaults


def test_empty_environment_uses_the_default_ports() -> None:
    settings = load_settings({})

    assert (settings.grpc_port, settings.http_port, settings.metrics_port) == (50051, 8080, 9090)


def test_empty_environment_serves_only_the_mock_provider() -> None:
    settings = load_settings({})

    assert [(p.name, p.kind, p.models) for p in settings.providers] == [("mock", "mock", ("mock",))]


def test_empty_environment_disables_auth() -> None:
    assert load_settings({}).auth_tokens == ()


def test_openai_api_key_adds_the_openai_provider_at_the_public_url() -> None:
    settings = load_settings({"OPENAI_API_KEY": API_KEY})

    openai = provider(settings, "openai")
    assert (openai.kind, openai.base_url, openai.api_keys) == (
        "openai",
        OPENAI_SPEC.default_base_url,
        (API_KEY,),
    )


def test_openai_base_url_alone_adds_the_openai_provider_without_a_key() -> None:
    settings = load_settings({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})

    openai = provider(settings, "openai")
    assert (openai.base_url, openai.api_keys) == ("http://127.0.0.1:8000/v1", ())


def test_mock_provider_is_off_once_a_real_provider_is_configured() -> None:
    settings = load_settings({"OPENAI_API_KEY": API_KEY})

    assert [p.name for p in settings.providers] == ["openai"]


def test_mock_provider_is_off_once_a_yaml_deployment_is_configured(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1
        """,
    )

    assert [p.name for p in load_settings(environ).providers] == ["vllm"]


def test_mock_enabled_keeps_the_mock_next_to_a_real_provider() -> None:
    settings = load_settings({"OPENAI_API_KEY": API_KEY, "MOCK_ENABLED": "true"})

    assert [p.name for p in settings.providers] == ["mock", "openai"]


def test_a_yaml_mock_deployment_is_kept_next_to_a_real_provider(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          slow:
            kind: mock
            latency_ms: 500
        """,
        OPENAI_API_KEY=API_KEY,
    )

    assert [p.name for p in load_settings(environ).providers] == ["openai", "slow"]


def test_mock_disabled_with_no_other_provider_is_an_error_naming_the_variable() -> None:
    error = config_error({"MOCK_ENABLED": "false"})

    assert error.startswith("MOCK_ENABLED: ")
    assert "no provider" in error


def test_mock_enabled_that_is_not_a_flag_is_an_error_naming_the_variable() -> None:
    assert config_error({"MOCK_ENABLED": "maybe"}).startswith("MOCK_ENABLED: ")


# Each environment variable


def test_ports_are_read_from_the_environment() -> None:
    settings = load_settings({"GRPC_PORT": "6000", "HTTP_PORT": "6001", "METRICS_PORT": "6002"})

    assert (settings.grpc_port, settings.http_port, settings.metrics_port) == (6000, 6001, 6002)


def test_port_zero_is_accepted_for_an_ephemeral_port() -> None:
    assert load_settings({"GRPC_PORT": "0"}).grpc_port == 0


def test_log_level_is_case_insensitive() -> None:
    assert load_settings({"LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_shutdown_grace_seconds_is_read_as_a_number() -> None:
    assert load_settings({"SHUTDOWN_GRACE_SECONDS": "2.5"}).shutdown_grace_seconds == 2.5


def test_max_request_bytes_is_read_as_an_integer() -> None:
    assert load_settings({"MAX_REQUEST_BYTES": "1048576"}).max_request_bytes == 1048576


def test_request_timeout_seconds_is_read_as_a_number() -> None:
    assert load_settings({"REQUEST_TIMEOUT_SECONDS": "30"}).request_timeout_seconds == 30.0


def test_internal_auth_token_is_a_comma_list_with_spaces_trimmed() -> None:
    settings = load_settings({"INTERNAL_AUTH_TOKEN": " tok-a , tok-b,tok-c "})

    assert settings.auth_tokens == ("tok-a", "tok-b", "tok-c")


def test_openai_base_url_loses_its_trailing_slash() -> None:
    settings = load_settings({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/"})

    assert provider(settings, "openai").base_url == "http://127.0.0.1:8000/v1"


def test_openai_models_is_a_comma_list() -> None:
    settings = load_settings({"OPENAI_API_KEY": API_KEY, "OPENAI_MODELS": "gpt-4o, o3 ,"})

    assert provider(settings, "openai").models == ("gpt-4o", "o3")


def test_mock_latency_and_token_rate_become_mock_options() -> None:
    settings = load_settings({"MOCK_LATENCY_MS": "150", "MOCK_TOKENS_PER_SECOND": "40"})

    assert provider(settings, "mock").options == {"latency_ms": 150.0, "tokens_per_second": 40.0}


# Invalid environment values


@pytest.mark.parametrize("value", ["abc", "70000", "-1"])
def test_bad_port_is_an_error_naming_the_variable(value: str) -> None:
    assert config_error({"GRPC_PORT": value}).startswith("GRPC_PORT: ")


def test_non_ascii_digit_port_is_a_config_error() -> None:
    # "²".isdigit() is True but int("²") raises ValueError, which escapes as a traceback.
    assert config_error({"HTTP_PORT": "²"}).startswith("HTTP_PORT: ")


def test_unknown_log_level_is_an_error_naming_the_variable() -> None:
    assert config_error({"LOG_LEVEL": "LOUD"}).startswith("LOG_LEVEL: ")


def test_negative_shutdown_grace_is_an_error_naming_the_variable() -> None:
    assert config_error({"SHUTDOWN_GRACE_SECONDS": "-1"}).startswith("SHUTDOWN_GRACE_SECONDS: ")


def test_non_numeric_request_timeout_is_an_error_naming_the_variable() -> None:
    assert config_error({"REQUEST_TIMEOUT_SECONDS": "soon"}).startswith("REQUEST_TIMEOUT_SECONDS: ")


def test_zero_max_request_bytes_is_an_error_naming_the_variable() -> None:
    assert config_error({"MAX_REQUEST_BYTES": "0"}).startswith("MAX_REQUEST_BYTES: ")


def test_non_url_openai_base_url_is_an_error_naming_the_variable() -> None:
    assert config_error({"OPENAI_BASE_URL": "localhost:8000"}).startswith("OPENAI_BASE_URL: ")


def test_auth_token_list_with_no_token_is_an_error_naming_the_variable() -> None:
    assert config_error({"INTERNAL_AUTH_TOKEN": ","}).startswith("INTERNAL_AUTH_TOKEN: ")


# The YAML file


def test_yaml_adds_an_openai_kind_deployment(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1/
            models: [llama-3.1-8b-instruct]
        """,
    )

    assert provider(load_settings(environ), "vllm") == ProviderSettings(
        name="vllm",
        kind="openai",
        models=("llama-3.1-8b-instruct",),
        base_url="http://127.0.0.1:8000/v1",
    )


def test_yaml_mock_deployment_keeps_its_extra_keys_as_options(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          slow:
            kind: mock
            latency_ms: 500
        """,
    )

    slow = provider(load_settings(environ), "slow")
    assert (slow.kind, slow.models, slow.options) == ("mock", ("mock",), {"latency_ms": 500})


def test_yaml_interpolates_a_set_variable(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://${VLLM_HOST}:8000/v1
        """,
        VLLM_HOST="10.0.0.7",
    )

    assert provider(load_settings(environ), "vllm").base_url == "http://10.0.0.7:8000/v1"


def test_yaml_interpolation_uses_the_default_when_the_variable_is_unset(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://${VLLM_HOST:-127.0.0.1}:8000/v1
        """,
    )

    assert provider(load_settings(environ), "vllm").base_url == "http://127.0.0.1:8000/v1"


def test_yaml_interpolation_uses_the_default_when_the_variable_is_empty(tmp_path: Path) -> None:
    # `${VAR:-default}` means "unset or empty" in POSIX shell and Docker Compose alike.
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: ${FAST_MODEL:-mock/mock}
        """,
        FAST_MODEL="",
    )

    assert load_settings(environ).aliases == {"fast": "mock/mock"}


def test_yaml_interpolation_of_a_missing_variable_names_the_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            api_key: ${VLLM_API_KEY}
        """,
    )

    assert config_error(environ).startswith("providers.vllm.api_key: ")


def test_yaml_unknown_provider_kind_is_an_error_naming_the_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          claude:
            kind: bedrock
        """,
    )

    assert config_error(environ).startswith("providers.claude.kind: ")


def test_yaml_models_that_are_not_a_list_are_an_error_naming_the_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            models: llama-3
        """,
    )

    assert config_error(environ).startswith("providers.vllm.models: ")


def test_yaml_models_with_an_empty_name_are_an_error_naming_the_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            models: [llama-3, ""]
        """,
    )

    assert config_error(environ).startswith("providers.vllm.models: ")


def test_yaml_models_section_defines_aliases(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: openai/gpt-4o-mini
          default: mock
        """,
        OPENAI_API_KEY=API_KEY,
        MOCK_ENABLED="true",
    )

    assert load_settings(environ).aliases == {"fast": "openai/gpt-4o-mini", "default": "mock"}


# Unknown keys in the YAML file


def test_yaml_misspelt_deployment_key_is_an_error_suggesting_the_right_one(tmp_path: Path) -> None:
    # `base-url` once became an adapter option and the deployment went to the vendor's public URL.
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base-url: http://127.0.0.1:8000/v1
        """,
    )

    error = config_error(environ)
    assert error.startswith("providers.vllm.base-url: ")
    assert "did you mean base_url?" in error


def test_yaml_option_another_adapter_declares_is_an_error(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1
            max_tokens: 8192
        """,
    )

    assert config_error(environ).startswith("providers.vllm.max_tokens: ")


def test_yaml_options_the_adapter_declares_are_kept(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          claude-eu:
            kind: anthropic
            version: "2023-06-01"
            max_tokens: 8192
        """,
    )

    options = provider(load_settings(environ), "claude-eu").options
    assert options == {"version": "2023-06-01", "max_tokens": 8192}


def test_yaml_misspelt_section_is_an_error_suggesting_the_right_one(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        fallback:
          gpt-4o: [gpt-4o-mini]
        """,
    )

    error = config_error(environ)
    assert error.startswith("fallback: ")
    assert "did you mean fallbacks?" in error


def test_yaml_misspelt_price_field_is_an_error_suggesting_the_right_one(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        prices:
          my-finetune: {input: 3.0, output: 12.0, cached: 1.5}
        """,
    )

    error = config_error(environ)
    assert error.startswith("prices.my-finetune.cached: ")
    assert "did you mean cached_input?" in error


def test_yaml_misspelt_kind_is_an_error_suggesting_the_right_one(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          claude:
            kind: antropic
        """,
    )

    error = config_error(environ)
    assert error.startswith("providers.claude.kind: ")
    assert "did you mean anthropic?" in error


def test_yaml_deployment_without_kind_named_like_no_kind_suggests_one(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          opneai:
            api_key: ${KEY:-x}
        """,
    )

    error = config_error(environ)
    assert error.startswith("providers.opneai.kind: ")
    assert "did you mean openai?" in error


def test_unknown_key_error_does_not_echo_its_value(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        f"""
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1
            apikey: {API_KEY}
        """,
    )

    error = config_error(environ)
    assert error.startswith("providers.vllm.apikey: ")
    assert API_KEY not in error


# References in the YAML file resolve to a configured deployment and model


def test_alias_to_an_unknown_deployment_is_an_error_naming_the_alias(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: opnai/gpt-4o-mini
        """,
        OPENAI_API_KEY=API_KEY,
    )

    error = config_error(environ)
    assert error.startswith("models.fast: ")
    assert "did you mean" in error


def test_alias_to_a_model_no_deployment_lists_is_an_error(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: gpt-4o-mini
        """,
    )

    assert config_error(environ).startswith("models.fast: ")


def test_alias_to_another_alias_is_an_error(tmp_path: Path) -> None:
    # Aliases do not chain: routing replaces an alias once.
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: quick
          quick: mock/mock
        """,
    )

    assert config_error(environ).startswith("models.fast: ")


def test_aliases_to_listed_models_and_deployment_paths_load(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: gpt-4o-mini
          newest: openai/gpt-5-turbo-preview
          local: vllm/meta-llama/Llama-3.1-8B-Instruct
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1
            models: [meta-llama/Llama-3.1-8B-Instruct]
        """,
        OPENAI_API_KEY=API_KEY,
    )

    assert set(load_settings(environ).aliases) == {"fast", "newest", "local"}


def test_fallback_to_an_unknown_model_is_an_error_naming_its_place(tmp_path: Path) -> None:
    # It used to start, then answer every gpt-4o call with a 400 blaming the caller.
    environ = with_yaml(
        tmp_path,
        """
        fallbacks:
          gpt-4o: [gpt-4o-mini, claude-sonnet-4-5]
        """,
        OPENAI_API_KEY=API_KEY,
    )

    error = config_error(environ)
    assert error.startswith("fallbacks.gpt-4o[1]: ")
    assert "claude-sonnet-4-5" in error


def test_fallback_for_a_model_nothing_routes_is_an_error_naming_the_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        fallbacks:
          gpt4o: [gpt-4o-mini]
        """,
        OPENAI_API_KEY=API_KEY,
    )

    error = config_error(environ)
    assert error.startswith("fallbacks.gpt4o: ")
    assert "did you mean gpt-4o?" in error


def test_fallbacks_through_aliases_and_deployment_paths_load(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        models:
          fast: openai/gpt-4o-mini
        fallbacks:
          fast: [openai/gpt-4.1-mini, gpt-4o]
        """,
        OPENAI_API_KEY=API_KEY,
    )

    assert load_settings(environ).fallbacks == {"fast": ("openai/gpt-4.1-mini", "gpt-4o")}


def test_price_for_an_unknown_deployment_is_an_error_naming_the_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1
        prices:
          vlm/*: {input: 0, output: 0}
        """,
    )

    error = config_error(environ)
    assert error.startswith("prices.vlm/*: ")
    assert "did you mean vllm?" in error


def test_prices_for_deployments_and_plain_models_load(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            base_url: http://127.0.0.1:8000/v1
            models: [meta-llama/Llama-3.1-8B-Instruct]
        prices:
          vllm/*: {input: 0, output: 0}
          vllm/qwen-2: {input: 0.1, output: 0.2}
          my-finetune: {input: 3.0, output: 12.0}
          meta-llama/Llama-3.1-8B-Instruct: {input: 0.05, output: 0.05}
        """,
    )

    assert set(load_settings(environ).prices) == {
        "vllm/*",
        "vllm/qwen-2",
        "my-finetune",
        "meta-llama/Llama-3.1-8B-Instruct",
    }


def test_unreadable_yaml_path_is_an_error_naming_gateway_config(tmp_path: Path) -> None:
    error = config_error({"GATEWAY_CONFIG": str(tmp_path / "missing.yaml")})

    assert error.startswith("GATEWAY_CONFIG: ")


def test_invalid_yaml_is_an_error_naming_gateway_config(tmp_path: Path) -> None:
    environ = with_yaml(tmp_path, "providers: [unclosed\n")

    assert config_error(environ).startswith("GATEWAY_CONFIG: ")


def test_yaml_that_is_not_utf8_is_an_error_naming_gateway_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_bytes(b"models:\n  fast: caf\xe9\n")  # Latin-1, not UTF-8

    assert config_error({"GATEWAY_CONFIG": str(path)}).startswith("GATEWAY_CONFIG: ")


def test_yaml_provider_named_openai_replaces_the_environment_one(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          openai:
            base_url: http://127.0.0.1:9999/v1
            models: [gpt-4o]
        """,
        OPENAI_API_KEY=API_KEY,
    )

    assert provider(load_settings(environ), "openai") == ProviderSettings(
        name="openai", kind="openai", models=("gpt-4o",), base_url="http://127.0.0.1:9999/v1"
    )


# Secrets never reach logs


def test_settings_repr_hides_the_api_key_and_auth_tokens() -> None:
    settings = load_settings({"OPENAI_API_KEY": API_KEY, "INTERNAL_AUTH_TOKEN": "tok-a,tok-b"})

    shown = repr(settings)
    assert [secret for secret in (API_KEY, "tok-a", "tok-b") if secret in shown] == []


def test_provider_settings_repr_hides_the_api_key() -> None:
    settings = load_settings({"OPENAI_API_KEY": API_KEY})

    assert API_KEY not in repr(provider(settings, "openai"))


def test_yaml_provider_repr_hides_the_interpolated_api_key(tmp_path: Path) -> None:
    environ = with_yaml(
        tmp_path,
        """
        providers:
          vllm:
            kind: openai
            api_key: ${VLLM_API_KEY}
        """,
        VLLM_API_KEY=API_KEY,
    )

    assert API_KEY not in repr(load_settings(environ))


def test_invalid_yaml_error_does_not_echo_the_file_contents(tmp_path: Path) -> None:
    # The CLI prints this message; a syntax error on the api_key line must not print the key.
    environ = with_yaml(
        tmp_path,
        f"""
        providers:
          vllm:
            kind: openai
            api_key: {API_KEY}: oops
        """,
    )

    assert API_KEY not in config_error(environ)


# The command line


def run_cli(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m gateway` with only `environ` (and PATH); it must stop before serving."""
    return subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={**environ, "PATH": os.environ.get("PATH", "")},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        (
            "providers:\n  vllm:\n    kind: openai\n    base-url: http://127.0.0.1:1/v1\n",
            "providers.vllm.base-url",
        ),
        ("fallbacks:\n  mock: [mock/mock, gpt-4o]\n", "fallbacks.mock[1]"),
    ],
    ids=["unknown-key", "bad-fallback"],
)
def test_cli_with_a_bad_yaml_exits_2_with_one_line_naming_the_place(
    tmp_path: Path, text: str, setting: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(text, encoding="utf-8")

    # Were the file accepted, the gateway would serve: on free ports, from tmp_path, one process.
    result = run_cli(
        {
            "GATEWAY_CONFIG": str(config),
            "WORKERS": "1",
            "GRPC_PORT": "0",
            "HTTP_PORT": "0",
            "METRICS_PORT": "0",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'usage.db'}",
            "USAGE_SPILL_PATH": str(tmp_path / "usage.spill.jsonl"),
        }
    )

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"invalid configuration: {setting}: " in result.stderr


def test_cli_with_a_bad_port_exits_2_with_one_line_naming_the_variable() -> None:
    result = run_cli({"GRPC_PORT": "notaport"})

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "GRPC_PORT" in result.stderr


def test_image_fetching_is_bounded_by_default_and_allows_only_public_addresses() -> None:
    policy = load_settings({}).image_fetch

    assert (policy.max_bytes, policy.timeout) == (10 * 1024 * 1024, 10.0)
    assert (policy.addresses.allowed_networks, policy.addresses.allowed_hosts) == ((), frozenset())


def test_image_fetch_settings_are_read_from_the_environment() -> None:
    policy = load_settings(
        {
            "IMAGE_FETCH_MAX_BYTES": "2048",
            "IMAGE_FETCH_TIMEOUT_SECONDS": "2.5",
            "IMAGE_FETCH_ALLOW": "10.1.0.0/16, images.internal",
        }
    ).image_fetch

    assert (policy.max_bytes, policy.timeout) == (2048, 2.5)
    assert [str(n) for n in policy.addresses.allowed_networks] == ["10.1.0.0/16"]
    assert policy.addresses.allowed_hosts == {"images.internal"}


def test_an_image_fetch_allow_entry_that_is_neither_network_nor_host_names_the_variable() -> None:
    assert config_error({"IMAGE_FETCH_ALLOW": "10.0.0.0/40"}).startswith(
        "IMAGE_FETCH_ALLOW: '10.0.0.0/40' is neither an IP network (CIDR) nor a host name"
    )


def test_the_mock_can_be_a_text_only_deployment() -> None:
    (mock,) = load_settings({"MOCK_CAPABILITIES": "text"}).providers

    assert mock.option("capabilities", "all") == "text"
