"""What the host end of virtual network 15 should look like (interface 19 of the patent).

Defaults (all configurable) avoid common LANs: the virtual IPv4 side uses the benchmarking
range 198.18.0.0/15 (RFC 2544), which fake-IP resolvers also use, so it does not collide with
a home or office RFC 1918 network:

    pool 198.18.0.0/24   .0 network, .1 the agent (gateway, DNS), .2 the home address's
                         virtual IPv4 address (on the host interface), .3-.254 dynamic
                         entries of translation table 230, .255 broadcast
    MTU 1440             1500 minus the 40-octet IPv6-in-IPv6 tunnel header and the 20 octets
                         an IPv4 header grows by when translated to IPv6
    E2 (IPv6 apps)       the home address 2001:db8:6::1000/128 on the interface, default
                         route via the agent's link-local fe80::1
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    ip_address,
)
from typing import Any

from host_shim.errors import ShimError

DEFAULT_INTERFACE = "eth0"
DEFAULT_POOL = IPv4Network("198.18.0.0/24")
DEFAULT_IPV4 = IPv4Interface("198.18.0.2/24")
DEFAULT_GATEWAY = IPv4Address("198.18.0.1")
DEFAULT_MTU = 1440
DEFAULT_DNS = (DEFAULT_GATEWAY,)
DEFAULT_HOME_ADDRESS = IPv6Address("2001:db8:6::1000")
DEFAULT_IPV6_GATEWAY = IPv6Address("fe80::1")
MIN_MTU = 1280  # the tunnel is IPv6: nothing smaller survives it unfragmented
MAX_MTU = 65535

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class ShimConfig:
    """The host interface's configuration; None for a part that is switched off."""

    interface: str = DEFAULT_INTERFACE
    ipv4: IPv4Interface | None = DEFAULT_IPV4  # scenario "IPv4 translation" (E1)
    ipv4_gateway: IPv4Address | None = DEFAULT_GATEWAY
    pool: IPv4Network | None = DEFAULT_POOL
    mtu: int | None = DEFAULT_MTU
    dns: tuple[IPAddress, ...] = DEFAULT_DNS
    home_address: IPv6Address | None = DEFAULT_HOME_ADDRESS  # scenario "IPv6 passthrough" (E2)
    ipv6_gateway: IPv6Address | None = DEFAULT_IPV6_GATEWAY

    def validate(self) -> ShimConfig:
        if not self.interface or len(self.interface) > 15 or "/" in self.interface:
            raise ShimError(f"invalid interface name {self.interface!r}")
        if self.mtu is not None and not MIN_MTU <= self.mtu <= MAX_MTU:
            raise ShimError(f"MTU {self.mtu} out of range {MIN_MTU}-{MAX_MTU}")
        if self.ipv4 is not None:
            if self.ipv4.network.prefixlen > 30:
                raise ShimError(f"IPv4 address {self.ipv4} leaves no room for a gateway")
            if self.ipv4_gateway is not None and not (
                    self.ipv4_gateway in self.ipv4.network
                    or (self.pool is not None and self.ipv4_gateway in self.pool)):
                raise ShimError(f"gateway {self.ipv4_gateway} is not on the link of {self.ipv4}")
            if self.ipv4_gateway == self.ipv4.ip:
                raise ShimError(f"gateway {self.ipv4_gateway} is the host's own address")
        if self.home_address is not None and (self.home_address.is_link_local
                                              or self.home_address.is_multicast):
            raise ShimError(f"home address {self.home_address} must be a global unicast address")
        if self.ipv6_gateway is not None and self.ipv6_gateway.is_multicast:
            raise ShimError(f"IPv6 gateway {self.ipv6_gateway} is a multicast address")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, int | str | bool):
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return str(value)


def config_from_dict(data: dict[str, Any]) -> ShimConfig:
    """Inverse of ShimConfig.as_dict (the state file keeps the applied config)."""
    def opt(key: str, conv: Any) -> Any:
        value = data.get(key)
        return None if value is None else conv(value)

    return ShimConfig(
        interface=str(data.get("interface", DEFAULT_INTERFACE)),
        ipv4=opt("ipv4", IPv4Interface), ipv4_gateway=opt("ipv4_gateway", IPv4Address),
        pool=opt("pool", IPv4Network), mtu=opt("mtu", int),
        dns=tuple(ip_address(a) for a in data.get("dns", ())),
        home_address=opt("home_address", IPv6Address),
        ipv6_gateway=opt("ipv6_gateway", IPv6Address),
    )


def _field(answer: dict[str, Any], key: str, conv: Any, default: Any = None) -> Any:
    value = answer.get(key, default)
    if value is None:
        return None
    try:
        return conv(value)
    except (ValueError, TypeError) as exc:
        raise ShimError(f"agent host_config: bad {key} {value!r}: {exc}") from None


def config_from_agent(answer: dict[str, Any], interface: str | None = None) -> ShimConfig:
    """Build the config from the agent's `{"cmd": "host_config"}` answer.

    `interface` (the --interface flag) wins over the agent's interface_hint: the agent
    knows its own end of the link, not the name the host gives the other end.
    """
    if not isinstance(answer, dict):
        raise ShimError(f"agent host_config: expected an object, got {answer!r}")
    scenarios = answer.get("scenarios")
    scenarios = {} if scenarios is None else scenarios
    if not isinstance(scenarios, dict):
        raise ShimError(f"agent host_config: bad scenarios {scenarios!r}")
    translation = bool(scenarios.get("ipv4_translation", True))
    passthrough = bool(scenarios.get("ipv6_passthrough", True))
    name = interface or answer.get("interface_hint") or DEFAULT_INTERFACE
    ipv4 = None
    if translation:
        address = _field(answer, "ipv4_address", IPv4Address)
        if address is None:
            raise ShimError("agent host_config: ipv4_translation is on but ipv4_address is missing")
        prefixlen = _field(answer, "ipv4_prefixlen", int, 24)
        try:
            ipv4 = IPv4Interface(f"{address}/{prefixlen}")
        except ValueError as exc:
            raise ShimError(f"agent host_config: bad ipv4_prefixlen {prefixlen!r}: {exc}") from None
    dns_raw = answer.get("dns", [])
    if not isinstance(dns_raw, list):
        raise ShimError(f"agent host_config: bad dns {dns_raw!r}")
    dns = tuple(_field({"dns": d}, "dns", ip_address) for d in dns_raw)
    config = ShimConfig(
        interface=str(name),
        ipv4=ipv4,
        ipv4_gateway=_field(answer, "ipv4_gateway", IPv4Address) if translation else None,
        pool=_field(answer, "pool", lambda v: IPv4Network(v, strict=False)) if translation else None,
        mtu=_field(answer, "mtu", int),
        dns=dns,
        home_address=_field(answer, "home_address", IPv6Address) if passthrough else None,
        ipv6_gateway=_field(answer, "ipv6_gateway", IPv6Address) if passthrough else None,
    )
    return config.validate()


def with_interface(config: ShimConfig, interface: str) -> ShimConfig:
    return replace(config, interface=interface)
