"""Valid seed inputs for the fuzz targets (benchmarks/fuzz_targets.py): one well-formed
example per parser, addresses from the documentation prefixes, config and key files as the
user would write them. `mutate` derives every fuzzed input from these.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network

import dns.message
import dns.rrset

from netstack.ipsec.esp import protect
from netstack.ipsec.sa import SecurityAssociation
from netstack.ipsec.transforms import AES_GCM_16
from netstack.wire.icmpv6 import build_icmpv6_packet
from netstack.wire.icmpv6_types import (
    EchoRequest,
    ICMPv6Error,
    MapOption,
    Mtu,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
)
from netstack.wire.ipv4 import build_ipv4_udp
from netstack.wire.ipv6 import build_ipv6_packet
from netstack.wire.mh import (
    BindingAck,
    BindingError,
    BindingRefreshAdvice,
    BindingRefreshRequest,
    BindingUpdate,
    HomeTestInit,
    MobileNetworkPrefix,
)
from netstack.wire.mh_codec import build_mobility_packet, encode_mobility_header

HA = IPv6Address("2001:db8:6::1")
HOA = IPv6Address("2001:db8:6::1000")
COA = IPv6Address("2001:db8:b::1234")
CN = IPv6Address("2001:db8:8::1001")
MAC = bytes.fromhex("02000000aa01")
V4_HOST, V4_CN = IPv4Address("198.18.0.2"), IPv4Address("198.18.0.7")


def _mh_seeds() -> list[bytes]:
    messages = [
        BindingUpdate(sequence=7, lifetime=420),
        BindingUpdate(sequence=9, lifetime=420, mobile_router=True,
                      options=(MobileNetworkPrefix(IPv6Network("2001:db8:6:100::/64")),)),
        BindingAck(status=0, sequence=7, lifetime=420, options=(BindingRefreshAdvice(100),)),
        BindingError(status=2, home_address=HOA),
        BindingRefreshRequest(),
        HomeTestInit(home_init_cookie=bytes(range(8))),
    ]
    return [encode_mobility_header(m, HOA, HA) for m in messages]


def _packet_seeds() -> list[bytes]:
    return [
        build_mobility_packet(COA, HA, BindingUpdate(sequence=1, lifetime=420), home_address=HOA),
        build_mobility_packet(HA, COA, BindingAck(status=0, sequence=1, lifetime=420),
                              routing_type2=HOA),
        build_icmpv6_packet(CN, HOA, EchoRequest(1, 2, b"ping")),
        build_ipv6_packet(HOA, CN, 17, bytes.fromhex("d4310035000c0000") + b"dns!"),
        build_ipv6_packet(HOA, CN, 6, bytes.fromhex("c0de0050000000010000000050022000") + bytes(4)),
    ]


def _nd_seeds() -> list[bytes]:
    ra = RouterAdvertisement(options=(
        SourceLinkLayerAddress(MAC), Mtu(1500),
        PrefixInformation(IPv6Network("2001:db8:a::/64"), 86400, 14400),
        MapOption(distance=1, preference=10, valid_lifetime=3600,
                  map_address=IPv6Address("2001:db8:d::1")),
    ))
    messages = [ra, NeighborSolicitation(target=COA, options=(SourceLinkLayerAddress(MAC),)),
                NeighborAdvertisement(target=COA, router=False, solicited=True, override=True,
                                      options=(TargetLinkLayerAddress(MAC),)),
                EchoRequest(1, 1, b"x" * 8)]
    return [build_icmpv6_packet(HA, COA, m)[40:] for m in messages]


def _ipv4_seeds() -> list[bytes]:
    udp = build_ipv4_udp(V4_HOST.packed, V4_CN.packed, 4000, 53, b"query")
    icmp = bytes.fromhex("4500001c00010000400100000a0000010a000002") + bytes.fromhex("0800f7fd00010001")
    tcp = (bytes.fromhex("4500002800020000400600000a0000010a000002")
           + bytes.fromhex("c0de005000000001000000005002200000000000"))
    return [udp, icmp, tcp]


def _icmp_error_seeds() -> list[bytes]:
    inner = build_ipv6_packet(HOA, CN, 17, bytes.fromhex("d4310035000c0000") + b"dns!")
    error = ICMPv6Error(1, 4, 0, inner)
    return [build_icmpv6_packet(CN, HOA, error)]


_SA = SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=bytes(range(20)))


def _esp_seeds() -> list[bytes]:
    sender = SecurityAssociation(spi=0x1001, algorithm=AES_GCM_16, key=bytes(range(20)))
    return [protect(sender, b"inner packet" * 3, 41, now=0.0) for _ in range(2)]


HA_CONFIG = b"""[node]
state_dir = "/run/mip6term/m6"
[link]
interface = "eth0"
[home_agent]
address = "2001:db8:6::1"
home_prefix = "2001:db8:6::/64"
refused_home_addresses = ["2001:db8:6::dead"]
max_lifetime = 420
"""
GUEST_CONFIG = b"""[mobility]
home_address = "2001:db8:6::1000"
home_agent = "2001:db8:6::1"
home_prefix = "2001:db8:6::/64"
[tun]
name = "hoa0"
"""
KEY_FILE = b"""[[sa]]
name = "mn-ha-bu"
direction = "out"
spi = 4097
algorithm = "aes-gcm-16"
key = "000102030405060708090a0b0c0d0e0f10111213"
mode = "transport"
[[policy]]
name = "bu"
direction = "out"
action = "protect"
sa = "mn-ha-bu"
priority = 10
protocol = 135
"""


def _dns_reply_seeds() -> list[bytes]:
    query = dns.message.make_query("cn.example.", "AAAA")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("cn.example.", 300, "IN", "AAAA", str(CN)))
    cname = dns.message.make_response(query)
    cname.answer.append(dns.rrset.from_text("cn.example.", 300, "IN", "CNAME", "www.example."))
    cname.answer.append(dns.rrset.from_text("www.example.", 300, "IN", "AAAA", str(CN)))
    return [reply.to_wire(), cname.to_wire()]
