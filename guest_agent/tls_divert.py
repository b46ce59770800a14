"""Hand the host's policy flows to the guest's TLS relay (patent E8, issue 13).

The host's packets are translated as usual (IPv4 -> IPv6 of the home address, step 514; or
passed through for IPv6 apps, E2). A TCP packet the [tls_gateway] policy selects is then not
tunnelled: it is written into a TUN device of its own (`tls0`), where the guest kernel's TCP
terminates the connection. A policy rule `iif tls0 -> table divert_mark` whose only route is
`local ::/0` makes every destination local for packets from that device (the "AnyIP" route),
so the relay's listener on [::]:443 (one per policy port) accepts the connection and
getsockname() is the original destination. The relay's replies (source = the correspondent,
destination = the home address) carry the listener's socket mark, and `fwmark reply_mark ->
table reply_mark` (default route via tls0) sends them back out of `tls0`; the agent reads
them there and delivers them to the host (translated back for IPv4 apps), exactly like
packets that came out of the tunnel.

Why not an nftables TPROXY rule: the same needs only policy routing and a socket option, so
the guest VM needs no nftables, no TPROXY modules and no packet-filter state, and nothing
but the relay's own sockets sees the flows.

Why a TUN of its own and not `hoa0`: the home address is local in the guest, so packets *to*
the relay and packets the guest's own applications send must never be confused; a separate
device keeps the rule to one `iif`, and the relay's traffic to the gateway (from the home
address, through `hoa0` and the MN-HA tunnel) untouched. The listeners on [::]:443 never see
connections from outside: inbound packets for the home address go to the host side or to
`hoa0` by flow (demux), never to a port nobody in the guest asked for.

Rule order (IPv6): the reply rule (100) and the divert rule (101) come before the `local`
table, which moves from preference 0 to 200: a reply to the home address must not be
delivered locally.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from guest_agent.config import TlsGatewaySection
from netstack.runtime.tun import TunDevice

log = logging.getLogger("guest_agent.tls")

RULE_PREF_REPLY = 100
RULE_PREF_DIVERT = 101
RULE_PREF_LOCAL = 200
LOCAL_TABLE = 255
_TCP = 6
_AF_INET6 = 10
DEVICE_MTU = 1500

SendPackets = Callable[[list[bytes], float], None]
SendSuperFrame = Callable[[bytearray, int, float], bool]


def policy_routing(config: TlsGatewaySection, device_index: int, lo_index: int
                   ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(routes, rules) in pyroute2's keywords: the AnyIP table for packets from the
    diversion device, the reply table for the relay's marked sockets, `local` after both."""
    routes: list[dict[str, object]] = [
        {"dst": "::/0", "oif": device_index, "table": config.reply_mark},
        {"dst": "::/0", "oif": lo_index, "table": config.divert_mark, "type": "local"},
    ]
    rules: list[dict[str, object]] = [
        {"priority": RULE_PREF_REPLY, "fwmark": config.reply_mark, "table": config.reply_mark},
        {"priority": RULE_PREF_DIVERT, "iifname": config.device, "table": config.divert_mark},
        {"priority": RULE_PREF_LOCAL, "table": LOCAL_TABLE},
    ]
    return routes, rules


class PolicyMatcher:
    """Which IPv6 packets of the home address go through the gateway: TCP to `ports`,
    destination in `destinations` (or anywhere). Works on the header bytes only."""

    def __init__(self, config: TlsGatewaySection) -> None:
        self.ports = frozenset(config.ports)
        self.networks = [(n.network_address.packed, n.prefixlen) for n in config.destinations]
        self.gateway = config.address.packed

    def matches(self, packet: bytes | bytearray | memoryview) -> bool:
        if len(packet) < 44 or packet[0] >> 4 != 6 or packet[6] != _TCP:
            return False
        if ((packet[42] << 8) | packet[43]) not in self.ports:
            return False
        destination = bytes(packet[24:40])
        if destination == self.gateway:
            return False  # the gateway itself is reached directly, never through itself
        if not self.networks:
            return True
        value = int.from_bytes(destination, "big")
        for network, length in self.networks:
            shift = 128 - length
            if value >> shift == int.from_bytes(network, "big") >> shift:
                return True
        return False


