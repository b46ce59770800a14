"""Turn checksum offload, TSO, GSO and GRO off on a veth end inside a namespace.

AF_PACKET readers (our userspace stack) otherwise see 64 KB GRO/TSO super-frames and
packets with unfinished checksums (DESIGN.md, "Facts for runtime/"). The feature list lives
in netstack.runtime.linkconfig; here we only run it inside the right namespace.
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
