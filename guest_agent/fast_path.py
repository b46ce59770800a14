"""The guest agent's kernel fast path: loads netstack.fastpath.guest, mirrors the agent's
data-path state into its maps and reads its counters back (issue: eBPF fast path).

What it mirrors, and when:
  * the tunnel (CoA, HA), the next hop's MAC, at home or not: `sync()` from
    GuestDataPlane.on_change, i.e. in BA routine 60 itself, before any packet of the next
    input batch, and after every input batch (the host's MAC, the scenarios);
  * table 230: every row the Python path adds or removes (TranslationTable.on_change), and the
    whole table at start (a restart rebuilds the maps from the persisted table);
  * counters: every `counter_interval` seconds the rows' packets/bytes, with their last use,
    go back into table 230 so its idle expiry keeps working.
The fast path stays off (one log line, the reason in `status`) when [fastpath] disables it,
IPsec protects the data (ESP stays on the Python path), there is no host link, or the kernel
refuses (no root, no BPF, verifier).
"""

from __future__ import annotations

import logging
import socket
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from guest_agent.demux import FlowKey, Side
from guest_agent.scenario import Scenario
from netstack.fastpath.attach import detach, enable_tx_offloads
from netstack.fastpath.guest import (
    SIDE_GUEST,
    SIDE_HOST_IPV4,
    SIDE_HOST_IPV6,
    GuestFastPath,
    GuestState,
)
from netstack.fastpath.libbpf import BpfError
from netstack.runtime.afpacket_split import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6

if TYPE_CHECKING:
    from guest_agent.agent import GuestAgent
    from netstack.translate.table import TranslationEntry

log = logging.getLogger("guest_agent.fastpath")

# With the fast path configured, the agent's sockets are bound to these ethertypes: they are
# served after tc ingress and so never see the packets the programs redirect.
VISITED_LINK_PROTOCOL = ETH_P_IPV6
HOST_LINK_PROTOCOLS = (ETH_P_IP, ETH_P_IPV6, ETH_P_ARP)


_SIDES = {Side.GUEST: SIDE_GUEST, Side.HOST_IPV6: SIDE_HOST_IPV6, Side.HOST_IPV4: SIDE_HOST_IPV4}


