"""The guest's TLS relay (patent E8, Fig. 38-39; claims 6-8): the first of two TLS layers.

For every host connection that tls_divert hands it, the relay opens the outer TLS session
from the home address to the gateway (so it rides the MN-HA tunnel and survives handovers),
verifies the gateway's certificate against the configured CA and name (SNI = that name),
asks for the original destination with one HTTP/1.1 CONNECT (h11), and then copies bytes
both ways untouched: the host application runs its own TLS with the correspondent inside,
and verifies the correspondent's certificate itself (the second TLS termination).

One outer session per connection, not HTTP/2 CONNECT streams over one session: Squid (the
gateway the field runs, and ours) speaks HTTP/1.1 only, so a CONNECT tunnel is a connection.
Each outer session lives exactly as long as its host connection, and its identity (id, local
port, TLS session, start time) is shown in `status`, so a handover that did not restart it
is visible.

Failure is fast and explicit: a refused, unreachable (`connect_timeout`) or refusing
(non-2xx CONNECT) gateway resets the host's connection (SO_LINGER 0) at once; counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import socket
import ssl
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any

import h11

from guest_agent.config import TlsGatewaySection

log = logging.getLogger("guest_agent.tls")

_CHUNK = 256 * 1024
_HALF_CLOSE_GRACE = 30.0  # the host said EOF: how long the answer may still flow
_HISTORY = 20


class GatewayError(Exception):
    """The gateway could not be reached or refused the CONNECT (`reason` names which)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def connect_request(conn: h11.Connection, target: str) -> bytes:
    """The CONNECT request for `target` ("[v6]:port") on client connection `conn` (h11)."""
    return conn.send(h11.Request(method="CONNECT", target=target,
                                 headers=[("Host", target), ("User-Agent", "mip6term-guest")]))


