"""The home agent's kernel fast path: loads netstack.fastpath.home_agent and mirrors the
binding cache into its map (issue: eBPF fast path).

Mirrored: every BindingCreated/BindingUpdated (one element replaced: the CoA changes
atomically) and BindingDeleted (de-registration, expiry), including the BindingCreated events
of bindings restored after a restart; the HA's address, home prefix, MACs and MTU on every
change of the default router. Off (one log line, the reason in `status`) when [fastpath]
disables it, IPsec protects the tunnel (ESP stays on the Python path) or the kernel refuses.
"""

from __future__ import annotations

import logging
import socket
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any

from netstack.fastpath.attach import detach, enable_tx_offloads
from netstack.fastpath.config import FastPathSection
from netstack.fastpath.home_agent import HomeAgentFastPath, HomeAgentState
from netstack.fastpath.libbpf import BpfError
from netstack.runtime.afpacket_split import ETH_P_IPV6

if TYPE_CHECKING:
    from network.home_agent.daemon import HomeAgentDaemon

log = logging.getLogger("home_agent.fastpath")

HOME_LINK_PROTOCOL = ETH_P_IPV6  # the socket sees only what tc ingress passed on
STATUS_BINDINGS = 64  # per-binding counters in status up to this many bindings  # the socket sees only what tc ingress passed on


def fastpath_section(config: Any) -> FastPathSection:
    """[fastpath] of a config; daemons built on this one without the section (the MAP, whose
    nested tunnels the program does not carry yet) run without the fast path."""
    return getattr(config, "fastpath", None) or FastPathSection(enabled=False)


class HomeAgentFastPathControl:
    def __init__(self, daemon: HomeAgentDaemon) -> None:
        self.daemon = daemon
        self.section = fastpath_section(daemon.config)
        self.programs: HomeAgentFastPath | None = None
        self.reason: str | None = None
        self._ifindex = 0

    @property
    def active(self) -> bool:
        return self.programs is not None

    def start(self) -> None:
        daemon = self.daemon
        if not self.section.enabled:
            return self._off("disabled in [fastpath]", cleanup=True)
        if daemon.security.esp_tunnel or daemon.security.refuse_plain_tunnel():
            return self._off("IPsec protects the tunnel: ESP stays on the Python path", cleanup=True)
        try:
            self._ifindex = socket.if_nametoindex(daemon.config.interface)
            self.programs = HomeAgentFastPath(daemon.config.interface, max_bindings=self.section.max_bindings)
        except (BpfError, OSError) as exc:
            return self._off(f"kernel refused: {exc}")
        if daemon.config.link.offloads:  # detunnelled super-frames leave whole
            try:
                enable_tx_offloads(daemon.config.interface)
            except OSError as exc:
                log.warning("transmit offloads stay off on %s: %s", daemon.config.interface, exc)
        self.sync()
        log.info("fast path active: tc program on %s, room for %d bindings",
                 daemon.config.interface, self.section.max_bindings)

    def _off(self, reason: str, cleanup: bool = False) -> None:
        self.reason = reason
        if cleanup:
            detach(self.daemon.config.interface)
        log.warning("fast path off (%s): the Python path carries every packet", reason)

    def sync(self) -> None:
        if self.programs is None:
            return
        daemon = self.daemon
        try:
            self.programs.set_state(HomeAgentState(
                address=daemon.address.packed,
                home_prefix=daemon.home_prefix,
                own_mac=daemon.link.mac,
                router_mac=daemon.dataplane.next_hop_mac,
                ifindex=self._ifindex,
                mtu=daemon.dataplane.link_mtu,
                super_frames=self.section.super_frames,
            ))
        except BpfError as exc:
            daemon.counters["fastpath_map_errors"] += 1
            log.warning("fast path state not written: %s", exc)

    def bind(self, home_address: IPv6Address, care_of_address: IPv6Address) -> None:
        if self.programs is None:
            return
        lookup = getattr(self.daemon.home_agent, "lookup", None)
        if lookup is not None and lookup(care_of_address.packed) is not None:
            # NEMO: the CoA is itself behind a binding (a node in a mobile network): the
            # Python path encapsulates twice (claims 20-28), the program only once.
            self.programs.unbind(home_address.packed)
            return
        try:
            self.programs.bind(home_address.packed, care_of_address.packed)
        except BpfError as exc:  # e.g. the map is full: that binding stays on the Python path
            self.daemon.counters["fastpath_map_errors"] += 1
            log.warning("binding %s not mirrored: %s", home_address, exc)

    def unbind(self, home_address: IPv6Address) -> None:
        if self.programs is not None:
            self.programs.unbind(home_address.packed)

    def as_dict(self) -> dict[str, Any]:
        if self.programs is None:
            return {"active": False, "reason": self.reason}
        out: dict[str, Any] = {"active": True, "reason": None, **self.programs.as_dict(),
                               "super_frames": self.section.super_frames}
        if out["maps"]["bindings"] <= STATUS_BINDINGS:  # per binding, while the list is short
            out["bindings"] = {str(IPv6Address(hoa)): {"packets": packets, "bytes": size}
                               for hoa, (packets, size) in self.programs.binding_counters().items()}
        return out

    def close(self) -> None:
        if self.programs is not None:
            self.programs.close()
            self.programs = None
