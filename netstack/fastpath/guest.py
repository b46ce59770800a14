"""The guest's fast path (bpf/guest.bpf.c): its maps, written from the Python control plane.

`GuestFastPath` loads the object, attaches `host_ingress` to the host link and
`visited_ingress` to the visited link (optional: the differential tests only load), and offers:
  * `set_state(GuestState)`: the binding, next hops and scenario flags, one hash-map element
    replaced as a whole, so a handover swaps CoA and next hop atomically;
  * `map_added(entry)` / `map_removed(entry)`: table 230 rows (TranslationTable.on_change);
  * `read_counters(table, now)`: per-row packets/bytes the programs counted, added to the rows
    with their last use, so the idle expiry of table 230 keeps working;
  * `stats()` and `as_dict()` for `status`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netstack.fastpath.attach import attach_ingress, detach
from netstack.fastpath.build import object_path
from netstack.fastpath.libbpf import BpfObject, StateElement
from netstack.translate.table import TranslationEntry, TranslationTable

PROGRAMS = ("host_ingress", "visited_ingress")
STATS = ("out_translated", "out_passthrough", "in_translated", "in_passthrough",
         "passed_host_link", "passed_visited_link", "errors", "in_local")  # fmt: skip
SIDE_HOST_IPV6 = 1
SIDE_HOST_IPV4 = 2
SIDE_GUEST = 3  # the guest's own applications (hoa0)

_STATE = struct.Struct("<16s16s16s12s4s4s4s4s6s6s6s6s6s2xIIHHHBBBB2xI")
_V4_VALUE = struct.Struct("<16sQQ")
_V6_VALUE = struct.Struct("<4s4xQQ")
_FLOW_KEY = struct.Struct("<16s2s2sB3x")
_U32 = struct.Struct("<I")
_ZERO_MAC = b"\x00" * 6


@dataclass
class GuestState:
    """Mirror of `struct guest_state`; addresses packed, MACs 6 octets (zero: unknown)."""

    home_address: bytes = b"\x00" * 16
    home_agent: bytes = b"\x00" * 16
    care_of_address: bytes = b"\x00" * 16
    prefix64: bytes | None = None  # the 12-octet /96 RFC 6052 prefix (None: other length)
    home_ipv4: bytes = b"\x00" * 4
    gateway_ipv4: bytes = b"\x00" * 4
    pool_network: bytes = b"\x00" * 4
    pool_mask: bytes = b"\x00" * 4
    next_hop_mac: bytes = _ZERO_MAC
    visited_mac: bytes = _ZERO_MAC
    host_mac: bytes = _ZERO_MAC
    host_ipv6_mac: bytes = _ZERO_MAC
    host_link_mac: bytes = _ZERO_MAC
    visited_ifindex: int = 0
    host_ifindex: int = 0
    ipv6_mtu: int = 1460
    lowest_ipv6_mtu: int = 1280
    ipv4_mtu: int = 1440
    tunnel_up: bool = False
    translate: bool = False
    passthrough: bool = False
    local_ifindex: int = 0  # hoa0, where the guest's own super-frames go

    def pack(self) -> bytes:
        return _STATE.pack(
            self.home_address, self.home_agent, self.care_of_address,
            self.prefix64 or b"\x00" * 12, self.home_ipv4, self.gateway_ipv4,
            self.pool_network, self.pool_mask, self.next_hop_mac or _ZERO_MAC,
            self.visited_mac, self.host_mac or _ZERO_MAC, self.host_ipv6_mac or _ZERO_MAC,
            self.host_link_mac, self.visited_ifindex, self.host_ifindex, self.ipv6_mtu,
            self.lowest_ipv6_mtu, self.ipv4_mtu, self.tunnel_up, self.translate,
            self.passthrough, self.prefix64 is not None, self.local_ifindex,
        )  # fmt: skip


@dataclass
class _Seen:
    packets: int = 0
    bytes: int = 0


@dataclass
class GuestFastPath:
    """Loaded guest programs and their maps (attached when interface names are given)."""

    visited_interface: str | None = None
    host_interface: str | None = None
    object_file: Path | None = None
    obj: BpfObject = field(init=False)
    _seen: dict[tuple[int, bytes], _Seen] = field(init=False, default_factory=dict)
    _python_ports: frozenset[int] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        self.obj = BpfObject(self.object_file or object_path("guest"))
        try:
            self.state = StateElement(self.obj.map("state", 4, _STATE.size))
            self.xlat_v4 = self.obj.map("xlat_v4", 4, _V4_VALUE.size)
            self.xlat_v6 = self.obj.map("xlat_v6", 16, _V6_VALUE.size)
            self.flows = self.obj.map("flows", _FLOW_KEY.size, 4)
            self.ident = self.obj.map("ident", 4, 8)
            self.stats_map = self.obj.map("stats", 4, 8, per_cpu=True)
            self.ports_map = self.obj.map("python_ports", 2, 1)
            self.program_fds = {name: self.obj.program_fd(name) for name in PROGRAMS}
            if self.host_interface:
                attach_ingress(self.host_interface, self.program_fds["host_ingress"], "mip6term_host")
            if self.visited_interface:
                attach_ingress(self.visited_interface, self.program_fds["visited_ingress"],
                               "mip6term_visited")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ state

    def set_state(self, state: GuestState) -> bool:
        """Write the state element if it changed (True when written)."""
        return self.state.write(state.pack())

    def set_python_ports(self, ports: frozenset[int]) -> bool:
        """Ports (either end, TCP and UDP) whose packets the programs leave to Python."""
        if ports == self._python_ports:
            return False
        for port in self._python_ports - ports:
            self.ports_map.delete(port.to_bytes(2, "big"))
        for port in ports - self._python_ports:
            self.ports_map.update(port.to_bytes(2, "big"), b"\x01")
        self._python_ports = ports
        return True

    # ------------------------------------------------------------------ table 230

    def map_added(self, entry: TranslationEntry) -> None:
        self.xlat_v4.update(entry.ipv4, _V4_VALUE.pack(entry.ipv6, 0, 0))
        self.xlat_v6.update(entry.ipv6, _V6_VALUE.pack(entry.ipv4, 0, 0))
        self._seen[(4, entry.ipv4)] = _Seen()
        self._seen[(6, entry.ipv6)] = _Seen()

    def map_removed(self, entry: TranslationEntry) -> None:
        self.xlat_v4.delete(entry.ipv4)
        self.xlat_v6.delete(entry.ipv6)
        self._seen.pop((4, entry.ipv4), None)
        self._seen.pop((6, entry.ipv6), None)

    def push_table(self, table: TranslationTable) -> int:
        """Rebuild both maps from the table (start, restart: the table was loaded from disk)."""
        self.xlat_v4.clear()
        self.xlat_v6.clear()
        self._seen.clear()
        count = 0
        for entry in table:
            self.map_added(entry)
            count += 1
        return count

    def read_counters(self, table: TranslationTable, now: float) -> int:
        """Add what the programs counted since the last read to table 230's rows."""
        used = 0
        for version, bpf_map, unpack, find in (
            (4, self.xlat_v4, _V4_VALUE.unpack, table.get_by_v4),
            (6, self.xlat_v6, _V6_VALUE.unpack, table.get),
        ):
            for key, value in bpf_map.items():
                _addr, packets, size = unpack(value)
                seen = self._seen.setdefault((version, key), _Seen())
                delta, delta_bytes = packets - seen.packets, size - seen.bytes
                if delta <= 0:
                    continue
                seen.packets, seen.bytes = packets, size
                entry = find(key)
                if entry is not None:
                    table.touch(entry, now, delta, delta_bytes)
                    used += delta
        return used

    # ------------------------------------------------------------------ flows, status

    def note_flow(self, remote: bytes, local_port: int, remote_port: int, proto: int, side: int) -> None:
        key = _FLOW_KEY.pack(remote, local_port.to_bytes(2, "big"), remote_port.to_bytes(2, "big"), proto)
        self.flows.update(key, _U32.pack(side))

    def set_ident(self, next_ident: int) -> None:
        """Align the Identification generator (the differential tests use Python's next ID)."""
        self.ident.update(_U32.pack(0), (next_ident - 1).to_bytes(8, "little"))

    def stats(self) -> dict[str, int]:
        return {name: self.stats_map.per_cpu_u64_sum(_U32.pack(i)) for i, name in enumerate(STATS)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "programs": {"host_ingress": self.host_interface, "visited_ingress": self.visited_interface},
            "maps": {"xlat_v4": len(self.xlat_v4), "xlat_v6": len(self.xlat_v6),
                     "flows": self.flows.count(limit=10000)},
            "packets": self.stats(),
        }

    def close(self) -> None:
        for ifname in (self.host_interface, self.visited_interface):
            if ifname:
                detach(ifname)
        self.obj.close()
