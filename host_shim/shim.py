"""up / down / status of the host end of virtual network 15 (interface 19 of the patent).

`plan` turns a ShimConfig into the addresses and routes to add; `up` adds them (and the
MTU and resolver) and records in the state file exactly what it changed; `down` undoes
that record in reverse order and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from host_shim import resolver
from host_shim import state as state_file
from host_shim.config import ShimConfig
from host_shim.errors import ShimError
from host_shim.netlink import Netlink, NetlinkOps
from host_shim.state import NetItem, ShimState

NetlinkFactory = Callable[[], NetlinkOps]


@dataclass(frozen=True)
class ResolverOptions:
    netns_name: str | None = None  # lite mode: /etc/netns/<name>/resolv.conf
    write_resolv_conf: bool = False  # workstation: replace resolv_conf (kept for down)
    resolv_conf: str = resolver.RESOLV_CONF
    etc_netns_dir: str = resolver.ETC_NETNS_DIR


def plan(config: ShimConfig) -> list[NetItem]:
    """Addresses and routes for `config`, in the order they are added."""
    items: list[NetItem] = []
    if config.ipv4 is not None:
        items.append(NetItem("address", 4, str(config.ipv4)))
        # the kernel's connected route covers the address's subnet; a larger pool needs its own
        if config.pool is not None and not config.pool.subnet_of(config.ipv4.network):
            items.append(NetItem("route", 4, str(config.pool)))
        if config.ipv4_gateway is not None:
            items.append(NetItem("route", 4, "0.0.0.0/0", str(config.ipv4_gateway)))
    if config.home_address is not None:
        items.append(NetItem("address", 6, f"{config.home_address}/128"))
        if config.ipv6_gateway is not None:
            items.append(NetItem("route", 6, "::/0", str(config.ipv6_gateway)))
    return items


@dataclass
class UpResult:
    state: ShimState
    added: list[NetItem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def up(config: ShimConfig, path: str, resolver_options: ResolverOptions = ResolverOptions(),
       netlink: NetlinkFactory = Netlink) -> UpResult:
    """Configure the interface. Running it again is harmless: what is already there and
    recorded stays ours; what was there before us is noted and never removed by down."""
    config.validate()
    previous = state_file.load(path)
    if previous is not None and previous.interface != config.interface:
        raise ShimError(f"state file {path} belongs to interface {previous.interface}; "
                        "run down first")
    st = previous or ShimState(interface=config.interface,
                               netns_name=resolver_options.netns_name, config={})
    st.config = config.as_dict()
    result = UpResult(st)
    nl = netlink()
    try:
        index = nl.index(config.interface)
        try:
            _apply_link(nl, index, config, st)
            for item in plan(config):
                if item in st.items:
                    continue
                if nl.add(index, item):
                    st.items.append(item)
                    result.added.append(item)
                elif item not in st.preexisting:
                    st.preexisting.append(item)
                    result.messages.append(f"{item.describe()} was already there (left as is)")
        finally:
            state_file.save(path, st)  # even a partial up must be undoable
    finally:
        nl.close()
    result.messages += _apply_resolver(config, st, resolver_options)
    state_file.save(path, st)
    return result


def _apply_link(nl: NetlinkOps, index: int, config: ShimConfig, st: ShimState) -> None:
    if config.mtu is not None and nl.mtu(index) != config.mtu:
        if st.mtu_before is None:
            st.mtu_before = nl.mtu(index)
        nl.set_mtu(index, config.mtu)
        st.mtu_set = config.mtu
    if not nl.is_up(index):
        nl.set_up(index, True)
        st.brought_up = True


def _apply_resolver(config: ShimConfig, st: ShimState, options: ResolverOptions) -> list[str]:
    if not config.dns:
        return []
    if options.netns_name:
        path = resolver.configure_netns(st, options.netns_name, config.dns,
                                        options.etc_netns_dir)
        return [f"resolver: {path} (nameserver {', '.join(map(str, config.dns))})"]
    if options.write_resolv_conf:
        resolver.configure_file(st, options.resolv_conf, config.dns)
        return [f"resolver: wrote {options.resolv_conf} (previous content kept for down)"]
    st.resolver_plan = resolver.workstation_plan(config.interface, config.dns,
                                                 resolv_conf=options.resolv_conf)
    return ["resolver not changed; to use the agent's DNS configure:",
            *(f"  {line}" for line in st.resolver_plan)]


def down(path: str, netlink: NetlinkFactory = Netlink) -> list[str]:
    """Undo what the state file records; returns messages. No state file: nothing to do."""
    st = state_file.load(path)
    if st is None:
        return [f"nothing to undo (no state file {path})"]
    messages: list[str] = []
    nl = netlink()
    try:
        try:
            index: int | None = nl.index(st.interface)
        except ShimError:
            index = None  # the interface is gone, and everything on it with it
            messages.append(f"interface {st.interface} is gone")
        if index is not None:
            for item in reversed(st.items):
                if nl.delete(index, item):
                    messages.append(f"removed {item.describe()}")
            if st.mtu_set is not None and st.mtu_before is not None \
                    and nl.mtu(index) == st.mtu_set:
                nl.set_mtu(index, st.mtu_before)
                messages.append(f"MTU restored to {st.mtu_before}")
            if st.brought_up:
                nl.set_up(index, False)
    finally:
        nl.close()
    messages += resolver.undo(st)
    state_file.remove(path)
    return messages


def status(path: str, netlink: NetlinkFactory = Netlink) -> dict[str, Any]:
    """What the state file says `up` configured, each item checked against the kernel."""
    st = state_file.load(path)
    if st is None:
        return {"configured": False, "state_file": path}
    out: dict[str, Any] = {"configured": True, "state_file": path, "interface": st.interface,
                           "netns_name": st.netns_name, "config": st.config}
    nl = netlink()
    try:
        try:
            index = nl.index(st.interface)
            present = nl.present(index)
            out["interface_present"] = True
            out["mtu"] = nl.mtu(index)
        except ShimError:
            present, out["interface_present"], out["mtu"] = set(), False, None
    finally:
        nl.close()
    out["items"] = [{"item": i.describe(), "kind": i.kind, "family": i.family,
                     "destination": i.destination, "gateway": i.gateway,
                     "owned": True, "present": i in present} for i in st.items]
    out["items"] += [{"item": i.describe(), "kind": i.kind, "family": i.family,
                      "destination": i.destination, "gateway": i.gateway,
                      "owned": False, "present": i in present} for i in st.preexisting]
    out["mtu_before"] = st.mtu_before
    out["resolver"] = {"files": [f.path for f in st.files], "plan": st.resolver_plan,
                       "nameservers": st.config.get("dns", [])}
    return out
