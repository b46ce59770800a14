"""Build and tear down the Fig. 1 test bed out of namespaces, veth pairs and bridges.

All netlink work goes through pyroute2. Processes (radvd, CN servers, agents) are tracked
by pid files in the state dir; `down` also kills anything still running in a namespace of
the prefix, so it works after a crash and when nothing exists.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_interface

from pyroute2 import IPRoute

from provisioning import nemo as nemo_bed
from provisioning import netns, processes, radvd
from provisioning.errors import ProvisioningError
from provisioning.nodes import agents, cn, correspondent, dns, gateway, host, sip
from provisioning.nodes import hmip as hmip_bed
from provisioning.nodes import ipsec as ipsec_keys
from provisioning.nodes import route_optimisation as ro_nodes
from provisioning.nodes.agents import TranslationOptions
from provisioning.offloads import (
    enable_gro,
    enable_threaded_napi,
    enable_tx_offloads,
    set_offloads_off,
)
from provisioning.topology import (
    BRIDGES,
    CN_EXTRA_ADDRESSES,
    CN_LINK_OFFLOAD_END,
    FIG1,
    GRO_ENDS,
    MAP_ACCESS_ROUTERS,
    NODES,
    OFFLOAD_ENDS,
    RADVD_INTERFACES,
    ROUTERS,
    SWITCH,
    THREADED_NAPI_ENDS,
    Topology,
    namespace,
    state_dir,
    validate_prefix,
)

COMMAND_NOT_FOUND = 127  # same as a shell
IFA_F_NODAD = 0x02  # static addresses are usable at once (no tentative phase)


@dataclass(frozen=True)
class UpOptions:
    prefix: str = "m6"
    agents: bool = True
    ha_refuse: bool = False
    state_root: str = "/run/mip6term"
    pool: str = TranslationOptions.pool  # issue 3: the guest's virtual IPv4 pool
    idle_timeout: int = TranslationOptions.idle_timeout  # table 230 entry lifetime
    ipsec: str = ""  # issue 4: "signalling,tunnel,tunnel-only,e2e" (any combination)
    guest: str = "lite"  # issue 5: "vm" = the QEMU guest instead of the `guest` namespace
    fastpath: bool = True  # issue 14: the agents' eBPF fast path (False: pure Python path)
    nemo: bool = False  # issue 11: the guest is a mobile router; vmn behind it
    tls_gateway: bool = False  # issue 13: Squid TLS gateway `gw`, HTTPS on the CN, test CA
    sip: bool = False  # issue 12: Kamailio in `sip`, baresip phones on host and cn
    sip_alg: bool = True  # issue 12: the guest's SIP ALG (off = the 488 control case)
    log: Callable[[str], None] = print  # progress lines of the VM set-up
    hmip: bool = False  # issue 10: MAP domain (map, ar-c, our RA daemon on ar-a/ar-b)
    hmip_type: int = 1  # MAP registration type 1-3 (scenarios 10100/10200/10300)
    ro: bool = False  # issue 9: route optimisation at the terminal, and `cn2` (no MIPv6)


def _link_index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise ProvisioningError(f"interface {ifname} not found")
    return found[0]


def _add_address(ns: str, ifname: str, address: str, *, deprecated: bool = False) -> None:
    """A static address; `deprecated` (preferred lifetime 0) keeps it out of source selection."""
    iface = ip_interface(address)
    extra = {}
    if deprecated:
        extra["IFA_CACHEINFO"] = {"ifa_preferred": 0, "ifa_valid": 0xFFFFFFFF,
                                  "cstamp": 0, "tstamp": 0}
    with IPRoute(netns=ns) as ipr:
        ipr.addr("add", index=_link_index(ipr, ifname), address=str(iface.ip),
                 prefixlen=iface.network.prefixlen, flags=IFA_F_NODAD, **extra)


def _set_up(ns: str, ifname: str) -> None:
    with IPRoute(netns=ns) as ipr:
        ipr.link("set", index=_link_index(ipr, ifname), state="up")


def _create_veth(ns_a: str, if_a: str, ns_b: str, if_b: str,
                 keep_offloads: tuple[bool, bool] = (False, False)) -> None:
    """A veth pair created directly across two namespaces (no names in the root netns).

    Offloads are turned off on each end unless `keep_offloads` says that end keeps them.
    """
    with IPRoute(netns=ns_a) as ipr:
        ipr.link("add", ifname=if_a, kind="veth", peer={"ifname": if_b, "net_ns_fd": ns_b})
    for ns, ifname, keep in ((ns_a, if_a, keep_offloads[0]), (ns_b, if_b, keep_offloads[1])):
        if not keep:
            set_offloads_off(ns, ifname)


def _keeps_offloads(lite: bool, node: str, ifname: str) -> bool:
    return lite and (node, ifname) in OFFLOAD_ENDS


def _prepare_namespace(ns: str, *, router: bool) -> None:
    netns.create(ns)
    # no DAD delay for anything we configure statically in the bed
    for scope in ("all", "default"):
        netns.write_sysctl(ns, f"ipv6/conf/{scope}/accept_dad", 0)
    if router:
        netns.write_sysctl(ns, "ipv6/conf/all/forwarding", 1)
    _set_up(ns, "lo")


def _build_switch(prefix: str) -> str:
    sw = namespace(prefix, SWITCH)
    netns.create(sw)
    # the switch is pure L2: its own IPv6 stack must not add RS/MLD noise on the segments
    netns.write_sysctl(sw, "ipv6/conf/default/disable_ipv6", 1)
    netns.write_sysctl(sw, "ipv6/conf/all/disable_ipv6", 1)
    # With br_netfilter loaded on the machine (container hosts load it), every bridged frame
    # would also pass the ip(6)tables hooks: not a switch's job, and ~10% of a CPU per link.
    for family in ("arptables", "iptables", "ip6tables"):
        try:
            netns.write_sysctl(sw, f"bridge/bridge-nf-call-{family}", 0)
        except FileNotFoundError:
            break  # br_netfilter is not loaded: bridged frames never see those hooks
    _set_up(sw, "lo")
    with IPRoute(netns=sw) as ipr:
        for bridge in BRIDGES.values():
            ipr.link("add", ifname=bridge, kind="bridge", br_mcast_snooping=0,
                     br_forward_delay=0, br_stp_state=0)
            ipr.link("set", index=_link_index(ipr, bridge), state="up")
    return sw


def attach_port(prefix: str, port: str, bridge: str) -> None:
    """Enslave switch port `port` to `bridge` (also used by move and by probes)."""
    with IPRoute(netns=namespace(prefix, SWITCH)) as ipr:
        ipr.link("set", index=_link_index(ipr, port), master=_link_index(ipr, bridge))


def _build_links(prefix: str, skip_node: str | None = None, topology: Topology = FIG1,
                 nemo: bool = False) -> None:
    sw = namespace(prefix, SWITCH)
    lite = skip_node is None  # the agents read with PACKET_VNET_HDR (agents.write_configs)
    for port in topology.switch_ports:
        if port.node == skip_node:  # the VM's TAP takes this place (provisioning/vm/bed.py)
            continue
        ns = namespace(prefix, port.node)
        _create_veth(ns, port.ifname, sw, port.port,
                     (_keeps_offloads(lite, port.node, port.ifname),
                      _keeps_offloads(lite, SWITCH, port.port)))
        if lite and (SWITCH, port.port) in GRO_ENDS:
            enable_gro(sw, port.port)
        if port.disable_ipv6:
            # before link up: the kernel must never speak IPv6 on a link our agents own
            netns.write_sysctl(ns, f"ipv6/conf/{port.ifname}/disable_ipv6", 1)
        attach_port(prefix, port.port, port.bridge)
        _set_up(sw, port.port)
        if port.address:
            _add_address(ns, port.ifname, port.address)
        _set_up(ns, port.ifname)
    for link in topology.links:
        if skip_node in (link.node_a, link.node_b):
            continue
        if nemo and nemo_bed.is_host_link(link.node_a, link.ifname_a):
            continue  # the mobile network bridge takes its place (provisioning/nemo.py)
        ns_a, ns_b = namespace(prefix, link.node_a), namespace(prefix, link.node_b)
        _create_veth(ns_a, link.ifname_a, ns_b, link.ifname_b,
                     (_keeps_offloads(lite, link.node_a, link.ifname_a),
                      _keeps_offloads(lite, link.node_b, link.ifname_b)))
        for node, ns, ifname in ((link.node_a, ns_a, link.ifname_a),
                                 (link.node_b, ns_b, link.ifname_b)):
            if lite and (node, ifname) in GRO_ENDS:
                enable_gro(ns, ifname)
        for ns, ifname, address in ((ns_a, link.ifname_a, link.address_a),
                                    (ns_b, link.ifname_b, link.address_b)):
            if address:
                _add_address(ns, ifname, address)
            _set_up(ns, ifname)
        for node, ns, ifname in ((link.node_a, ns_a, link.ifname_a),
                                 (link.node_b, ns_b, link.ifname_b)):
            if lite and (node, ifname) in THREADED_NAPI_ENDS:
                enable_threaded_napi(ns, ifname)


def super_frames_from_the_cn(options: UpOptions, ipsec: ipsec_keys.IpsecOptions) -> bool:
    """Whether the CN sends with TSO and the HA tunnels its super-frames whole (issue 14).

    Only where the guest's fast path takes them (lite guest, fast path on, no IPsec on the
    MN-HA layer, no userspace CN, no NEMO or HMIPv6 nesting): a packet socket cannot read an
    IPv6-in-IPv6 super-frame, so everywhere else the CN keeps sending MTU-sized frames.
    """
    return (options.guest != "vm" and options.fastpath and not ipsec.mobility
            and not ipsec.end_to_end and not options.ro and not options.nemo and not options.hmip)


def _add_routes(prefix: str, topology: Topology = FIG1) -> None:
    for route in topology.routes:
        with IPRoute(netns=namespace(prefix, route.node)) as ipr:
            dst = "::/0" if route.destination == "default" else route.destination
            ipr.route("add", dst=dst, gateway=route.gateway, family=10)


def _start_radvd(prefix: str, sdir: str, skip: tuple[str, ...] = ()) -> None:
    interfaces = {n: v for n, v in RADVD_INTERFACES.items() if n not in skip}
    for node, (ifname, adv_prefix) in interfaces.items():
        p = radvd.paths(sdir, node)
        with open(p.config, "w") as f:
            f.write(radvd.render_config(ifname, adv_prefix))
        os.chmod(p.config, 0o644)  # radvd refuses world-writable configs
        processes.start(sdir, processes.ProcessSpec(
            name=f"radvd-{node}", namespace=namespace(prefix, node),
            argv=radvd.command(p), log=os.path.join(sdir, f"radvd-{node}.out"),
        ))
    for node in interfaces:
        processes.ensure_running(sdir, f"radvd-{node}")


def up(options: UpOptions) -> str:
    """Build the whole bed; returns the state dir. A failure leaves a state `down` can clean."""
    prefix = validate_prefix(options.prefix)
    if netns.list_with_prefix(prefix):
        raise ProvisioningError(
            f"test bed {prefix!r} already exists (run `mip6term testbed down --prefix {prefix}`)")
    translation = TranslationOptions(pool=options.pool, idle_timeout=options.idle_timeout)
    translation.addresses()  # bad --pool/--idle-timeout fail before anything is built
    ipsec = ipsec_keys.parse_switches(options.ipsec)
    sdir = state_dir(prefix, options.state_root)
    os.makedirs(sdir, exist_ok=True)
    _build_switch(prefix)
    vm_guest = options.guest == "vm"
    for node in NODES:
        if not (vm_guest and node == agents.GUEST):
            _prepare_namespace(namespace(prefix, node), router=node in ROUTERS)
    _build_links(prefix, skip_node=agents.GUEST if vm_guest else None, nemo=options.nemo)
    if options.nemo:
        nemo_bed.build(prefix, lite=not vm_guest, guest_port=not vm_guest)
    _add_routes(prefix)
    if options.hmip:
        hmip_bed.build(prefix, lite=not vm_guest)
    # The userspace CN (route optimisation, end-to-end ESP) runs when the bed needs it; else
    # the CN is the plain kernel stack, as fast as before.
    cn_daemon = options.ro or ipsec.end_to_end
    if not vm_guest and not cn_daemon:
        enable_tx_offloads(namespace(prefix, CN_LINK_OFFLOAD_END[0]), CN_LINK_OFFLOAD_END[1])
    super_frames = super_frames_from_the_cn(options, ipsec)
    if super_frames:
        enable_tx_offloads(namespace(prefix, "cn"), "eth0")
    if not cn_daemon:
        for address in CN_EXTRA_ADDRESSES:  # cn1..cn5.example (pool-exhaustion test)
            # Deprecated, so the CN's unconnected UDP replies (iperf3 -u) still come from ::1001.
            _add_address(namespace(prefix, "cn"), "eth0", f"{address}/64", deprecated=True)
    if options.ro:
        ro_nodes.add_cn2(prefix, sdir)
    _start_radvd(prefix, sdir, skip=tuple(MAP_ACCESS_ROUTERS) if options.hmip else ())
    key_files = ipsec_keys.write_key_files(sdir, ipsec)  # mode 0600, random keys
    if options.hmip:  # the MAP and the RA daemons, before the guest looks for a MAP
        hmip_bed.start(prefix, sdir, ipsec)
    if cn_daemon:  # it owns the CN address (and cn1..cn5) before the servers bind them
        correspondent.start(sdir, namespace(prefix, "cn"),
                            key_files[ipsec_keys.CN_KEYS] if ipsec.end_to_end else None)
    cn.start_services(sdir, namespace(prefix, "cn"))
    dns.start(sdir, namespace(prefix, dns.DNS_NODE))
    if options.tls_gateway:
        gateway.start(sdir, prefix)
    agents.write_configs(sdir, refuse_home_address=options.ha_refuse, translation=translation,
                         ipsec=ipsec, offloads=not vm_guest,
                         guest_extra=gateway.guest_tables(sdir) if options.tls_gateway else None,
                         route_optimisation=options.ro,
                         fastpath=options.fastpath, super_frames=super_frames)
    if options.sip:
        sip.write_alg_config(sdir, enabled=options.sip_alg)
    if options.hmip:
        hmip_bed.enable_in_guest_config(sdir, options.hmip_type)
    if options.nemo:
        nemo_bed.write_configs(sdir, ipsec=ipsec.tunnel != ipsec_keys.TUNNEL_OFF)
        nemo_bed.write_ipsec(sdir, ipsec)
    if options.agents and vm_guest:
        from provisioning.image import build_image
        from provisioning.vm import bed

        agents.start_agent(sdir, agents.HOME_AGENT_NODE, namespace(prefix, agents.HOME_AGENT_NODE))
        image = build_image()  # cached unless the recipe or the guest-side code changed
        bed.start(prefix, sdir, image, log=options.log,
                  host_link=nemo_bed.VM_HOST_LINK if options.nemo else None)
        agents.wait_ready(sdir, agents.HOME_AGENT_NODE)
    elif options.agents:
        for node in (agents.HOME_AGENT_NODE, agents.GUEST):
            agents.start_agent(sdir, node, namespace(prefix, node))
        for node in (agents.HOME_AGENT_NODE, agents.GUEST):
            agents.wait_ready(sdir, node)
    if options.agents:
        host.configure(sdir, namespace(prefix, host.HOST_NODE), translation)
    if options.agents and options.nemo:
        nemo_bed.start_vmn(sdir, prefix, ipsec=ipsec.tunnel != ipsec_keys.TUNNEL_OFF)
    if options.sip:
        sip.start(sdir, prefix, home_ipv4=str(translation.addresses()[2]),
                  with_phones=options.agents)
    return sdir


def _destroy_vm(sdir: str, prefix: str) -> None:
    """The bed's VM (testbed up --guest vm), if any; lite beds never import libvirt."""
    from provisioning.vm import paths

    if os.path.exists(os.path.join(sdir, "vm.json")) or paths.vm_dir(f"bed-{prefix}").exists():
        from provisioning.vm import bed

        bed.stop(sdir, prefix)


