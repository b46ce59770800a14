"""libbpf (Debian `libbpf1`) through ctypes: open/load an object, find programs and maps, map
element access, BPF_PROG_TEST_RUN and run-time statistics (BPF_ENABLE_STATS).

Only what the fast path needs. Every failure raises `BpfError` with one line that says what
failed and why (errno), so the caller can fall back to the Python path with that line.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

BPF_ANY = 0
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
BPF_STATS_RUN_TIME = 0

# struct bpf_prog_info (linux/bpf.h): offsets of the fields read here
_PROG_INFO_SIZE = 232
_PROG_INFO_RUN_TIME = 192
_PROG_INFO_RUN_CNT = 200


class BpfError(OSError):
    """A libbpf call failed (no root, no BPF, verifier refusal, missing object...)."""


class _TestRunOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The loaded libbpf (BpfError when it is not installed)."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise BpfError(f"libbpf is not installed ({exc}); apt-get install libbpf1") from exc
    vp, cp, i, u32, u64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64
    signatures = {
        "bpf_object__open_file": (vp, [cp, vp]),
        "bpf_object__load": (i, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_program_by_name": (vp, [vp, cp]),
        "bpf_object__find_map_by_name": (vp, [vp, cp]),
        "bpf_object__find_map_fd_by_name": (i, [vp, cp]),
        "bpf_map__set_max_entries": (i, [vp, u32]),
        "bpf_program__fd": (i, [vp]),
        "bpf_map_update_elem": (i, [i, vp, vp, u64]),
        "bpf_map_lookup_elem": (i, [i, vp, vp]),
        "bpf_map_delete_elem": (i, [i, vp]),
        "bpf_map_get_next_key": (i, [i, vp, vp]),
        "bpf_prog_test_run_opts": (i, [i, vp]),
        "bpf_enable_stats": (i, [i]),
        "bpf_obj_get_info_by_fd": (i, [i, vp, ctypes.POINTER(u32)]),
        "libbpf_num_possible_cpus": (i, []),
        "bpf_prog_get_fd_by_id": (i, [u32]),
        "libbpf_set_print": (vp, [vp]),
    }
    for fn, (restype, argtypes) in signatures.items():
        func = getattr(lib, fn)
        func.restype = restype
        func.argtypes = argtypes
    if not os.environ.get("MIP6TERM_BPF_DEBUG"):
        lib.libbpf_set_print(None)  # verifier logs only on request; we report one line
    _lib = lib
    return lib


def _check(result: int, what: str) -> int:
    if result < 0:
        # libbpf 1.x returns -errno; -1 may also mean "see errno" (older conventions)
        err = -result if result < -1 else (ctypes.get_errno() or 1)
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return result


class BpfMap:
    """One map of a loaded object, keys and values as bytes of the C struct's size."""

    def __init__(self, fd: int, name: str, key_size: int, value_size: int, *, per_cpu: bool = False) -> None:
        self.fd = fd
        self.name = name
        self.key_size = key_size
        self.value_size = value_size
        self.per_cpu = per_cpu
        self._cpus = library().libbpf_num_possible_cpus() if per_cpu else 1
        self._stride = (value_size + 7) & ~7 if per_cpu else value_size

    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name}: key of {len(key)} octets, want {self.key_size}")
        return ctypes.create_string_buffer(key, self.key_size)

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        if len(value) != self.value_size or self.per_cpu:
            raise ValueError(f"{self.name}: value of {len(value)} octets, want {self.value_size}")
        v = ctypes.create_string_buffer(value, self.value_size)
        _check(library().bpf_map_update_elem(self.fd, self._key(key), v, flags), f"update {self.name}")

    def lookup(self, key: bytes) -> bytes | None:
        """The value (per-CPU maps: the CPUs' values concatenated), None when absent."""
        size = self._stride * self._cpus
        out = ctypes.create_string_buffer(size)
        if library().bpf_map_lookup_elem(self.fd, self._key(key), out) < 0:
            return None
        return out.raw

    def per_cpu_u64_sum(self, key: bytes) -> int:
        raw = self.lookup(key)
        if raw is None:
            return 0
        return sum(int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), self._stride))

    def delete(self, key: bytes) -> bool:
        return library().bpf_map_delete_elem(self.fd, self._key(key)) == 0

    def keys(self) -> Iterator[bytes]:
        lib = library()
        current = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while lib.bpf_map_get_next_key(self.fd, current, nxt) == 0:
            key = nxt.raw
            yield key
            current = ctypes.create_string_buffer(key, self.key_size)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in list(self.keys()):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def count(self, limit: int) -> int:
        """Entries, counted up to `limit` (one system call each)."""
        n = 0
        for _ in self.keys():
            n += 1
            if n >= limit:
                break
        return n

    def clear(self) -> None:
        for key in list(self.keys()):
            self.delete(key)