def authority(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def connect_target(address: str, port: int, nat64: IPv6Network | None = None) -> str:
    """What to CONNECT to: the original destination, except that an IPv4 application's
    IPv4 literal (mapped into the RFC 6052 prefix by table 230) is asked for as IPv4: the
    gateway reaches IPv4 itself, no NAT64 needed."""
    if nat64 is not None and nat64.prefixlen == 96:
        ip = IPv6Address(address)
        if ip in nat64:
            return authority(str(IPv4Address(ip.packed[12:])), port)
    return authority(address, port)


async def read_connect_response(conn: h11.Connection, reader: asyncio.StreamReader) -> bytes:
    """Wait for the gateway's answer to CONNECT; returns bytes already past it (the inner
    stream's first bytes). Raises GatewayError on a non-2xx answer or an early close."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(_CHUNK)
            if not data:
                raise GatewayError("closed", "the gateway closed before answering CONNECT")
            conn.receive_data(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            if not 200 <= event.status_code < 300:
                raise GatewayError("refused", f"CONNECT answered {event.status_code} "
                                   f"{event.reason.decode(errors='replace')}")
            data, _closed = conn.trailing_data
            return bytes(data)
        raise GatewayError("protocol", f"unexpected answer to CONNECT: {event!r}")


@dataclass
class RelayedFlow:
    """One host connection and its outer session to the gateway."""

    id: int
    client: str
    destination: str
    started: float
    host_view: str = ""  # the connection as the host application sees it
    outer_local: str = ""
    tls_version: str = ""
    cipher: str = ""
    session_id: str = ""
    outer_started: float | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    state: str = "connecting"
    error: str = ""
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    ssl_object: Any = None

    def as_dict(self, now: float) -> dict[str, Any]:
        if not self.session_id and self.ssl_object is not None:
            # TLS 1.3: the session (ticket) arrives after the handshake
            session = self.ssl_object.session
            self.session_id = session.id.hex() if session is not None and session.id else ""
        return {
            "id": self.id, "client": self.client, "destination": self.destination,
            "host_view": self.host_view,
            "state": self.state, "outer_local": self.outer_local,
            "tls_version": self.tls_version, "cipher": self.cipher,
            "outer_session": self.session_id,
            "outer_uptime": round(now - self.outer_started, 3) if self.outer_started else None,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "error": self.error,
        }


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: the host application learns at once that the flow failed."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TlsRelay:
    """The transparent listener and every relayed flow, on the agent's asyncio loop."""

    def __init__(self, config: TlsGatewaySection, home_address: IPv6Address,
                 counters: Counter[str]) -> None:
        self.config = config
        self.home_address = home_address
        self.counters = counters
        self.context = self._tls_context(config)
        self.listeners: list[socket.socket] = []
        try:
            for port in sorted(set(config.ports)):
                self.listeners.append(self._listen(config, port))
        except BaseException:
            for sock in self.listeners:
                sock.close()
            raise
        self.flows: dict[int, RelayedFlow] = {}
        self.finished: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._servers: list[asyncio.AbstractServer] = []
        self.started_at = time.monotonic()
        self.last_error = ""
        # (client address, port, destination address, port) -> how the host sees the flow
        self.describe: Callable[[str, int, str, int], str] | None = None
        self.nat64: IPv6Network | None = None  # table 230's RFC 6052 prefix (IPv4 literals)

    @staticmethod
    def _tls_context(config: TlsGatewaySection) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if config.client_cert:
            context.load_cert_chain(str(config.client_cert),
                                    str(config.client_key) if config.client_key else None)
        if config.keylog_file:
            context.keylog_filename = str(config.keylog_file)
        return context

    @staticmethod
    def _listen(config: TlsGatewaySection, port: int) -> socket.socket:
        """A listener on [::]:port; tls_divert's AnyIP route brings it every destination."""
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # accepted sockets (and their SYN-ACKs) inherit the mark that routes to tls0
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, config.reply_mark)
            sock.bind(("::", port))
            sock.listen(256)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def start(self) -> None:
        for sock in self.listeners:
            self._servers.append(await asyncio.start_server(self._on_client, sock=sock,
                                                            limit=_CHUNK))

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for flow in list(self.flows.values()):
            for task in flow.tasks:
                task.cancel()
        for sock in self.listeners:
            with contextlib.suppress(OSError):
                sock.close()

    # ------------------------------------------------------------------ one flow

    async def _on_client(self, host_reader: asyncio.StreamReader,
                         host_writer: asyncio.StreamWriter) -> None:
        peer = host_writer.get_extra_info("peername")
        original = host_writer.get_extra_info("sockname")  # AnyIP: the real destination
        now = time.monotonic()
        flow = RelayedFlow(next(self._ids), authority(peer[0], peer[1]),
                           connect_target(original[0], original[1], self.nat64), now)
        if self.describe is not None:
            flow.host_view = self.describe(peer[0], peer[1], original[0], original[1])
        self.flows[flow.id] = flow
        self.counters["tls_relay_flows"] += 1
        current = asyncio.current_task()
        if current is not None:
            flow.tasks.append(current)
        outer_writer: asyncio.StreamWriter | None = None
        try:
            outer_reader, outer_writer, first = await self._open_outer(flow)
            flow.state = "relaying"
            if first:
                host_writer.write(first)
                flow.bytes_down += len(first)
            await self._pump_both(flow, host_reader, host_writer, outer_reader, outer_writer)
            flow.state = "closed"
        except GatewayError as exc:
            self.counters[f"tls_gateway_{exc.reason}"] += 1
            self.counters["tls_gateway_failures"] += 1
            flow.state, flow.error = "reset", f"{exc.reason}: {exc}"
            self.last_error = flow.error
            log.warning("flow %s -> %s: gateway %s, resetting the host connection",
                        flow.client, flow.destination, flow.error)
            _reset(host_writer)
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            self.counters["tls_relay_aborted"] += 1
            flow.state, flow.error = "aborted", str(exc) or type(exc).__name__
            _reset(host_writer)
        except asyncio.CancelledError:
            host_writer.transport.abort()
            raise
        except Exception as exc:  # the agent keeps serving whatever one flow does
            log.exception("flow %s -> %s: relay error", flow.client, flow.destination)
            self.counters["tls_relay_internal_error"] += 1
            flow.state, flow.error = "aborted", f"internal: {type(exc).__name__}"
            _reset(host_writer)
        finally:
            if outer_writer is not None:
                outer_writer.transport.abort()
            self.flows.pop(flow.id, None)
            self.finished.append(flow.as_dict(time.monotonic()))
            flow.ssl_object = None
            del self.finished[:-_HISTORY]

    async def _open_outer(self, flow: RelayedFlow
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        cfg = self.config
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                str(cfg.address), cfg.port, ssl=self.context, server_hostname=cfg.name,
                local_addr=(str(self.home_address), 0), limit=_CHUNK,
                ssl_handshake_timeout=cfg.connect_timeout), cfg.connect_timeout)
        except TimeoutError:
            raise GatewayError("unreachable", f"no answer from {cfg.name} within "
                               f"{cfg.connect_timeout}s") from None
        except ssl.SSLCertVerificationError as exc:
            raise GatewayError("untrusted", exc.verify_message or str(exc)) from None
        except (ssl.SSLError, OSError) as exc:
            reason = "refused" if getattr(exc, "errno", None) == errno.ECONNREFUSED else "down"
            raise GatewayError(reason, str(exc)) from None
        ssl_object = writer.get_extra_info("ssl_object")
        local = writer.get_extra_info("sockname")
        flow.outer_local = authority(local[0], local[1])
        flow.tls_version = ssl_object.version() or ""
        flow.cipher = (ssl_object.cipher() or ("",))[0]
        flow.ssl_object = ssl_object
        flow.outer_started = time.monotonic()
        self.counters["tls_outer_sessions"] += 1
        conn = h11.Connection(h11.CLIENT)
        writer.write(connect_request(conn, flow.destination))
        try:
            first = await asyncio.wait_for(read_connect_response(conn, reader),
                                           max(cfg.connect_timeout, 5.0))
        except TimeoutError:
            writer.transport.abort()
            raise GatewayError("unreachable", "no answer to CONNECT") from None
        except (GatewayError, h11.RemoteProtocolError, OSError, ssl.SSLError) as exc:
            writer.transport.abort()
            if isinstance(exc, GatewayError):
                raise
            raise GatewayError("protocol", str(exc)) from None
        return reader, writer, first

    async def _pump_both(self, flow: RelayedFlow, host_reader: asyncio.StreamReader,
                         host_writer: asyncio.StreamWriter, outer_reader: asyncio.StreamReader,
                         outer_writer: asyncio.StreamWriter) -> None:
        up = asyncio.ensure_future(self._pump(host_reader, outer_writer, flow, "bytes_up"))
        down = asyncio.ensure_future(self._pump(outer_reader, host_writer, flow, "bytes_down"))
        flow.tasks += [up, down]
        try:
            done, _pending = await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
            if up in done and not down.done() and up.exception() is None:
                # the host half-closed (TLS cannot): let the answer finish, within reason
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(down), _HALF_CLOSE_GRACE)
            for task in (up, down):
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if down.done() and host_writer.can_write_eof():
                with contextlib.suppress(OSError):
                    host_writer.write_eof()
                    await host_writer.drain()
        finally:
            for task in (up, down):
                task.cancel()
            host_writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    flow: RelayedFlow, counter: str) -> None:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            setattr(flow, counter, getattr(flow, counter) + len(data))
            await writer.drain()

    # ------------------------------------------------------------------ status

    def status(self, now: float) -> dict[str, Any]:
        cfg = self.config
        return {
            "gateway": {"name": cfg.name, "address": str(cfg.address), "port": cfg.port,
                        "ca_file": str(cfg.ca_file) if cfg.ca_file else None},
            "policy": {"ports": sorted(cfg.ports),
                       "destinations": [str(n) for n in cfg.destinations] or ["any"]},
            "outer_sessions": [f.as_dict(now) for f in self.flows.values()],
            "recent": self.finished[-5:],
            "last_error": self.last_error,
            "keylog_file": str(cfg.keylog_file) if cfg.keylog_file else None,
        }
