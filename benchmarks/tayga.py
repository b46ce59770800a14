"""TAYGA reference: the same iperf3 runs through a stateless NAT64 in C (Debian `tayga`).

Three namespaces of our own (prefix `bt-`), documentation addresses only:

    bt-a (IPv4 client 192.0.2.2/28)  --veth--  bt-t (TAYGA, TUN nat64)  --veth--  bt-b (IPv6 server)
                          a0 <-> t-a 192.0.2.1/28          t-b 2001:db8:99::ffff/64 <-> b0 2001:db8:99::1/64

TAYGA maps the client through its NAT64 prefix (a Network-Specific Prefix, 2001:db8:64::/96,
because TAYGA refuses the Well-Known Prefix with non-global IPv4 such as 192.0.2.0/24) and
the server through a static map 192.0.2.100 <-> 2001:db8:99::1, so the client targets
192.0.2.100. All netlink work is pyroute2; processes enter a namespace with setns in the child.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns

from benchmarks.report import Measurement, Skipped
from benchmarks.testbed import (
    CommandFailed,
    counting_udp6_arrivals,
    iperf3_client_args,
    parse_iperf3,
    tcp_measurement,
    udp_measurement,
)
from provisioning.offloads import enable_gro, enable_threaded_napi

TAYGA = "/usr/sbin/tayga"
NS_CLIENT, NS_TAYGA, NS_SERVER = "bt-a", "bt-t", "bt-b"
NAMESPACES = (NS_CLIENT, NS_TAYGA, NS_SERVER)
TUN = "nat64"
CLIENT_V4 = "192.0.2.2"
ROUTER_V4 = "192.0.2.1"
V4_LINK_LEN = 28
SERVER_V4 = "192.0.2.100"  # what the IPv4 client sees of the IPv6 server
SERVER_V6 = "2001:db8:99::1"
ROUTER_V6 = "2001:db8:99::ffff"
NAT64_PREFIX = "2001:db8:64::"
NAT64_PREFIX_LEN = 96
TAYGA_V4 = "198.51.100.1"  # TAYGA's own address (ICMPv4 errors), inside the dynamic pool
DYNAMIC_POOL = "198.51.100.0/24"
# 1500 on the IPv6 side leaves 1480 for the IPv4 side (20 more octets of header after
# translation): no PMTUD round trip during the TCP run.
V4_MTU = 1480
IFA_F_NODAD = 0x02
AF_INET, AF_INET6 = 2, 10
START_TIMEOUT = 10.0


def tayga_config(data_dir: str) -> str:
    return (
        f"tun-device {TUN}\n"
        f"ipv4-addr {TAYGA_V4}\n"
        f"prefix {NAT64_PREFIX}/{NAT64_PREFIX_LEN}\n"
        f"dynamic-pool {DYNAMIC_POOL}\n"
        f"map {SERVER_V4} {SERVER_V6}\n"
        f"data-dir {data_dir}\n"
    )


# ------------------------------------------------------------------------------- netlink


def _enter(name: str) -> Callable[[], None]:
    def enter() -> None:  # runs in the forked child, before exec
        pyroute2_netns.setns(name, flags=0)

    return enter


def _sysctl(name: str, key: str, value: int) -> None:
    # /proc/sys/net belongs to the netns of the opener: open it from inside the namespace
    pyroute2_netns.pushns(name)
    try:
        with open(f"/proc/sys/net/{key}", "w") as fh:
            fh.write(f"{value}\n")
    finally:
        pyroute2_netns.popns()


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise CommandFailed(f"interface {ifname} not found")
    return found[0]


def _veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int) -> None:
    with IPRoute(netns=ns_a) as ipr:
        ipr.link("add", ifname=if_a, kind="veth", peer={"ifname": if_b, "net_ns_fd": ns_b})
        ipr.link("set", index=_index(ipr, if_a), mtu=mtu, state="up")
    with IPRoute(netns=ns_b) as ipr:
        ipr.link("set", index=_index(ipr, if_b), mtu=mtu, state="up")


def _address(ns: str, ifname: str, address: str, prefixlen: int) -> None:
    with IPRoute(netns=ns) as ipr:
        ipr.addr("add", index=_index(ipr, ifname), address=address, prefixlen=prefixlen,
                 flags=IFA_F_NODAD)


def _namespace_base(ns: str, *, router: bool) -> None:
    pyroute2_netns.create(ns)
    with IPRoute(netns=ns) as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")
    for scope in ("all", "default"):
        _sysctl(ns, f"ipv6/conf/{scope}/accept_dad", 0)
    if router:
        _sysctl(ns, "ipv4/ip_forward", 1)
        _sysctl(ns, "ipv6/conf/all/forwarding", 1)


def build_links(threaded: bool = False) -> None:
    _namespace_base(NS_CLIENT, router=False)
    _namespace_base(NS_TAYGA, router=True)
    _namespace_base(NS_SERVER, router=False)
    _veth(NS_CLIENT, "a0", NS_TAYGA, "t-a", V4_MTU)
    _veth(NS_TAYGA, "t-b", NS_SERVER, "b0", 1500)
    # The same receive offloads as the guest's host link in the test bed (GRO, UDP included),
    # so both forwarders get the client's traffic under the same link settings; `threaded`
    # as the bed's guest end (topology.THREADED_NAPI_ENDS).
    enable_gro(NS_TAYGA, "t-a")
    if threaded:
        enable_threaded_napi(NS_TAYGA, "t-a")
    _address(NS_CLIENT, "a0", CLIENT_V4, V4_LINK_LEN)
    _address(NS_TAYGA, "t-a", ROUTER_V4, V4_LINK_LEN)
    _address(NS_TAYGA, "t-b", ROUTER_V6, 64)
    _address(NS_SERVER, "b0", SERVER_V6, 64)
    with IPRoute(netns=NS_CLIENT) as ipr:
        ipr.route("add", dst="0.0.0.0/0", gateway=ROUTER_V4, family=AF_INET)
    with IPRoute(netns=NS_SERVER) as ipr:
        ipr.route("add", dst="::/0", gateway=ROUTER_V6, family=AF_INET6)


def route_through_tun() -> None:
    """Once TAYGA has created its TUN: both address families' translated ranges go into it."""
    with IPRoute(netns=NS_TAYGA) as ipr:
        index = _index(ipr, TUN)
        ipr.link("set", index=index, state="up")
        ipr.route("add", dst=f"{SERVER_V4}/32", oif=index, family=AF_INET)
        ipr.route("add", dst=DYNAMIC_POOL, oif=index, family=AF_INET)
        ipr.route("add", dst=f"{NAT64_PREFIX}/{NAT64_PREFIX_LEN}", oif=index, family=AF_INET6)


