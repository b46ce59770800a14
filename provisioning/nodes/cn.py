"""Correspondent node services: a real HTTP server with a large file, and iperf3."""

from __future__ import annotations

import os
import sys
from ipaddress import IPv6Address

from provisioning import processes
from provisioning.topology import CN_ADDRESS

BIG_FILE_SIZE = 21 * 1024 * 1024  # 20 MiB+ so a download spans a handover
_LINE = 16  # each line holds its own byte offset: a reordered or lost chunk is visible


def big_content_line(offset: int) -> bytes:
    return b"%015d\n" % offset


def write_web_root(directory: str, size: int = BIG_FILE_SIZE) -> None:
    """index.html and `big`: deterministic content, line i = the offset of line i."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "index.html"), "w") as f:
        f.write("<!doctype html><title>mip6term CN</title><p>mip6term correspondent node</p>\n")
    path = os.path.join(directory, "big")
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    lines = size // _LINE
    with open(path, "wb") as f:
        chunk = 65536
        for start in range(0, lines, chunk):
            f.write(b"".join(big_content_line(i * _LINE)
                             for i in range(start, min(start + chunk, lines))))
        f.write(b"x" * (size - lines * _LINE))


def start_http_server(state_dir: str, namespace: str, name: str, address: IPv6Address) -> None:
    """The bed's web root (index.html, `big`) served on `address` port 80 as process `name`."""
    web_root = os.path.join(state_dir, "www")
    write_web_root(web_root)
    processes.start(state_dir, processes.ProcessSpec(
        name=name, namespace=namespace,
        argv=[sys.executable, "-m", "http.server", "--bind", str(address),
              "--directory", web_root, "80"],
        log=os.path.join(state_dir, f"{name}.log"), cwd=web_root,
    ))


def start_services(state_dir: str, namespace: str) -> None:
    start_http_server(state_dir, namespace, "cn-http", CN_ADDRESS)
    # iperf3 -D would fork away from the pid we record; run it in the foreground instead
    processes.start(state_dir, processes.ProcessSpec(
        name="cn-iperf3", namespace=namespace, argv=["iperf3", "-s"],
        log=os.path.join(state_dir, "cn-iperf3.log"),
    ))
    processes.ensure_running(state_dir, "cn-http")
    processes.ensure_running(state_dir, "cn-iperf3")