class AgentFastPath:
    def __init__(self, agent: GuestAgent) -> None:
        self.agent = agent
        self.section = agent.config.fastpath
        self.programs: GuestFastPath | None = None
        self.reason: str | None = None
        self._next_read: float | None = None
        self._ifindex = (0, 0, 0)  # visited, host, hoa0 (read once: the names do not change)

    @property
    def active(self) -> bool:
        return self.programs is not None

    def start(self, now: float) -> None:
        agent = self.agent
        config = agent.config
        host = agent.host_side
        if not self.section.enabled:
            return self._off("disabled in [fastpath]", cleanup=True)
        if host is None:
            return self._off("no host link: nothing to translate", cleanup=True)
        if agent.security.esp_tunnel or agent.security.end_to_end is not None:
            return self._off("IPsec is configured: ESP stays on the Python path", cleanup=True)
        route_optimisation = getattr(agent, "route_optimisation", None)
        if route_optimisation is not None and route_optimisation.enabled:
            return self._off("route optimisation is on: the Python path picks each "
                             "correspondent's route", cleanup=True)
        try:
            self._ifindex = (socket.if_nametoindex(config.link.interface),
                             socket.if_nametoindex(config.host_link.interface),
                             socket.if_nametoindex(config.tun.name))
            self.programs = GuestFastPath(
                visited_interface=config.link.interface, host_interface=config.host_link.interface
            )
        except (BpfError, OSError) as exc:
            return self._off(f"kernel refused: {exc}")
        for link in (config.link, config.host_link):
            if link.offloads:  # the peers read offloads: let super-frames leave whole
                try:
                    enable_tx_offloads(link.interface)
                except OSError as exc:
                    log.warning("transmit offloads stay off on %s: %s", link.interface, exc)
        rows = self.programs.push_table(host.table)
        host.demux.on_new_flow = self._flow_noted
        host.table.on_change = self._table_changed
        agent.dataplane.on_change = self.sync
        self.sync()
        self._next_read = now + self.section.counter_interval
        log.info("fast path active: tc programs on %s and %s, %d table 230 rows",
                 config.host_link.interface, config.link.interface, rows)

    def _off(self, reason: str, cleanup: bool = False) -> None:
        self.reason = reason
        if cleanup:  # a previous run's programs must not keep forwarding behind our back
            for ifname in (self.agent.config.link.interface, self.agent.config.host_link.interface):
                if ifname:
                    detach(ifname)
        log.warning("fast path off (%s): the Python path carries every packet", reason)

    # ------------------------------------------------------------------ mirroring

    def state(self) -> GuestState:
        agent = self.agent
        config = agent.config
        host = agent.host_side
        assert host is not None
        dataplane = agent.dataplane
        xlat = config.translation
        prefix = xlat.prefix64
        return GuestState(
            home_address=config.mobility.home_address.packed,
            home_agent=dataplane.home_agent or bytes(16),
            care_of_address=dataplane.care_of_address or bytes(16),
            prefix64=prefix.network_address.packed[:12] if prefix.prefixlen == 96 else None,
            home_ipv4=xlat.home_ipv4.packed,
            gateway_ipv4=xlat.gateway_ipv4.packed,
            pool_network=xlat.pool.network_address.packed,
            pool_mask=xlat.pool.netmask.packed,
            next_hop_mac=dataplane.next_hop_mac,
            visited_mac=agent.link.mac,
            host_mac=host.link.host_mac,
            host_ipv6_mac=host.link.host_ipv6_mac or host.link.host_mac,
            host_link_mac=host.link.mac,
            visited_ifindex=self._ifindex[0],
            host_ifindex=self._ifindex[1],
            local_ifindex=self._ifindex[2],
            ipv6_mtu=config.tun.mtu,
            lowest_ipv6_mtu=host.translation.translator.config.lowest_ipv6_mtu,
            ipv4_mtu=config.host_link.host_mtu,
            # HMIPv6 nests the tunnel in LCoA -> MAP: the Python path until the programs learn it
            tunnel_up=dataplane.tunnel_up and not dataplane.at_home and not dataplane.local_tunnel_up,
            translate=host.scenarios.is_on(Scenario.TRANSLATION_ON),
            passthrough=config.host_link.ipv6_passthrough,
        )

    def sync(self) -> None:
        """Write the state element when anything in it changed (one atomic replacement)."""
        if self.programs is None:
            return
        try:
            self.programs.set_state(self.state())
            self.programs.set_python_ports(self.python_ports())
        except BpfError as exc:
            self.agent.counters["fastpath_map_errors"] += 1
            log.warning("fast path state not written: %s", exc)

    def python_ports(self) -> frozenset[int]:
        """Ports whose packets stay on the Python path: the SIP ALG's (configured and learned;
        switched off, the ALG still sees and counts what it lets pass) and the TLS gateway's
        diverted TCP ports (issue 13: the relay must get those connections)."""
        ports: set[int] = set()
        alg = getattr(self.agent.host_side, "sip_alg", None)
        if alg is not None:
            ports |= set(alg.ports) | set(alg.host_ports)
        tls = getattr(self.agent.config, "tls_gateway", None)
        if tls is not None and tls.enabled:
            ports |= set(tls.ports)
        return frozenset(ports)

    def _flow_noted(self, key: FlowKey, side: Side) -> None:
        """A flow the Python path carried out: the programs learn whose it is (receive routine
        120), so its super-frames coming back find their side (hoa0's cannot reach Python)."""
        if self.programs is None:
            return
        proto, local_port, remote, remote_port = key
        if proto != 6 and proto != 17:
            return
        try:
            self.programs.note_flow(remote, local_port, remote_port, proto, _SIDES[side])
        except BpfError as exc:
            self.agent.counters["fastpath_map_errors"] += 1
            log.warning("flow not mirrored: %s", exc)

    def _table_changed(self, entry: TranslationEntry, added: bool) -> None:
        if self.programs is None:
            return
        try:
            (self.programs.map_added if added else self.programs.map_removed)(entry)
        except BpfError as exc:
            self.agent.counters["fastpath_map_errors"] += 1
            log.warning("table 230 row %s not mirrored: %s", IPv4Address(entry.ipv4), exc)

    # ------------------------------------------------------------------ timers, status

    def get_timer(self) -> float | None:
        return self._next_read

    def handle_timer(self, now: float) -> None:
        if self.programs is None or self._next_read is None or now < self._next_read:
            return
        host = self.agent.host_side
        if host is not None:
            self.programs.read_counters(host.table, now)
        self._next_read = now + self.section.counter_interval

    def as_dict(self) -> dict[str, Any]:
        if self.programs is None:
            return {"active": False, "reason": self.reason}
        return {"active": True, "reason": None, **self.programs.as_dict()}

    def close(self) -> None:
        if self.programs is not None:
            self.programs.close()
            self.programs = None
