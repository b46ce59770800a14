"""Patent E8 in the agent: the diversion (tls_divert) and the relay (tls_relay) as one part.

The agent composes it when `[tls_gateway] enabled`: it wraps the host side's send routine,
reads the diversion device, and adds `tls_gateway` to `status`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

from guest_agent.config import TlsGatewaySection
from guest_agent.demux import Side
from guest_agent.tls_divert import SendPackets, SendSuperFrame, TlsDiversion
from guest_agent.tls_relay import TlsRelay
from netstack.runtime.configfile import ConfigError

if TYPE_CHECKING:
    from guest_agent.host_side import HostSide

log = logging.getLogger("guest_agent.tls")
_TCP = 6


class TlsGateway:
    def __init__(self, config: TlsGatewaySection, home_address: IPv6Address,
                 counters: Counter[str]) -> None:
        self.counters = counters
        self.diversion = TlsDiversion(config, counters)
        try:
            self.relay = TlsRelay(config, home_address, counters)
        except BaseException:
            self.diversion.close()
            raise

    def attach_host(self, host_side: HostSide) -> None:
        """Let `status` show each flow as the host application sees it (IPv4 or IPv6)."""
        home_ipv4 = host_side.config.translation.home_ipv4

        def describe(client: str, port: int, destination: str, dport: int) -> str:
            remote = IPv6Address(destination).packed
            side = host_side.demux.side_of((_TCP, port, remote, dport))
            if side is Side.HOST_IPV4:
                entry = host_side.table.get(remote)
                shown = IPv4Address(entry.ipv4) if entry is not None else destination
                return f"IPv4 {home_ipv4}:{port} -> {shown}:{dport}"
            if side is Side.HOST_IPV6:
                return f"IPv6 [{client}]:{port} -> [{destination}]:{dport}"
            return "unknown"

        self.relay.describe = describe
        self.relay.nat64 = host_side.config.translation.prefix64

    def wrap_send(self, send: SendPackets) -> SendPackets:
        return self.diversion.wrap_send(send)

    def wrap_super_frame(self, send: SendSuperFrame) -> SendSuperFrame:
        return self.diversion.wrap_super_frame(send)

    def start(self, loop: asyncio.AbstractEventLoop,
              add_reader: Callable[[object, Callable[[], None]], None],
              on_replies: Callable[[list[bytes]], None]) -> None:
        add_reader(self.diversion.tun, lambda: on_replies(self.diversion.replies()))
        task = loop.create_task(self.relay.start())
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[None]) -> None:
        if task.exception() is not None:
            log.error("TLS relay did not start: %s", task.exception())
            self.counters["tls_relay_start_failed"] += 1

    def status(self, now: float) -> dict[str, Any]:
        return {"tls_gateway": {**self.relay.status(now),
                                "diverted_packets": self.counters["tls_diverted_packets"]}}

    def close(self) -> None:
        self.relay.close()
        self.diversion.close()


def make_tls_gateway(config: Any, counters: Counter[str]) -> TlsGateway | None:
    """The E8 part of an agent whose [tls_gateway] is enabled (and that serves a host)."""
    section: TlsGatewaySection = config.tls_gateway
    if not section.enabled:
        return None
    validate(section)
    if not config.host_link.interface:
        log.warning("[tls_gateway] is enabled but no host link is configured: nothing to relay")
        return None
    return TlsGateway(section, config.mobility.home_address, counters)


def validate(section: TlsGatewaySection) -> None:
    """One clear error for a policy the relay could not serve (before anything is touched)."""
    bad = [p for p in section.ports if not 1 <= p <= 65535]
    if not section.ports or bad:
        raise ConfigError(f"[tls_gateway] ports: need TCP ports 1-65535, got {section.ports}")
    if not 1 <= section.port <= 65535:
        raise ConfigError(f"[tls_gateway] port: {section.port} is not a TCP port")
    if section.connect_timeout <= 0:
        raise ConfigError("[tls_gateway] connect_timeout must be positive")
    if section.reply_mark == section.divert_mark or 0 in (section.reply_mark,
                                                          section.divert_mark):
        raise ConfigError("[tls_gateway] reply_mark and divert_mark: two different non-zero "
                          "values (they are also routing table numbers)")
    for name in ("ca_file", "client_cert", "client_key"):
        path = getattr(section, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"[tls_gateway] {name}: {path} does not exist")
    if section.client_key is not None and section.client_cert is None:
        raise ConfigError("[tls_gateway] client_key without client_cert")