class TlsDiversion:
    """The diversion device, its policy routing, and the send wrappers."""

    def __init__(self, config: TlsGatewaySection, counters: Counter[str]) -> None:
        self.config = config
        self.counters = counters
        self.policy = PolicyMatcher(config)
        self.tun = TunDevice(config.device, DEVICE_MTU)
        try:
            self._install()
        except BaseException:
            self.tun.close()
            raise

    # ------------------------------------------------------------------ kernel plumbing

    def _install(self) -> None:
        cfg = self.config
        # no RS chatter on a device without a link
        with contextlib.suppress(OSError), open(
                f"/proc/sys/net/ipv6/conf/{cfg.device}/accept_ra", "w") as f:
            f.write("0")
        with IPRoute() as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            routes, rules = policy_routing(cfg, self.tun.ifindex, lo)
            for route in routes:
                self._replace_route(ipr, **route)
            for rule in rules:
                self._replace_rule(ipr, **rule)
            with contextlib.suppress(NetlinkError):  # the local table now comes after ours
                ipr.rule("del", family=_AF_INET6, priority=0, table=LOCAL_TABLE)
        log.info("TLS gateway policy: TCP ports %s via %s [%s]:%d (device %s)",
                 sorted(self.policy.ports), cfg.name, cfg.address, cfg.port, cfg.device)

    @staticmethod
    def _replace_route(ipr: IPRoute, **route: object) -> None:
        with contextlib.suppress(NetlinkError):
            ipr.route("del", family=_AF_INET6, **route)
        ipr.route("add", family=_AF_INET6, **route)

    @staticmethod
    def _replace_rule(ipr: IPRoute, **rule: object) -> None:
        with contextlib.suppress(NetlinkError):
            ipr.rule("del", family=_AF_INET6, **rule)
        ipr.rule("add", family=_AF_INET6, **rule)

    def close(self) -> None:
        """Remove our two rules (their tables go with tls0's routes when the TUN closes); the
        `local` rule stays at 200: it works there for everything else."""
        cfg = self.config
        with contextlib.suppress(Exception), IPRoute() as ipr:
            for pref, table in ((RULE_PREF_REPLY, cfg.reply_mark),
                                (RULE_PREF_DIVERT, cfg.divert_mark)):
                with contextlib.suppress(NetlinkError):
                    ipr.rule("del", family=_AF_INET6, priority=pref, table=table)
        with contextlib.suppress(OSError):
            self.tun.close()

    # ------------------------------------------------------------------ data path

    def wrap_send(self, send: SendPackets) -> SendPackets:
        """Send routine 100 for the host's packets, minus the policy's flows (to `tls0`)."""
        matches = self.policy.matches
        write = self.tun.write
        counters = self.counters

        def send_or_divert(packets: list[bytes], now: float) -> None:
            rest = []
            for packet in packets:
                if matches(packet):
                    write(packet)
                    counters["tls_diverted_packets"] += 1
                else:
                    rest.append(packet)
            if rest:
                send(rest, now)

        return send_or_divert

    def wrap_super_frame(self, send: SendSuperFrame) -> SendSuperFrame:
        """A policy flow's super-frame is cut by the caller and diverted packet by packet."""
        matches = self.policy.matches

        def send_whole(packet: bytearray, gso_size: int, now: float) -> bool:
            return False if matches(packet) else send(packet, gso_size, now)

        return send_whole

    def replies(self) -> list[bytes]:
        """The relay's packets to the host (TCP, destination = the home address)."""
        out = []
        for packet in self.tun.read_batch():
            if len(packet) >= 40 and packet[0] >> 4 == 6 and packet[6] == _TCP:
                out.append(packet)
            else:
                self.counters["tls_device_ignored"] += 1  # e.g. the kernel's MLD on tls0
        return out
