"""Which addresses the gateway may fetch a caller's image from: the SSRF guard.

A caller's URL must not make the gateway reach what only the gateway can reach: loopback,
private networks (RFC 1918, IPv6 unique local), link-local, carrier-grade NAT, multicast,
reserved and unspecified addresses, and the clouds' metadata services (169.254.169.254,
fd00:ec2::254 and the like, all inside those ranges). IPv4 addresses wrapped in IPv6
(`::ffff:10.0.0.1`, NAT64 `64:ff9b::a00:1`, 6to4) are judged as the IPv4 address they carry.
Only what the operator allow-lists (`IMAGE_FETCH_ALLOW`: networks in CIDR form, or host names)
may be reached among them.

`GuardedResolver` resolves a host for aiohttp and hands it only the addresses the policy
allows, so the connection goes to the very address that was checked (no gap between the check
and the connect for DNS to change its answer in); an IP literal in a URL never reaches a
resolver, so the fetcher checks those with `AddressPolicy.check_literal` itself.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Ranges that `is_global` calls global but that reach inside a network anyway.
_ALSO_REFUSED: Final[tuple[IPNetwork, ...]] = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME: Final = re.compile(
    r"(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?",
    re.IGNORECASE,
)


class RefusedAddressError(OSError):
    """The host is (or resolves only to) addresses the gateway must not fetch from."""


def parse_allow_list(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """Networks and host names from `IMAGE_FETCH_ALLOW` entries; ValueError naming a bad one."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if _HOST_NAME.fullmatch(entry) is None or entry.replace(".", "").isdigit():
            raise ValueError(f"{entry!r} is neither an IP network (CIDR) nor a host name")
        hosts.add(entry.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses are allowed; the rest only when allow-listed (by network or host)."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: tuple[str, ...]) -> AddressPolicy:
        """The policy for `IMAGE_FETCH_ALLOW` entries (ValueError for a bad one)."""
        networks, hosts = parse_allow_list(entries)
        return cls(networks, hosts)

    def host_allowed(self, host: str) -> bool:
        """Whether `host` is allow-listed by name (then whatever it resolves to is fetched)."""
        return host.lower().rstrip(".") in self.allowed_hosts

    def allows(self, address: IPAddress) -> bool:
        """Whether the gateway may connect to `address`."""
        if any(address in network for network in self.allowed_networks):
            return True
        return is_public(address)

    def check_literal(self, host: str) -> None:
        """Raise `RefusedAddressError` when `host` is an IP address the policy refuses."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not self.allows(address):
            raise RefusedAddressError(f"{_kind(address)} address")


def is_public(address: IPAddress) -> bool:
    """Whether `address` is a public unicast address (and carries no refused IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            return is_public(carried)
    if address.is_multicast or not address.is_global:
        return False
    return not any(address in network for network in _ALSO_REFUSED)


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str:
    """What a refused address is, for the caller's error message (never the address itself)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _carried_ipv4(address) or address
    for test, name in (
        ("is_unspecified", "an unspecified"),
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_private", "a private"),
    ):
        if getattr(address, test):
            return name
    return "a non-public"


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, keeping only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses the policy allows; `RefusedAddressError` when there are none."""
        found = await self._resolver.resolve(host, port, family)
        if self._policy.host_allowed(host):
            return found
        kept = [r for r in found if self._policy.allows(ipaddress.ip_address(r["host"]))]
        if not kept:
            kinds = {_kind(ipaddress.ip_address(r["host"])) for r in found}
            raise RefusedAddressError(f"the host resolves to {' or '.join(sorted(kinds))} address")
        return kept

    async def close(self) -> None:
        """Close the resolver underneath."""
        await self._resolver.close()