def remove_namespaces() -> None:
    existing = set(pyroute2_netns.listnetns())
    for ns in NAMESPACES:
        if ns in existing:
            pyroute2_netns.remove(ns)


# ------------------------------------------------------------------------------- processes


def _start(ns: str, argv: Sequence[str], log: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_enter(ns),
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _wait_for_tun(proc: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log, errors="replace") as fh:
                raise CommandFailed(f"tayga exited with {proc.returncode}: {fh.read()[-400:]}")
        with IPRoute(netns=NS_TAYGA) as ipr:
            if ipr.link_lookup(ifname=TUN):
                return
        time.sleep(0.1)
    raise CommandFailed(f"tayga did not create {TUN} within {START_TIMEOUT:.0f}s")


def _client(argv: Sequence[str], timeout: float) -> str:
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_enter(NS_CLIENT),
                            start_new_session=True, text=True)
    try:
        out, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise CommandFailed(f"{' '.join(argv)} timed out after {timeout:.0f}s") from None
    return out


def iperf3_from_client(*, udp: bool, duration: int, reverse: bool) -> dict[str, Any]:
    argv = iperf3_client_args(SERVER_V4, udp=udp, duration=duration, reverse=reverse)
    last: CommandFailed | None = None
    for _attempt in range(5):  # the server may not listen yet, or still close the last test
        try:
            return parse_iperf3(_client(argv, timeout=duration + 30))
        except CommandFailed as exc:
            last = exc
            if "busy" not in str(exc) and "refused" not in str(exc):
                raise
            time.sleep(0.5)
    assert last is not None
    raise last


@contextlib.contextmanager
def reference_setup(workdir: str, threaded: bool = False) -> Iterator[None]:
    """Namespaces, TAYGA and the iperf3 server; everything is removed on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    remove_namespaces()  # leftovers of a killed run
    try:
        build_links(threaded)
        data_dir = os.path.join(workdir, "data")
        os.mkdir(data_dir)
        conf = os.path.join(workdir, "tayga.conf")
        with open(conf, "w") as fh:
            fh.write(tayga_config(data_dir))
        tayga_log = os.path.join(workdir, "tayga.log")
        tayga = _start(NS_TAYGA, [TAYGA, "--nodetach", "--config", conf], tayga_log)
        procs.append(tayga)
        _wait_for_tun(tayga, tayga_log)
        route_through_tun()
        procs.append(_start(NS_SERVER, ["iperf3", "-s", "-B", SERVER_V6],
                            os.path.join(workdir, "iperf3-server.log")))
        yield
    finally:
        for proc in procs:
            _stop(proc)
        remove_namespaces()


def measure(duration: int, label: str = "") -> list[Measurement]:
    via = f"IPv4 {CLIENT_V4} -> TAYGA -> IPv6 {SERVER_V6}"
    via_r = f"IPv6 {SERVER_V6} -> TAYGA -> IPv4 {CLIENT_V4}"
    results = []
    data, arrived = counting_udp6_arrivals(NS_SERVER, lambda: iperf3_from_client(
        udp=True, duration=duration, reverse=False))
    results.append(udp_measurement("tayga", f"UDP 100 B v4->v6{label}", data, via, arrived=arrived))
    data = iperf3_from_client(udp=True, duration=duration, reverse=True)
    results.append(udp_measurement("tayga", f"UDP 100 B v6->v4 (-R){label}", data, via_r))
    data = iperf3_from_client(udp=False, duration=duration, reverse=False)
    results.append(tcp_measurement("tayga", f"TCP v4->v6{label}", data, via))
    data = iperf3_from_client(udp=False, duration=duration, reverse=True)
    results.append(tcp_measurement("tayga", f"TCP v6->v4 (-R){label}", data, via_r))
    return results


def run(duration: int = 5, threaded: bool = False) -> tuple[list[Measurement], list[Skipped]]:
    """`threaded`: TAYGA's receiving link runs its NAPI in a kernel thread (rows say so)."""
    name = "TAYGA NAT64 reference" + (" (threaded NAPI)" if threaded else "")
    if os.geteuid() != 0:
        return [], [Skipped("tayga", name, "needs root (network namespaces)")]
    for tool in (TAYGA, "iperf3"):
        if shutil.which(tool) is None:
            return [], [Skipped("tayga", name, f"{tool} not installed")]
    workdir = tempfile.mkdtemp(prefix="bt-tayga-")
    try:
        with reference_setup(workdir, threaded):
            return measure(duration, " (threaded NAPI)" if threaded else ""), []
    except (CommandFailed, OSError) as exc:
        return [], [Skipped("tayga", name, str(exc))]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
