"""Everything the guest does for the host OS: scenario unit (23) and IP packet processing (22).

Composition of the host link (virtual network 15), the scenario policy (table 220, BA routine
60), translation table 230 with its RFC 7915 translator, the flow demultiplexer shared with
`hoa0`, DNS for IPv4 applications, and the persistence of table 230 across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from guest_agent.config import AgentConfig
from guest_agent.demux import FlowDemux, Side
from guest_agent.dns_proxy import DnsProxy
from guest_agent.dns_upstream import upstream_udp
from guest_agent.fast_path import HOST_LINK_PROTOCOLS
from guest_agent.host_link import HostLink
from guest_agent.ipv4_path import Ipv4Translation
from guest_agent.scenario import Scenario, ScenarioPolicy
from guest_agent.sip_alg_path import SipAlgPath
from netstack.mobility.events import BindingAccepted
from netstack.runtime.afpacket_split import open_link
from netstack.runtime.linkconfig import configure_link
from netstack.translate.pool import IPv4Pool
from netstack.translate.rfc6052 import Rfc6052Prefix
from netstack.translate.rfc7915 import Rfc7915Translator, TranslatorConfig
from netstack.translate.table import TranslationTable
from netstack.wire.errors import ParseError
from netstack.wire.ipv4 import build_ipv4_udp, icmpv4_echo_reply, parse_ipv4_udp
from netstack.wire.offload import segment

log = logging.getLogger("guest_agent.host")

SAVE_INTERVAL = 1.0  # at most one write of table 230 per second while it changes
REFRESH_SAVE_INTERVAL = 30.0  # and every 30 s so refreshed lifetimes survive a crash
_DNS_PORT = 53


class HostSide:
    def __init__(
        self,
        config: AgentConfig,
        counters: Counter[str],
        send_from_home_address: Callable[[list[bytes], float], None],
        tunnel_mtu: int,
        send_super_frame: Callable[[bytearray, int, float], bool] | None = None,
    ) -> None:
        self.config = config
        self.counters = counters
        self.send_from_home_address = send_from_home_address
        # The tunnel's whole-super-frame path (False: cut here and send per packet instead)
        self.send_super_frame = send_super_frame or (lambda _packet, _size, _now: False)
        host = config.host_link
        xlat = config.translation
        hoa = config.mobility.home_address
        if host.manage_interface:
            # With offloads the link's features are the administrator's (e.g. GRO for the
            # host's UDP, set by the test bed); the socket then reads offload metadata.
            configure_link(host.interface, disable_ipv6=True, offloads_off=not host.offloads)
        self.link = HostLink(
            open_link(host.interface, HOST_LINK_PROTOCOLS if config.fastpath.enabled else None,
                      vnet_hdr=host.offloads),
            pool=xlat.pool,
            gateway_ipv4=xlat.gateway_ipv4,
            home_ipv4=xlat.home_ipv4,
            home_address=hoa,
            ipv6_gateway=host.ipv6_gateway,
            counters=counters,
        )
        self.scenarios = ScenarioPolicy(
            translation=xlat.enabled, ipv6_passthrough=host.ipv6_passthrough
        )
        self.state_file = config.translation_state_file
        self.table = self._load_table(time.monotonic())
        translator = Rfc7915Translator(
            TranslatorConfig(
                ipv6_mtu=tunnel_mtu,
                ipv4_mtu=host.host_mtu,
                icmpv4_error_source=xlat.gateway_ipv4.packed,
                icmpv6_error_source=hoa.packed,
            )
        )
        self.translation = Ipv4Translation(
            self.table,
            translator,
            home_address=hoa.packed,
            home_ipv4=xlat.home_ipv4.packed,
            gateway_ipv4=xlat.gateway_ipv4.packed,
            counters=counters,
        )
        translator.map_6to4 = self.translation.map_inner_6to4
        translator.map_4to6 = self.translation.map_inner_4to6
        # issue 12: SIP/SDP rewritten on this path, both ways, through table 230
        self.sip_alg = SipAlgPath(self.table, home_address=hoa.packed,
                                  home_ipv4=xlat.home_ipv4.packed,
                                  ports=tuple(config.sip_alg.ports),
                                  enabled=config.sip_alg.enabled, counters=counters)
        self.demux = FlowDemux(self._default_side())
        self.dns = DnsProxy(self._ask_upstream, self._map_for_dns, ttl_cap=config.dns.ttl_cap, counters=counters)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Packets for the host collected over one receive batch, sent with one sendmmsg.
        self._pending_ipv4: list[bytes] = []
        self._pending_ipv6: list[bytes] = []
        self._saved_allocations = -1
        self._next_save: float | None = time.monotonic() + SAVE_INTERVAL
        self._last_save = 0.0

    # ------------------------------------------------------------------ table 230 state

    def _new_table(self) -> TranslationTable:
        xlat = self.config.translation
        pool = IPv4Pool(xlat.pool, exclude=(xlat.gateway_ipv4, xlat.home_ipv4))
        return TranslationTable(pool, prefix=Rfc6052Prefix(xlat.prefix64), idle_timeout=xlat.idle_timeout)

    def _load_table(self, now: float) -> TranslationTable:
        table = self._new_table()
        if self.state_file.exists():
            try:
                loaded = TranslationTable.load(self.state_file, now)
            except (ParseError, OSError, ValueError) as exc:
                log.warning("ignoring unreadable %s: %s", self.state_file, exc)
                self.counters["xlat_state_unreadable"] += 1
            else:
                # Keep our pool/prefix configuration; take the learned rows.
                table.adopt(loaded)
                log.info("loaded %d translations from %s", len(table), self.state_file)
        for mapping in self.config.translation.static:
            table.add_static(mapping.ipv6, mapping.ipv4, now)
        return table

    def save(self, now: float) -> None:
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.table.save(self.state_file, now)
        except OSError as exc:
            self.counters["xlat_state_save_failed"] += 1
            log.warning("cannot save %s: %s", self.state_file, exc)
            return
        self._saved_allocations = self.table.counters["allocated"]
        self._last_save = now

    def get_timer(self) -> float | None:
        return self._next_save

    def handle_timer(self, now: float) -> None:
        if self._next_save is None or now < self._next_save:
            return
        changed = self.table.counters["allocated"] != self._saved_allocations
        if changed or now - self._last_save >= REFRESH_SAVE_INTERVAL:
            self.save(now)
        self._next_save = now + SAVE_INTERVAL

    # ------------------------------------------------------------------ scenario (table 220)

    def _default_side(self) -> Side:
        """Where a packet of no known flow goes (a new inbound connection to the HoA)."""
        if self.scenarios.is_on(Scenario.TRANSLATION_ON):
            return Side.HOST_IPV4
        if self.config.host_link.ipv6_passthrough:
            return Side.HOST_IPV6
        return Side.GUEST

    def on_binding_accepted(self, event: BindingAccepted, now: float, *, protected: bool = False) -> None:
        """BA routine 60: the BA selects the scenarios; 10000 binds the HoA in table 230 (507)."""
        selected = self.scenarios.select(from_home_agent=True, protected=protected)
        if self.scenarios.translating:
            ipv4 = self.table.bind_home_address(
                event.home_address.packed,
                now,
                event.lifetime,
                preferred_ipv4=self.config.translation.home_ipv4.packed,
            )
            if ipv4 is None:
                self.counters["xlat_home_address_unmapped"] += 1
            else:
                log.info("home address %s is %s for the host (step 507)", event.home_address, IPv4Address(ipv4))
        log.info("scenarios selected: %s", ", ".join(str(int(n)) for n in selected) or "none")

    # ------------------------------------------------------------------ data path

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def on_readable(self, now: float) -> None:
        ipv4, ipv6 = self.link.receive()
        outbound: list[bytes] = []
        to_host: list[bytes] = []
        gateway = self.config.translation.gateway_ipv4.packed
        for packet in ipv4:
            if packet[16:20] == gateway:
                # The gateway is the agent itself: DNS and ping are answered, nothing translated.
                if not self._maybe_dns(packet):
                    reply = icmpv4_echo_reply(packet)
                    if reply is not None:
                        to_host.append(reply)
                        self.counters["host_gateway_echo_answered"] += 1
                    else:
                        self.counters["host_rx_ignored_to_gateway"] += 1
                continue
            if not self.scenarios.is_on(Scenario.TRANSLATION_ON):
                self.counters["host_rx_dropped_translation_off"] += 1
                continue
            rewritten = self.sip_alg.outbound(packet, now)  # the same object unless SIP
            if rewritten is not packet:
                packet = memoryview(rewritten)
            out, errors = self.translation.outbound(packet, now)
            for p in out:
                self.demux.note_outbound(p, Side.HOST_IPV4, now)
            outbound.extend(out)
            to_host.extend(errors)
        for packet, offload in self.link.ipv4_super_frames:
            if not self.scenarios.is_on(Scenario.TRANSLATION_ON):
                self.counters["host_rx_dropped_translation_off"] += 1
                continue
            if self.sip_alg.wants(packet):  # GRO merged SIP datagrams: one message each
                for piece in segment(packet, offload.gso_size, l3_offset=0):
                    out, errors = self.translation.outbound(
                        memoryview(self.sip_alg.outbound(piece, now)), now)
                    for p in out:
                        self.demux.note_outbound(p, Side.HOST_IPV4, now)
                    outbound.extend(out)
                    to_host.extend(errors)
                continue
            whole, segments, errors = self.translation.outbound_super_frame(packet, offload, now)
            to_host.extend(errors)
            if whole is not None:
                self.demux.note_outbound(whole, Side.HOST_IPV4, now)  # one flow, one note
                if self.send_super_frame(whole, offload.gso_size, now):
                    continue
                segments = list(segment(whole, offload.gso_size, l3_offset=0))
            elif segments:
                self.demux.note_outbound(segments[0], Side.HOST_IPV4, now)
            outbound.extend(segments)  # type: ignore[arg-type]
        if ipv6:
            if self.config.host_link.ipv6_passthrough:
                for p in ipv6:
                    self.demux.note_outbound(p, Side.HOST_IPV6, now)
                    for port in self.sip_alg.ipv6_media_ports(p):
                        self.demux.claim_udp_port(port, Side.HOST_IPV6, now)
                outbound.extend(bytes(p) for p in ipv6)
            else:
                self.counters["host_rx_dropped_passthrough_off"] += len(ipv6)
        if to_host:
            self.link.send_ipv4(to_host)
        if outbound:
            self.send_from_home_address(outbound, now)

    def deliver(self, packet: memoryview, now: float) -> bool:
        """An inbound packet for the home address: True if the host side took it.

        Packets for the host wait in a batch until `flush()`.
        """
        side = self.demux.classify(packet, now)
        if side is Side.HOST_IPV4:
            out, errors = self.translation.inbound(packet, now)
            self._pending_ipv4.extend(self.sip_alg.inbound(p, now) for p in out)
            if errors:
                self.send_from_home_address(errors, now)
            return True
        if side is Side.HOST_IPV6:
            self._pending_ipv6.append(bytes(packet))
            return True
        return False

    def flush(self) -> None:
        if self._pending_ipv4:
            self.link.send_ipv4(self._pending_ipv4)
            self._pending_ipv4 = []
        if self._pending_ipv6:
            self.link.send_ipv6(self._pending_ipv6)
            self._pending_ipv6 = []

    def note_guest_outbound(self, packets: list[bytes], now: float) -> None:
        for packet in packets:
            self.demux.note_outbound(packet, Side.GUEST, now)

    # ------------------------------------------------------------------ DNS for IPv4 apps

    def _maybe_dns(self, packet: memoryview) -> bool:
        if len(packet) < 28 or packet[9] != 17 or ((packet[22] << 8) | packet[23]) != _DNS_PORT:
            return False
        if not self.config.dns.enabled or self._loop is None:
            return False
        try:
            src4, _dst4, sport, _dport, payload = parse_ipv4_udp(packet)
        except ParseError as exc:
            self.counters[f"dns_dropped_{exc.reason}"] += 1
            return True
        self._loop.create_task(self._answer_dns(bytes(payload), src4, sport))
        return True

    async def _answer_dns(self, query: bytes, client4: bytes, client_port: int) -> None:
        try:
            response = await self.dns.answer(query)
        except Exception:  # the daemon keeps serving whatever one query does
            log.exception("DNS answer failed")
            self.counters["dns_internal_error"] += 1
            return
        if response is None:
            return
        gateway = self.config.translation.gateway_ipv4.packed
        self.link.send_ipv4([build_ipv4_udp(gateway, client4, _DNS_PORT, client_port, response)])

    async def _ask_upstream(self, query: bytes) -> bytes:
        """AAAA (or passthrough) query to the resolver at home, from the home address."""
        servers = [str(s) for s in self.config.dns.upstream]
        if not servers:
            raise TimeoutError("no upstream DNS server configured")
        return await upstream_udp(
            servers,
            query,
            source=str(self.config.mobility.home_address),
            timeout=self.config.dns.timeout,
        )

    def _map_for_dns(self, ipv6: bytes) -> bytes | None:
        return self.table.lookup_or_allocate_v6(ipv6, time.monotonic())

    # ------------------------------------------------------------------ control API

    def host_config(self) -> dict[str, Any]:
        xlat = self.config.translation
        host = self.config.host_link
        return {
            "interface_hint": "eth0",
            "ipv4_address": str(xlat.home_ipv4),
            "ipv4_prefixlen": xlat.pool.prefixlen,
            "ipv4_gateway": str(xlat.gateway_ipv4),
            "mtu": host.host_mtu,
            "dns": [str(xlat.gateway_ipv4)] if self.config.dns.enabled else [],
            "home_address": str(self.config.mobility.home_address),
            "ipv6_gateway": str(host.ipv6_gateway),
            "pool": str(xlat.pool),
            "scenarios": {
                "ipv4_translation": xlat.enabled,
                "ipv6_passthrough": host.ipv6_passthrough,
            },
        }

    def status(self, now: float) -> dict[str, Any]:
        table = self.table.as_dict(now)
        entries = table.pop("entries")
        return {
            "translation_table": entries,
            "translation": table,
            "scenario_policy": self.scenarios.as_list(),
            "host_link": self.link.as_dict(),
            "flows": len(self.demux),
            "sip_alg": self.sip_alg.as_dict(),
        }

    def close(self) -> None:
        self.save(time.monotonic())
        self.link.link.close()
