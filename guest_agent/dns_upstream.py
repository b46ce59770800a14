"""DNS over UDP to the resolver at home, from the home address, with retries.

The DNS proxy (`guest_agent.dns_proxy`) resolves names for IPv4 applications by asking a
resolver in the home network. Binding the query socket to the home address makes the kernel
route it through `hoa0` and hence through the tunnel to the home agent, wherever the terminal
currently is. `IP_FREEBIND` lets the bind succeed while the home address is still tentative
or briefly absent (after a move); the query then simply times out and is retried.

Server strings: `2001:db8::53`, `[2001:db8::53]:5353`, `192.0.2.53`, `192.0.2.53:5353`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from ipaddress import ip_address

DNS_PORT = 53
# <linux/in.h>; Python's socket module does not export it. Also honoured on IPv6 sockets.
IP_FREEBIND = 15
MAX_UDP_RESPONSE = 65535


def parse_server(server: str) -> tuple[str, int]:
    """`(address, port)` from a server string; ValueError when it is not one."""
    text = server.strip()
    port = DNS_PORT
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not a DNS server address: {server!r}")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has at least two colons
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host = text
    ip_address(host)  # raises ValueError for names: the resolver must be an address
    if not 0 < port < 65536:
        raise ValueError(f"DNS server port out of range: {server!r}")
    return host, port


class _ReplyCollector(asyncio.DatagramProtocol):
    """Resolves `reply` with the first datagram whose DNS id matches, or with the error."""

    def __init__(self, query_id: bytes) -> None:
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        # A connected socket only hears from the server; the id check drops stale answers
        # to an earlier attempt and anything too short to be DNS.
        if len(data) >= 12 and data[:2] == self.query_id and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port/host unreachable arrives here on a connected UDP socket.
        if not self.reply.done():
            self.reply.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc or ConnectionError("DNS socket closed"))


def _open_socket(host: str, port: int, source: str | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if source is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            sock.bind((source, 0))
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _ask_once(
    host: str, port: int, query: bytes, source: str | None, timeout: float
) -> bytes:
    loop = asyncio.get_running_loop()
    sock = _open_socket(host, port, source)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _ReplyCollector(query[:2]), sock=sock
    )
    try:
        transport.sendto(query)
        return await asyncio.wait_for(protocol.reply, timeout)
    finally:
        transport.close()


async def upstream_udp(
    server: str | Sequence[str],
    query: bytes,
    *,
    source: str | None = None,
    timeout: float = 2.0,
    retries: int = 2,
) -> bytes:
    """Send `query` (DNS wire format) and return the first response with the same id.

    `server` is one server string or a list tried in order; the whole list is walked
    `retries + 1` times, each try waiting at most `timeout` seconds (a fresh socket and
    source port per try). An unreachable server (ICMP error, bind failure) moves on to the
    next one at once. Raises TimeoutError when no server answered, carrying the last error.
    """
    if len(query) < 12:
        raise ValueError("a DNS query has a 12-octet header")
    servers = [server] if isinstance(server, str) else list(server)
    if not servers:
        raise ValueError("no DNS server configured")
    targets = [parse_server(s) for s in servers]
    last_error: BaseException | None = None
    for _attempt in range(retries + 1):
        for host, port in targets:
            try:
                return await _ask_once(host, port, query, source, timeout)
            except (TimeoutError, OSError) as exc:
                last_error = exc
    raise TimeoutError(f"no answer from DNS servers {servers} ({last_error!r})") from last_error
