"""Which proxy a provider call goes through: `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.

The variables are read once, at start-up, by the gateway's settings; here each request's URL is
matched against them (`NO_PROXY` as curl reads it: `*`, host names that also cover their
subdomains, a leading dot or not, an optional `:port`, IP addresses and CIDR ranges), and the
answer is remembered per scheme and host. aiohttp's own `trust_env` would read the environment
and `~/.netrc` again, on worker threads, for every request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import encode_basic_auth
from yarl import URL

_MAX_REMEMBERED: Final = 512


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Proxy URLs (http://, credentials allowed) by the scheme of the target; "" for none."""

    http: str = field(default="", repr=False)
    https: str = field(default="", repr=False)
    #: Comma-separated hosts and domains reached directly ("*": all).
    no_proxy: str = ""


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy to go through: its URL without credentials, and the headers that carry them."""

    url: URL
    #: `Proxy-Authorization` when the URL had credentials, else empty.
    headers: Mapping[str, str] = field(repr=False)


class ProxyRoutes:
    """The proxy (or None) for each target URL, as `ProxySettings` say."""

    def __init__(self, settings: ProxySettings) -> None:
        self._direct = tuple(
            entry.strip().lower() for entry in settings.no_proxy.split(",") if entry.strip()
        )
        self._by_scheme = {
            scheme: _proxy(url)
            for scheme, url in (("http", settings.http), ("https", settings.https))
            if url
        }
        self._remembered: dict[tuple[str, str], Proxy | None] = {}

    def __bool__(self) -> bool:
        """Whether any proxy is configured at all."""
        return bool(self._by_scheme)

    def for_url(self, url: URL) -> Proxy | None:
        """The proxy a request to `url` goes through, or None to connect directly."""
        place = (url.scheme, url.host_port_subcomponent or "")
        try:
            return self._remembered[place]
        except KeyError:
            pass
        proxy = self._by_scheme.get(url.scheme)
        if proxy is not None and _direct(url.host or "", url.port, self._direct):
            proxy = None
        if len(self._remembered) >= _MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered[place] = proxy
        return proxy


def _proxy(text: str) -> Proxy:
    url = URL(text)
    headers = {}
    if url.user:
        headers["Proxy-Authorization"] = encode_basic_auth(url.user, url.password or "")
    return Proxy(url.with_user(None), headers)


def _direct(host: str, port: int | None, entries: tuple[str, ...]) -> bool:
    """Whether `NO_PROXY`'s `entries` say to reach `host` (at `port`) directly."""
    host = host.lower().strip("[]")
    for entry in entries:
        if entry == "*":
            return True
        name, wanted_port = entry, None
        if entry.count(":") == 1 or entry.startswith("["):  # host:port or [v6]:port
            name, _, after = entry.rpartition(":")
            if not after.isdecimal():
                name = entry
            else:
                wanted_port = int(after)
        name = name.strip("[]").lstrip(".")
        if wanted_port is not None and wanted_port != port:
            continue
        if host == name or host.endswith("." + name) or _in_network(host, name):
            return True
    return False


def _in_network(host: str, entry: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return address in network
