"""The host interface through pyroute2 (never the `ip` tool).

`Netlink` is the small surface the shim needs; unit tests substitute a fake with the same
methods. add_* return False when the object already existed, del_* when it was already gone.
"""

from __future__ import annotations

import errno
from ipaddress import ip_interface, ip_network
from typing import Any, Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from host_shim.errors import ShimError
from host_shim.state import NetItem

AF_INET, AF_INET6 = 2, 10
IFA_F_NODAD = 0x02  # the home address is the agent's, not ours to defend: usable at once
IFF_UP = 0x1
_GONE = (errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ENODEV)


class NetlinkOps(Protocol):
    def index(self, ifname: str) -> int: ...
    def mtu(self, index: int) -> int: ...
    def set_mtu(self, index: int, mtu: int) -> None: ...
    def is_up(self, index: int) -> bool: ...
    def set_up(self, index: int, up: bool) -> None: ...
    def add(self, index: int, item: NetItem) -> bool: ...
    def delete(self, index: int, item: NetItem) -> bool: ...
    def present(self, index: int) -> set[NetItem]: ...
    def close(self) -> None: ...


def _family(item: NetItem) -> int:
    return AF_INET if item.family == 4 else AF_INET6


class Netlink:
    """pyroute2 IPRoute in the calling process's network namespace."""

    def __init__(self) -> None:
        self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def index(self, ifname: str) -> int:
        found = self._ipr.link_lookup(ifname=ifname)
        if not found:
            raise ShimError(f"interface {ifname} not found")
        return int(found[0])

    def _link(self, index: int) -> Any:
        return self._ipr.get_links(index)[0]

    def mtu(self, index: int) -> int:
        return int(self._link(index).get_attr("IFLA_MTU"))

    def set_mtu(self, index: int, mtu: int) -> None:
        self._call(f"set MTU {mtu}", self._ipr.link, "set", index=index, mtu=mtu)

    def is_up(self, index: int) -> bool:
        return bool(self._link(index)["flags"] & IFF_UP)

    def set_up(self, index: int, up: bool) -> None:
        self._call("set link state", self._ipr.link, "set", index=index,
                   state="up" if up else "down")

    def _route_args(self, index: int, item: NetItem) -> dict[str, Any]:
        net = ip_network(item.destination)
        args: dict[str, Any] = {"dst": str(net.network_address), "dst_len": net.prefixlen,
                                "oif": index, "family": _family(item)}
        if item.gateway:
            args["gateway"] = item.gateway
        else:
            args["scope"] = 253  # RT_SCOPE_LINK: on-link, the agent answers ARP for it
        return args

    def add(self, index: int, item: NetItem) -> bool:
        try:
            if item.kind == "address":
                iface = ip_interface(item.destination)
                self._ipr.addr("add", index=index, address=str(iface.ip),
                               prefixlen=iface.network.prefixlen, family=_family(item),
                               flags=IFA_F_NODAD if item.family == 6 else 0)
            else:
                self._ipr.route("add", **self._route_args(index, item))
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise ShimError(f"cannot add {item.describe()}: {exc.args[-1]}") from None
        return True

    def delete(self, index: int, item: NetItem) -> bool:
        try:
            if item.kind == "address":
                iface = ip_interface(item.destination)
                self._ipr.addr("del", index=index, address=str(iface.ip),
                               prefixlen=iface.network.prefixlen, family=_family(item))
            else:
                self._ipr.route("del", **self._route_args(index, item))
        except NetlinkError as exc:
            if exc.code in _GONE:
                return False
            raise ShimError(f"cannot remove {item.describe()}: {exc.args[-1]}") from None
        return True

    def present(self, index: int) -> set[NetItem]:
        """Addresses and routes on the interface, as NetItems (for status and checks)."""
        found: set[NetItem] = set()
        for msg in self._ipr.get_addr(index=index):
            family = 4 if msg["family"] == AF_INET else 6
            found.add(NetItem("address", family,
                              f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"))
        for family_code, family in ((AF_INET, 4), (AF_INET6, 6)):
            for msg in self._ipr.get_routes(family=family_code, oif=index):
                dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == 4 else "::")
                found.add(NetItem("route", family, f"{dst}/{msg['dst_len']}",
                                  msg.get_attr("RTA_GATEWAY")))
        return found

    @staticmethod
    def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except NetlinkError as exc:
            raise ShimError(f"cannot {what}: {exc.args[-1]}") from None