def down(prefix: str, state_root: str = "/run/mip6term") -> list[str]:
    """Stop every process, delete the namespaces and the state dir. Idempotent.

    Returns the namespaces that were removed.
    """
    validate_prefix(prefix)
    sdir = state_dir(prefix, state_root)
    processes.stop_all(sdir)
    _destroy_vm(sdir, prefix)
    names = netns.list_with_prefix(prefix)
    inodes = {ino for n in names if (ino := netns.namespace_inode(n)) is not None}
    if inodes:
        netns.terminate(netns.pids_in_namespaces(inodes))
    for name in names:
        netns.remove(name)
    host.remove_resolver_overrides(prefix, sdir)  # /etc/netns/<prefix>-*/ from host_shim
    shutil.rmtree(sdir, ignore_errors=True)
    return names


def exec_argv(prefix: str, node: str, argv: list[str]) -> int:
    """Run argv in <prefix>-<node> with inherited stdio; returns its exit code."""
    validate_prefix(prefix)
    ns = namespace(prefix, node)
    if not netns.exists(ns):
        if node not in (*NODES, SWITCH):
            raise ProvisioningError(f"unknown node {node!r} (nodes: {', '.join((*NODES, SWITCH))})")
        raise ProvisioningError(f"namespace {ns} does not exist (is the test bed up?)")
    if not argv:
        raise ProvisioningError("no command given (usage: testbed exec NODE -- CMD...)")
    try:
        proc = netns.popen(ns, argv)
    except FileNotFoundError:
        print(f"mip6term: error: command not found: {argv[0]}", file=sys.stderr)
        return COMMAND_NOT_FOUND
    except OSError as exc:
        raise ProvisioningError(f"cannot run {argv[0]}: {exc}") from exc
    return proc.wait()


def add_probe(prefix: str, bridge_key: str, name: str = "probe") -> str:
    """A kernel-IPv6 host namespace <prefix>-<name> with eth0 on bridge BRIDGES[bridge_key].

    Used by tests to look at a segment with an ordinary IPv6 stack (SLAAC from radvd).
    `down` removes it like any other namespace of the prefix.
    """
    ns = namespace(prefix, name)
    _prepare_namespace(ns, router=False)
    port = f"p-{name}"[:15]
    _create_veth(ns, "eth0", namespace(prefix, SWITCH), port)
    attach_port(prefix, port, BRIDGES[bridge_key])
    _set_up(namespace(prefix, SWITCH), port)
    netns.write_sysctl(ns, "ipv6/conf/eth0/accept_ra", 2)
    _set_up(ns, "eth0")
    return ns
