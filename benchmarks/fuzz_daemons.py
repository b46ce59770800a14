"""Fuzz targets that drive a whole daemon's receive loop (`_on_link_readable`) on one frame.

The home agent daemon and the guest agent are built with fake links (no sockets, no TUN, no
netlink), so a fuzzed frame takes the same path a packet from the wire would: parse, dispatch,
state machines, counters. Nothing may escape (house rule: bad input never crashes a daemon).
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from benchmarks.fuzz_seeds import CN, COA, HA, HOA, MAC, _packet_seeds
from guest_agent.config import AgentConfig
from netstack.wire.ethernet import ETH_P_IPV6, build_ethernet
from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import EchoRequest, NeighborSolicitation, SourceLinkLayerAddress
from netstack.wire.ip6ip6 import encapsulate
from netstack.wire.ipv6 import build_ipv6_packet
from netstack.wire.mh import BindingAck, BindingError, BindingRefreshRequest, BindingUpdate
from netstack.wire.mh_codec import build_mobility_packet
from network.home_agent.config import HomeAgentConfig


class _FakeLink:
    """Stands in for PacketLink: hands the daemon one frame per read, swallows what it sends."""

    vnet_hdr = False
    mtu = 1500

    def __init__(self, ifname: str, vnet_hdr: bool = False) -> None:
        self.ifname = ifname
        self.mac = bytes.fromhex("02000000ee01")
        self.pending: list[memoryview] = []
        self.sent = 0

    def fileno(self) -> int:
        return -1

    def recv_batch(self, max_packets: int = 64) -> list[memoryview]:
        out, self.pending = self.pending, []
        return out

    def send(self, frame: bytes) -> bool:
        self.sent += 1
        return True

    def send_batch(self, frames: object) -> int:
        count = len(list(frames))  # type: ignore[arg-type]
        self.sent += count
        return count

    def close(self) -> None:
        pass


class HomeAgentReceiveTarget:
    """The home agent daemon's whole receive path (`_on_link_readable`) on one fuzzed frame.

    Nothing may escape it: every bad frame is dropped and counted. Proxy DAD is off so a valid
    BU creates a binding at once and later frames meet a binding cache that is not empty.
    """

    def __init__(self, state_dir: str) -> None:
        from unittest import mock

        import network.home_agent.daemon as daemon_module

        config = HomeAgentConfig()
        config.node.state_dir = Path(state_dir)
        config.link.manage_interface = False
        config.link.tx_thread = False
        config.home_agent.proxy_dad = False
        with mock.patch.object(daemon_module, "PacketLink", _FakeLink), \
                mock.patch.object(daemon_module, "link_is_up", lambda _ifname: True):
            self.daemon = daemon_module.HomeAgentDaemon(config)
        self.link: _FakeLink = self.daemon.link  # type: ignore[assignment]
        self.daemon.nd.link_up(0.0)
        self.daemon.nd.add_static_address(HA, 64, 0.0, dad=False)
        self.daemon._save_bindings = lambda _now: None  # no fsync per fuzzed binding

    def __call__(self, frame: bytes) -> object:
        self.link.pending = [memoryview(frame)]
        self.daemon._on_link_readable()
        return None


def home_agent_frames() -> list[bytes]:
    ha_mac = bytes.fromhex("02000000ee01")
    packets = [
        *_packet_seeds()[:2],
        build_mobility_packet(COA, HA, BindingUpdate(sequence=3, lifetime=0), home_address=HOA),
        bytes(encapsulate(build_ipv6_packet(HOA, CN, 17, bytes(12)), COA.packed, HA.packed)),
        bytes(encapsulate(build_ipv6_packet(HOA, HA, 58, bytes.fromhex("80000000000100017069")),
                          COA.packed, HA.packed)),
        build_icmpv6_packet(CN, HA, EchoRequest(1, 2, b"ping"), hop_limit=64),
        build_icmpv6_packet(IPv6Address("2001:db8:6::ffff"), HA,
                            NeighborSolicitation(target=HA, options=(SourceLinkLayerAddress(MAC),))),
        build_ipv6_packet(CN, HOA, 17, bytes.fromhex("d4310035000c0000") + b"dns!"),
        build_ipv6_packet(COA, HA, 50, bytes.fromhex("0000100100000001") + bytes(40)),
    ]
    return [build_ethernet(ha_mac, MAC, ETH_P_IPV6, p) for p in packets]


class _FakeTun:
    def __init__(self, name: str, mtu: int = 1460, **_: object) -> None:
        self.written = 0

    def add_address(self, *_: object, **__: object) -> None:
        pass

    def add_route(self, *_: object, **__: object) -> None:
        pass

    def write(self, packet: object) -> bool:
        self.written += 1
        return True

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class _FakeMonitor:
    def __init__(self, ifname: str) -> None:
        pass

    def poll(self) -> list[bool]:
        return []

    def close(self) -> None:
        pass


class GuestReceiveTarget:
    """The guest agent's receive path (`_on_link_readable`) on one fuzzed frame, with the
    terminal registered (CoA on 5b, tunnel up) so tunnelled packets, BAs, BRRs and BEs reach
    the deep paths. Nothing may escape it."""

    COA = IPv6Address("2001:db8:b::1234")

    def __init__(self, state_dir: str) -> None:
        from unittest import mock

        import guest_agent.agent as agent_module
        from netstack.nd.events import AddressReady

        config = AgentConfig()
        config.node.state_dir = Path(state_dir)
        config.link.manage_interface = False
        config.link.tx_thread = False
        config.host_link.interface = ""
        with mock.patch.object(agent_module, "PacketLink", _FakeLink), \
                mock.patch.object(agent_module, "TunDevice", _FakeTun), \
                mock.patch.object(agent_module, "LinkMonitor", _FakeMonitor):
            self.agent = agent_module.GuestAgent(config)
        self.link: _FakeLink = self.agent.link  # type: ignore[assignment]
        self.agent.nd.link_up(0.0)
        self.agent._on_nd_event(AddressReady(self.COA, IPv6Network("2001:db8:b::/64"),
                                             float("inf"), float("inf")), 0.0)
        self.agent._after_input(0.0)
        entry = self.agent.mobile_node.binding_update_list.get(HA)
        if entry is not None:  # answer the BU the MN just sent: registered, tunnel up
            ba = build_mobility_packet(HA, self.COA, BindingAck(0, entry.sequence, 400),
                                       routing_type2=HOA)
            self(build_ethernet(self.link.mac, MAC, ETH_P_IPV6, ba))

    def __call__(self, frame: bytes) -> object:
        self.link.pending = [memoryview(frame)]
        self.agent._on_link_readable()
        return None


def guest_frames() -> list[bytes]:
    coa = GuestReceiveTarget.COA
    guest_mac = bytes.fromhex("02000000ee01")
    packets = [
        bytes(encapsulate(build_ipv6_packet(CN, HOA, 17, bytes.fromhex("0035d431000c0000") + b"dns!"),
                          HA.packed, coa.packed)),
        bytes(encapsulate(build_icmpv6_packet(CN, HOA, EchoRequest(1, 2, b"ping")),
                          HA.packed, coa.packed)),
        build_mobility_packet(HA, coa, BindingAck(status=0, sequence=9, lifetime=400),
                              routing_type2=HOA),
        build_mobility_packet(HA, coa, BindingRefreshRequest(), routing_type2=HOA),
        # status 2 (status 1 would remove the binding and leave the later inputs shallow)
        build_mobility_packet(HA, coa, BindingError(status=2, home_address=HOA)),
        build_ipv6_packet(COA, coa, 50, bytes.fromhex("0000100100000001") + bytes(40)),
    ]
    return [build_ethernet(guest_mac, MAC, ETH_P_IPV6, p) for p in packets]
