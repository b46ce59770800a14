"""`python -m benchmarks ha-scale --wire N`: the home agent daemon over the wire (root).

A bed without the guest (`--no-agents`, then only the HA), one sender namespace on visited
link 5a with a raw socket: N synthetic terminals (home addresses 2001:db8:6::1:0 + i, all with
the sender's SLAAC address as care-of address) register (first BUs: the HA runs proxy DAD for
each, 1 s, in parallel), then refresh. Reports BAs received per second for the refresh round
and how many of the N were answered; the same kernel path (ar-a, core) carries every BU and
BA, so this is the HA through AF_PACKET, ND and two routers, not the HA alone.
"""

from __future__ import annotations

import re
import select
import socket
import time
from ipaddress import IPv6Address

from netstack.runtime.control import control_request
from netstack.wire.ethernet import ETH_P_IPV6, build_ethernet
from netstack.wire.mh import BindingUpdate
from netstack.wire.mh_codec import build_mobility_packet
from provisioning import netns, testbed
from provisioning.nodes import agents
from provisioning.topology import HOME_AGENT, namespace

PREFIX = "bhs"
HOME_BASE = int(IPv6Address("2001:db8:6::1:0"))


def _address_and_router(prefix: str) -> tuple[IPv6Address, bytes]:
    deadline = time.monotonic() + 15
    ns = namespace(prefix, "hs")
    while time.monotonic() < deadline:
        out = netns.run(ns, ["ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"],
                        timeout=10).stdout.decode()
        found = re.search(r"inet6 (2001:db8:a:[0-9a-f:]+)/64", out)
        if found and "tentative" not in out:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("no SLAAC address on 5a")
    link = netns.run(namespace(prefix, "ar-a"), ["ip", "-o", "link", "show", "eth0"],
                     timeout=10).stdout.decode()
    mac = re.search(r"link/ether ([0-9a-f:]{17})", link).group(1)
    return IPv6Address(found.group(1)), bytes.fromhex(mac.replace(":", ""))


def _round(sock: socket.socket, frames: list[bytes], expect: int, timeout: float
           ) -> tuple[int, float]:
    """Send every frame (paced in bursts of 64), count the BAs (MH type 6) that come back."""
    received = 0
    start = time.monotonic()
    for at in range(0, len(frames), 64):
        for frame in frames[at:at + 64]:
            sock.send(frame)
        received += _drain(sock)
        time.sleep(0.0005)
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while received < expect and time.monotonic() < deadline:
        if select.select([sock], [], [], 0.2)[0]:
            got = _drain(sock)
            if got:
                received += got
                last = time.monotonic()
    return received, last - start


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            frame = sock.recv(2048)
        except BlockingIOError:
            return count
        # IPv6, next header 43 (type 2 RH, 24 octets) then the MH: type at 14+40+24+2
        if len(frame) > 80 and frame[12:14] == b"\x86\xdd" and frame[20] == 43 \
                and frame[14 + 40] == 135 and frame[14 + 40 + 24 + 2] == 6:
            count += 1


def run(count: int) -> dict[str, float]:
    testbed.up(testbed.UpOptions(prefix=PREFIX, agents=False))
    try:
        sdir = testbed.state_dir(PREFIX)
        agents.start_agent(sdir, agents.HOME_AGENT_NODE, namespace(PREFIX, "ha"))
        agents.wait_ready(sdir, agents.HOME_AGENT_NODE)
        ns = testbed.add_probe(PREFIX, "a", "hs")
        coa, router_mac = _address_and_router(PREFIX)
        time.sleep(2)  # the HA's own DAD
        with netns.inside(ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
            sock.bind(("eth0", 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        sock.setblocking(False)
        mac = sock.getsockname()[4][:6]
        results: dict[str, float] = {"terminals": count}
        for label, seq in (("register", 1), ("refresh", 2)):
            frames = [build_ethernet(router_mac, mac, ETH_P_IPV6, build_mobility_packet(
                coa, HOME_AGENT, BindingUpdate(sequence=seq, lifetime=400),
                home_address=IPv6Address(HOME_BASE + i))) for i in range(count)]
            answered, seconds = _round(sock, frames, count, timeout=30)
            results[f"{label}_answered"] = answered
            results[f"{label}_ba_per_s"] = answered / seconds if seconds else 0.0
        status = control_request(agents.socket_path(sdir, agents.HOME_AGENT_NODE),
                                 {"cmd": "status"}, timeout=10)
        results["bindings"] = len(status["binding_cache"])
        results["ha_tx"] = status["counters"].get("tx_mobility_messages", 0)
        results["ha_tx_dropped"] = sum(v for k, v in status["counters"].items()
                                       if k.startswith("tx_dropped"))
        sock.close()
        return results
    finally:
        testbed.down(PREFIX)
