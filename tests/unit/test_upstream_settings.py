"""The settings of the gateway's HTTP client to providers: CA bundle and proxies."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import ConfigError, load_settings
from providers.http.proxies import ProxySettings
from tests.fakes.tls import LoopbackAuthority


def test_by_default_no_ca_bundle_and_no_proxy() -> None:
    upstream = load_settings({}).upstream
    assert upstream.ca_bundle == ""
    assert upstream.proxies == ProxySettings()


def test_a_ca_bundle_that_reads_as_pem_certificates_is_kept(tmp_path: Path) -> None:
    authority = LoopbackAuthority.create(tmp_path)
    settings = load_settings({"UPSTREAM_CA_BUNDLE": str(authority.ca_file)})
    assert settings.upstream.ca_bundle == str(authority.ca_file)


@pytest.mark.parametrize("content", [None, b"not a certificate"], ids=["missing", "not PEM"])
def test_a_ca_bundle_that_is_not_pem_certificates_is_an_error_naming_it(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "bundle.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        load_settings({"UPSTREAM_CA_BUNDLE": str(path)})
    assert refused.value.setting == "UPSTREAM_CA_BUNDLE"


def test_proxy_variables_are_read_lowercase_first() -> None:
    environ = {
        "HTTPS_PROXY": "http://upper:3128",
        "https_proxy": "http://lower:3128",
        "HTTP_PROXY": "http://plain:3128",
        "NO_PROXY": "localhost,.internal",
    }
    proxies = load_settings(environ).upstream.proxies
    assert proxies == ProxySettings(
        http="http://plain:3128", https="http://lower:3128", no_proxy="localhost,.internal"
    )


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy"])
def test_a_proxy_that_is_not_an_http_url_is_an_error_that_hides_its_credentials(
    name: str,
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({name: "socks5://user:hunter2@proxy:1080"})
    assert refused.value.setting == name
    assert "hunter2" not in str(refused.value)


def test_proxy_credentials_stay_out_of_the_settings_repr() -> None:
    settings = load_settings({"HTTPS_PROXY": "http://user:hunter2@proxy:3128"})
    assert settings.upstream.proxies.https == "http://user:hunter2@proxy:3128"
    assert "hunter2" not in repr(settings)