class StateElement:
    """The one element (key 0) of a programs' state map, written only when its bytes change:
    the binding, next hops and flags change together in one update, so a program never sees
    half of a handover."""

    _KEY = (0).to_bytes(4, "little")

    def __init__(self, bpf_map: BpfMap) -> None:
        self.map = bpf_map
        self.value = b""

    def write(self, packed: bytes) -> bool:
        """True when the element was written (False: unchanged)."""
        if packed == self.value:
            return False
        self.map.update(self._KEY, packed)
        self.value = packed
        return True


class BpfObject:
    """An ELF object opened and loaded by libbpf; closed (programs unloaded unless attached
    elsewhere, e.g. by a tc filter) by `close()`."""

    def __init__(self, path: str | Path, *, max_entries: dict[str, int] | None = None) -> None:
        lib = library()
        self.path = Path(path)
        if not self.path.exists():
            raise BpfError(2, f"BPF object {self.path} is missing")
        ctypes.set_errno(0)
        handle = lib.bpf_object__open_file(str(self.path).encode(), None)
        if not handle:
            err = ctypes.get_errno() or 22
            raise BpfError(err, f"open {self.path.name}: {os.strerror(err)}")
        self._obj: int | None = handle
        try:
            for name, entries in (max_entries or {}).items():
                m = lib.bpf_object__find_map_by_name(handle, name.encode())
                if not m:
                    raise BpfError(2, f"{self.path.name} has no map {name}")
                _check(lib.bpf_map__set_max_entries(m, entries), f"size map {name}")
            _check(lib.bpf_object__load(handle), f"load {self.path.name} (BPF verifier or permissions)")
        except BaseException:
            self.close()
            raise

    def program_fd(self, name: str) -> int:
        prog = library().bpf_object__find_program_by_name(self._handle(), name.encode())
        if not prog:
            raise BpfError(2, f"{self.path.name} has no program {name}")
        return _check(library().bpf_program__fd(prog), f"program {name}")

    def map(self, name: str, key_size: int, value_size: int, *, per_cpu: bool = False) -> BpfMap:
        fd = _check(library().bpf_object__find_map_fd_by_name(self._handle(), name.encode()), f"map {name}")
        return BpfMap(fd, name, key_size, value_size, per_cpu=per_cpu)

    def _handle(self) -> int:
        if self._obj is None:
            raise BpfError(9, "BPF object already closed")
        return self._obj

    def close(self) -> None:
        if self._obj is not None:
            library().bpf_object__close(self._obj)
            self._obj = None


def prog_test_run(prog_fd: int, packet: bytes, *, repeat: int = 1, out_size: int = 65536) -> tuple[int, bytes, int]:
    """BPF_PROG_TEST_RUN: (program return value, packet out, average ns per run)."""
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(out_size)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts))
    opts.data_in = ctypes.addressof(data_in)
    opts.data_size_in = len(packet)
    opts.data_out = ctypes.addressof(data_out)
    opts.data_size_out = out_size
    opts.repeat = repeat
    _check(library().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "BPF_PROG_TEST_RUN")
    return opts.retval, data_out.raw[: opts.data_size_out], opts.duration


def enable_run_time_stats() -> int:
    """BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): counting lasts while the returned fd is open."""
    return _check(library().bpf_enable_stats(BPF_STATS_RUN_TIME), "BPF_ENABLE_STATS")


def program_fd_by_id(prog_id: int) -> int:
    """A new fd for a loaded program (e.g. one a tc filter holds); the caller closes it."""
    return _check(library().bpf_prog_get_fd_by_id(prog_id), f"program id {prog_id}")


def program_run_stats(prog_fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a program (non-zero only while stats are enabled)."""
    info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    size = ctypes.c_uint32(_PROG_INFO_SIZE)
    _check(library().bpf_obj_get_info_by_fd(prog_fd, info, ctypes.byref(size)), "prog info")
    raw = info.raw
    return (
        int.from_bytes(raw[_PROG_INFO_RUN_TIME : _PROG_INFO_RUN_TIME + 8], "little"),
        int.from_bytes(raw[_PROG_INFO_RUN_CNT : _PROG_INFO_RUN_CNT + 8], "little"),
    )
