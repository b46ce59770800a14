"""Issue 3, host side: host_shim on a real veth, the /etc/netns resolver override seen by
programs started in the namespace, the resolver at home (dnsmasq), and `testbed up/down`
running and cleaning the shim."""

from __future__ import annotations

import json
import os
import sys
from ipaddress import IPv6Address
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from pyroute2 import IPRoute

from host_shim.resolver import MARKER
from provisioning import netns
from provisioning.topology import CN_ADDRESS, CN_EXTRA_ADDRESSES, DNS_ADDRESS
from tests.netns.conftest import BedHandle

pytestmark = pytest.mark.netns

SHIM = (sys.executable, "-m", "host_shim")


def shim(bed: BedHandle, *argv: str, state: Path) -> tuple[int, str, str]:
    result = bed.exec("host", *SHIM, *argv, "--state-file", str(state),
                      "--netns-name", bed.namespace("host"))
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def host_eth0(bed: BedHandle) -> tuple[set[str], set[tuple[str, str | None]], int]:
    """(addresses "a/len", routes (dst/len, gateway), MTU) of host's eth0 via netlink."""
    with IPRoute(netns=bed.namespace("host")) as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]
        addrs = {f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=index)}
        routes = set()
        for family, default in ((2, "0.0.0.0"), (10, "::")):
            for m in ipr.get_routes(family=family, oif=index):
                if m["table"] == 254:
                    routes.add((f"{m.get_attr('RTA_DST') or default}/{m['dst_len']}",
                                m.get_attr("RTA_GATEWAY")))
        mtu = ipr.get_links(index)[0].get_attr("IFLA_MTU")
    return addrs, routes, mtu


def test_shim_up_status_down_on_the_host_veth(testbed_no_agents: BedHandle,
                                              tmp_path: Path) -> None:
    bed = testbed_no_agents
    state = tmp_path / "shim.json"
    real_resolv = Path("/etc/resolv.conf").read_bytes()
    before = host_eth0(bed)
    code, out, err = shim(bed, "up", "--interface", "eth0", state=state)
    assert code == 0, err
    addrs, routes, mtu = host_eth0(bed)
    assert {"198.18.0.2/24", "2001:db8:6::1000/128"} <= addrs
    assert {("0.0.0.0/0", "198.18.0.1"), ("198.18.0.0/24", None), ("::/0", "fe80::1")} <= routes
    assert mtu == 1440
    # the home address is usable at once (IFA_F_NODAD), never tentative
    with IPRoute(netns=bed.namespace("host")) as ipr:
        hoa = [m for m in ipr.get_addr(family=10) if m.get_attr("IFA_ADDRESS") == "2001:db8:6::1000"]
        assert hoa and not hoa[0]["flags"] & 0x40  # IFA_F_TENTATIVE
    # programs started in the namespace (like `ip netns exec`) read the agent as resolver
    seen = bed.exec("host", "cat", "/etc/resolv.conf").stdout.decode()
    assert seen == f"{MARKER}\nnameserver 198.18.0.1\n"
    assert bed.exec("cn", "cat", "/etc/resolv.conf").stdout == real_resolv  # other nodes: not
    assert Path("/etc/resolv.conf").read_bytes() == real_resolv  # the machine: untouched

    code, out, err = shim(bed, "status", "--json", state=state)
    info = json.loads(out)
    assert code == 0 and info["configured"] and info["interface_present"]
    assert all(i["present"] and i["owned"] for i in info["items"]) and len(info["items"]) == 4

    code, out, err = shim(bed, "down", state=state)
    assert code == 0, err
    assert host_eth0(bed) == before
    assert not os.path.exists(f"/etc/netns/{bed.namespace('host')}")
    assert not state.exists()
    seen = bed.exec("host", "cat", "/etc/resolv.conf").stdout
    assert seen == real_resolv


def test_shim_without_agent_fails_cleanly(testbed_no_agents: BedHandle, tmp_path: Path) -> None:
    code, out, err = shim(testbed_no_agents, "up", "--agent-socket", str(tmp_path / "no.sock"),
                          "--wait", "0.5", state=tmp_path / "s.json")
    assert code == 1 and err.startswith("host-shim: error: guest agent") and err.count("\n") == 1
    assert "198.18.0.2/24" not in host_eth0(testbed_no_agents)[0]


def query(bed: BedHandle, name: str, rdtype: str) -> dns.message.Message:
    """Ask the home resolver from core (an ordinary kernel IPv6 node on br-home)."""
    with netns.inside(bed.namespace("core")):
        return dns.query.udp(dns.message.make_query(name, rdtype), str(DNS_ADDRESS), timeout=3)


def test_home_resolver_has_only_aaaa_for_cn(testbed_no_agents: BedHandle) -> None:
    bed = testbed_no_agents
    answer = query(bed, "cn.example", "AAAA")
    assert answer.rcode() == dns.rcode.NOERROR
    assert [IPv6Address(r.address) for rr in answer.answer for r in rr] == [CN_ADDRESS]
    answer = query(bed, "cn.example", "A")
    assert answer.rcode() == dns.rcode.NOERROR and answer.answer == []  # NODATA
    for i, address in enumerate((CN_ADDRESS, *CN_EXTRA_ADDRESSES), start=1):
        answer = query(bed, f"cn{i}.example", "AAAA")
        assert [IPv6Address(r.address) for rr in answer.answer for r in rr] == [address]
    assert query(bed, "nothing.example", "AAAA").rcode() == dns.rcode.NXDOMAIN
    assert "query[AAAA] cn.example" in Path(bed.state_dir, "dnsmasq.log").read_text()


def test_cn_holds_the_five_correspondent_addresses(testbed_no_agents: BedHandle) -> None:
    with IPRoute(netns=testbed_no_agents.namespace("cn")) as ipr:
        addrs = {IPv6Address(m.get_attr("IFA_ADDRESS")) for m in ipr.get_addr(family=10)}
    assert {CN_ADDRESS, *CN_EXTRA_ADDRESSES} <= addrs


def test_testbed_up_runs_the_shim_and_down_cleans_etc_netns(testbed: BedHandle) -> None:
    bed = testbed
    etc_dir = f"/etc/netns/{bed.namespace('host')}"
    state = Path(bed.state_dir, "host-shim.json")
    code, out, err = shim(bed, "status", "--json", state=state)
    info = json.loads(out)
    assert info["configured"] and all(i["present"] for i in info["items"])
    assert info["config"]["ipv4"] == "198.18.0.2/24" and info["config"]["mtu"] == 1440
    assert os.path.exists(f"{etc_dir}/resolv.conf")
    result = bed.cli("testbed", "down")
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(etc_dir)
