"""`python -m benchmarks ha-scale --wire N`: the home agent daemon over the wire (root).

A bed without the guest (`--no-agents`, then only the HA), one sender namespace on visited
link 5a with a raw socket: N synthetic terminals (home addresses 2001:db8:6::1:0 + i, all with
the sender's SLAAC address as care-of address) register (first BUs: the HA runs proxy DAD for
each, 1 s, in parallel), then refresh. BUs are paced (`rate` per second, default 4,000: a
sender faster than the HA only fills socket buffers); a terminal without an accepted BA sends
again with the next sequence number, as a mobile node retransmits (RFC 6275 11.8), up to 6
rounds. Reports, per phase, how many of the N were accepted, after how many rounds, and BAs
per second; the same kernel path (ar-a, core) carries every BU and BA, so this is the HA
through AF_PACKET, ND and two routers, not the HA alone.
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
LIFETIME = 1200  # seconds: longer than the whole run at 100k terminals


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


def _round(sock: socket.socket, frames: list[bytes], rate: float, quiet: float = 3.0,
           timeout: float = 60.0) -> set[int]:
    """Send every frame, paced at `rate` BUs/s in bursts of 64 (terminals do not all send in
    the same millisecond), and collect which terminals got an accepted BA, until every one
    did or nothing new came for `quiet` seconds."""
    accepted: set[int] = set()
    start = time.monotonic()
    for at in range(0, len(frames), 64):
        for frame in frames[at:at + 64]:
            sock.send(frame)
        _drain(sock, accepted)
        pause = start + (at + 64) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while len(accepted) < len(frames) and time.monotonic() < min(deadline, last + quiet):
        if select.select([sock], [], [], 0.2)[0]:
            before = len(accepted)
            _drain(sock, accepted)
            if len(accepted) > before:
                last = time.monotonic()
    return accepted


_BA_AT = 14 + 40 + 24  # Ethernet, IPv6, type 2 routing header (24 octets), then the MH


def _drain(sock: socket.socket, accepted: set[int]) -> None:
    """Terminals (index from the RH2 home address) whose BA (MH type 6) says accepted."""
    while True:
        try:
            frame = sock.recv(2048)
        except BlockingIOError:
            return
        if len(frame) > _BA_AT + 8 and frame[12:14] == b"\x86\xdd" and frame[20] == 43 \
                and frame[14 + 40] == 135 and frame[_BA_AT + 2] == 6 and frame[_BA_AT + 6] == 0:
            accepted.add(int.from_bytes(frame[14 + 40 + 8:14 + 40 + 24], "big") - HOME_BASE)


def _phase(sock: socket.socket, build, count: int, first_sequence: int, rate: float,
           attempts: int) -> dict[str, float]:
    """Every terminal sends its BU; the unanswered ones send again with the next sequence
    number (RFC 6275 11.8 retransmission, 9.5.1 new sequence), up to `attempts` rounds."""
    pending = set(range(count))
    start = time.monotonic()
    first_round = rounds = 0
    for attempt in range(attempts):
        if not pending:
            break
        rounds += 1
        accepted = _round(sock, [build(i, first_sequence + attempt) for i in sorted(pending)],
                          rate)
        pending -= accepted
        if attempt == 0:
            first_round = len(accepted)
    elapsed = time.monotonic() - start
    return {"answered": count - len(pending), "first_round": first_round,
            "rounds": rounds, "seconds": elapsed,
            "ba_per_s": (count - len(pending)) / elapsed if elapsed else 0.0}


def run(count: int, rate: float = 4000.0, attempts: int = 6) -> dict[str, float]:
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

        def build(i: int, sequence: int) -> bytes:
            return build_ethernet(router_mac, mac, ETH_P_IPV6, build_mobility_packet(
                coa, HOME_AGENT, BindingUpdate(sequence=sequence, lifetime=LIFETIME),
                home_address=IPv6Address(HOME_BASE + i)))

        for label, sequence in (("register", 1), ("refresh", 100)):
            phase = _phase(sock, build, count, sequence, rate, attempts)
            results.update({f"{label}_{k}": v for k, v in phase.items()})
        status = control_request(agents.socket_path(sdir, agents.HOME_AGENT_NODE),
                                 {"cmd": "status"}, timeout=120)
        results["bindings"] = len(status["binding_cache"])
        results["ha_tx"] = status["counters"].get("tx_mobility_messages", 0)
        results["ha_tx_dropped"] = sum(v for k, v in status["counters"].items()
                                       if k.startswith("tx_dropped"))
        sock.close()
        return results
    finally:
        testbed.down(PREFIX)
