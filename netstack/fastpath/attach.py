"""Attach a tc program to an interface's ingress (clsact qdisc, cls_bpf, direct action) with
pyroute2, and take it away again. Each call is safe inside a running asyncio loop
(netstack.runtime._blocking)."""

from __future__ import annotations

import contextlib

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netstack.fastpath.libbpf import BpfError
from netstack.runtime._blocking import call_blocking

_INGRESS = "ffff:fff2"

# Transmit offloads for a link the programs redirect to: TSO/GSO super-frames (also
# IPv6-in-IPv6 ones) then leave whole and the kernel cuts them only where it must.
# tx-scatter-gather-fraglist keeps UDP GRO's frame lists whole (else the first device cuts
# them): measured 140k -> 215k pkt/s for UDP 100 B host->CN (issue 14).
TX_OFFLOADS = ("tx-checksum-ip-generic", "tx-scatter-gather", "tx-scatter-gather-fraglist",
               "tx-tcp-segmentation",
               "tx-tcp6-segmentation", "tx-ipxip6-segmentation", "tx-udp-segmentation",
               "tx-generic-segmentation")


def enable_tx_offloads(ifname: str) -> dict[str, bool]:
    """Transmit offloads on (receive offloads stay as they are: the agent's socket reads)."""
    from netstack.runtime.linkconfig import set_features

    try:
        return set_features(ifname, dict.fromkeys(TX_OFFLOADS, True))
    except NetlinkError as exc:
        raise BpfError(exc.code, f"ethtool features of {ifname}: {exc}") from exc


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise BpfError(19, f"no interface {ifname}")
    return int(found[0])


def attach_ingress(ifname: str, prog_fd: int, name: str) -> None:
    call_blocking(_attach_ingress, ifname, prog_fd, name)


def _attach_ingress(ifname: str, prog_fd: int, name: str) -> None:
    """Replace whatever clsact filters `ifname` had (a previous run's) with this program."""
    try:
        with IPRoute() as ipr:
            index = _index(ipr, ifname)
            with contextlib.suppress(NetlinkError):
                ipr.tc("del", "clsact", index)
            ipr.tc("add", "clsact", index)
            ipr.tc("add-filter", "bpf", index, ":1", fd=prog_fd, name=name, parent=_INGRESS,
                   classid=1, direct_action=True)
    except NetlinkError as exc:
        raise BpfError(exc.code, f"attach {name} to {ifname}: {exc}") from exc


def detach(ifname: str) -> bool:
    return call_blocking(_detach, ifname)


def _detach(ifname: str) -> bool:
    """Remove the clsact qdisc (and so our filters) from `ifname`; False if there was none."""
    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                return False
            ipr.tc("del", "clsact", found[0])
            return True
    except NetlinkError:
        return False


def ingress_programs(ifname: str) -> list[str]:
    return call_blocking(_ingress_programs, ifname)


def _ingress_programs(ifname: str) -> list[str]:
    """Names of the cls_bpf filters on `ifname`'s ingress (for status and tests)."""
    names: list[str] = []
    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                return names
            for msg in ipr.get_filters(index=found[0], parent=0xFFFFFFF2):
                options = msg.get_attr("TCA_OPTIONS")
                if options is not None and options.get_attr("TCA_BPF_NAME"):
                    names.append(options.get_attr("TCA_BPF_NAME"))
    except NetlinkError:
        pass
    return names
