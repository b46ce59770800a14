"""Packet captures inside a test bed namespace, decoded by tshark (an independent dissector)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from provisioning import netns


@dataclass
class Capture:
    path: str
    frames: list[dict[str, list[str]]] = field(default_factory=list)

    def decode(self, fields: list[str], display_filter: str = "") -> list[dict[str, list[str]]]:
        """One dict per frame: field -> values (outer header first, for tunnelled packets)."""
        argv = ["tshark", "-n", "-r", self.path, "-T", "fields", "-E", "separator=\t",
                "-E", "occurrence=a", "-E", "aggregator=,"]
        if display_filter:
            argv += ["-Y", display_filter]
        for name in fields:
            argv += ["-e", name]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        rows = []
        for line in out.splitlines():
            values = line.split("\t")
            rows.append({
                name: [v for v in (values[i] if i < len(values) else "").split(",") if v]
                for i, name in enumerate(fields)
            })
        return rows


@contextmanager
def capture(namespace: str, interface: str, path: str | os.PathLike[str], bpf: str = "",
            snaplen: int = 256) -> Iterator[Capture]:
    """tcpdump on `interface` in `namespace` while the block runs; yields the pcap's Capture.
    `snaplen` 0 keeps whole frames (needed to decrypt)."""
    path = str(path)
    argv = ["tcpdump", "-i", interface, "--immediate-mode", "-U", "-n", "-s", str(snaplen),
            "-w", path]
    if bpf:
        argv.append(bpf)
    proc = netns.popen(namespace, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # tcpdump says "listening on" once the socket is bound: don't miss the first packets.
    deadline = time.monotonic() + 10
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen = b""
    while b"listening on" not in seen and time.monotonic() < deadline:
        chunk = proc.stderr.read() or b""
        seen += chunk
        if proc.poll() is not None:
            raise RuntimeError(f"tcpdump failed: {seen.decode(errors='replace')}")
        time.sleep(0.05)
    result = Capture(path)
    try:
        yield result
    finally:
        time.sleep(0.3)  # let the last packets of the scenario reach the file
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

