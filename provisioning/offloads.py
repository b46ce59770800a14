"""Offload settings of a veth end inside a namespace.

A plain AF_PACKET reader must see MTU-sized frames with finished checksums, so by default
the test bed turns checksum offload, TSO, GSO and GRO off (DESIGN.md, "Facts for runtime/").
Agents that read with PACKET_VNET_HDR (``offloads = true``) let the kernel keep them, and a
switch port can coalesce what an agent sends (GRO) so the emulated network forwards
super-frames instead of every segment. The feature list lives in
netstack.runtime.linkconfig; here we only run it inside the right namespace.
"""

from __future__ import annotations

from netstack.runtime import linkconfig
from provisioning import netns


def set_offloads_off(namespace: str, ifname: str) -> list[str]:
    """Disable offloads on `ifname` in `namespace`; returns the features still on (fixed ones)."""
    # Ethtool's sockets belong to the namespace of the thread that opens them
    with netns.inside(namespace):
        state = linkconfig.set_offloads_off(ifname)
    return sorted(name for name, enabled in state.items() if enabled)


def link_features(namespace: str, ifname: str, wanted: dict[str, bool] | None = None,
                  names: tuple[str, ...] = ()) -> dict[str, bool]:
    """Set the ethtool features `wanted` on `ifname` in `namespace` (if given); returns the
    state read back of `names`, or of the features set."""
    with netns.inside(namespace):
        if wanted is not None:
            linkconfig.set_features(ifname, wanted)
        return linkconfig.offload_state(ifname, names or tuple(wanted or ()))


# Hold GRO aggregates this long (ns) across NAPI polls: an AF_PACKET sender hands the veth
# one frame per softirq, so without it nothing would ever be coalesced. Measured here: 5 us
# coalesces almost nothing (TCP 280 Mbit/s), 20-200 us are within 5% of each other; 100 us
# adds at most 0.1 ms to a lone packet.
GRO_FLUSH_TIMEOUT_NS = 100_000


def enable_gro(namespace: str, ifname: str) -> None:
    """GRO on the receiving side of `ifname` (a veth end) with a short flush timeout.

    UDP is coalesced too (rx-udp-gro-forwarding): datagrams of one flow and size that are
    not for a local socket become one UDP GSO frame.
    """
    link_features(namespace, ifname, {"rx-gro": True, "rx-udp-gro-forwarding": True})
    netns.write_sysfs(namespace, f"class/net/{ifname}/gro_flush_timeout", GRO_FLUSH_TIMEOUT_NS)


def enable_threaded_napi(namespace: str, ifname: str) -> None:
    """Run the NAPI of `ifname` in a kernel thread (napi/<ifname>-N), off the sender's CPU.

    A veth has NAPI only while it is up with GRO on: call after enable_gro and link up.
    """
    netns.write_sysfs(namespace, f"class/net/{ifname}/threaded", 1)


def enable_tx_offloads(namespace: str, ifname: str) -> None:
    """Transmit offloads on `ifname` (checksum, SG, fraglist, TSO, UDP and tunnel GSO)."""
    from netstack.fastpath.attach import enable_tx_offloads as enable

    with netns.inside(namespace):
        enable(ifname)
