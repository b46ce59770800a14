"""Many concurrent RTP-like streams (symmetric, like RTP with `rtcp-mux`-free phones).

`python -m benchmarks.rtp_load call  --local ADDR --remote ADDR --ports 50000 --streams 50`
opens one UDP socket per stream, sends one 172-octet packet (12-octet RTP header + 160 octets
of PCMU) every 20 ms on each (50 pps), and counts what comes back.
`python -m benchmarks.rtp_load answer --local ADDR --ports 50000 --streams 50` does the same
towards whoever spoke first on each port (symmetric RTP). Both print one JSON line:
sent, received, out-of-order/duplicates, for `--seconds` seconds.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

PTIME = 0.020
PAYLOAD = 160
_RTP = struct.Struct("!BBHII")


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def run(mode: str, local: str, remote: str | None, first_port: int, streams: int,
        seconds: float) -> dict[str, int]:
    family = _family(local)
    socks = []
    for i in range(streams):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((local, first_port + i))
        s.setblocking(False)
        socks.append(s)
    peers: list[tuple[str, int] | None] = (
        [(remote, first_port + i) for i in range(streams)] if remote else [None] * streams)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    seq = [0] * streams
    last_seen = [-1] * streams
    counts = {"sent": 0, "received": 0, "reordered": 0}
    body = bytes(PAYLOAD)
    start = time.monotonic()
    next_tick = start
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    last_rx = [0.0] * streams
    # The caller sends for `seconds`, then listens 1 s more for what is in flight; the
    # answerer sends while its caller speaks (200 ms of silence = caller gone) and ends
    # 1 s after every stream fell silent.
    limit = seconds + 1.0 if mode == "call" else seconds + 5.0
    while True:
        now = time.monotonic()
        if now - start >= limit:
            break
        if mode == "answer" and all(p is not None for p in peers) and \
                all(now - t > 1.0 for t in last_rx):
            break
        if now >= next_tick:
            for i, s in enumerate(socks):
                peer = peers[i]
                if peer is None:
                    continue
                if mode == "call" and now - start >= seconds:
                    continue
                if mode == "answer" and now - last_rx[i] > 0.2:
                    continue
                packet = _RTP.pack(0x80, 0, seq[i] & 0xFFFF, seq[i] * 160, 0x1000 + i) + body
                try:
                    s.sendto(packet, peer)
                    counts["sent"] += 1
                    seq[i] += 1
                except OSError:
                    pass
            next_tick += PTIME
        for fd, _ in poller.poll(max(0.0, min(next_tick - time.monotonic(), 0.02))):
            i = by_fd[fd]
            while True:
                try:
                    data, address = socks[i].recvfrom(2048)
                except BlockingIOError:
                    break
                if len(data) < 12:
                    continue
                counts["received"] += 1
                last_rx[i] = time.monotonic()
                number = struct.unpack_from("!H", data, 2)[0]
                if number <= last_seen[i]:
                    counts["reordered"] += 1
                last_seen[i] = max(last_seen[i], number)
                if peers[i] is None and mode == "answer":
                    peers[i] = address[:2]
    for s in socks:
        s.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rtp_load")
    parser.add_argument("mode", choices=("call", "answer"))
    parser.add_argument("--local", required=True)
    parser.add_argument("--remote")
    parser.add_argument("--ports", type=int, default=50000)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.mode == "call" and not args.remote:
        parser.error("call needs --remote")
    counts = run(args.mode, args.local, args.remote, args.ports, args.streams, args.seconds)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
