"""Control socket: one JSON request and one JSON response per unix-socket connection.

Wire format: the client sends one JSON object followed by a newline (or closes its write
side), the server answers with one JSON object and a newline and closes. The daemon side is
an asyncio server; the client side is synchronous because its user is the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import errno
import inspect
import ipaddress
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 20  # a status dump is a few KB; anything near 1 MiB is a mistake
SOCKET_MODE = 0o600  # the control socket reconfigures the node: owner only
READ_TIMEOUT = 5.0  # a client that connects and says nothing must not pin a connection

Handler = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


class ControlError(Exception):
    """The control request could not be completed (daemon not running, timeout, bad reply)."""


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` default: addresses/networks as text, bytes as hex, enums by value."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address
                  | ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode_message(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=to_jsonable, separators=(",", ":")).encode() + b"\n"


def _decode_request(data: bytes) -> dict[str, Any]:
    request = json.loads(data)
    if not isinstance(request, dict):
        raise ValueError("request must be a JSON object")
    return request


def _remove_stale_socket(path: str) -> None:
    """Delete a socket file left by a dead daemon; refuse to steal a live daemon's socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise ControlError(f"another daemon is already serving {path}")


class ControlServer:
    """asyncio unix-socket server calling ``handler(request) -> response`` per connection.

    ``handler`` may be a plain function or a coroutine function. Any exception it raises
    becomes ``{"error": "<Type>: <message>"}``; the server never dies of a bad request.
    Use ``await server.start()`` / ``await server.close()`` or ``async with server:``.
    """

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0
        self.errors = 0

    async def start(self) -> None:
        _remove_stale_socket(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            # chmod before listen(): no client can connect while the mode is still the umask's.
            os.chmod(self.path, SOCKET_MODE)
            sock.listen(16)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            raise

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._respond(reader)
            writer.write(encode_message(response))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        self.requests += 1
        try:
            data = await asyncio.wait_for(_read_message(reader), READ_TIMEOUT)
            request = _decode_request(data)
        except (TimeoutError, ValueError, UnicodeDecodeError) as exc:
            self.errors += 1
            return {"error": f"bad request: {exc or type(exc).__name__}"}
        try:
            response = self.handler(request)
            if inspect.isawaitable(response):
                response = await response
            if not isinstance(response, dict):
                raise TypeError(f"handler returned {type(response).__name__}, not dict")
            encode_message(response)  # fail here, as an error reply, if not serialisable
        except Exception as exc:
            self.errors += 1
            log.exception("control request %r failed", request.get("cmd"))
            return {"error": f"{type(exc).__name__}: {exc}"}
        return response


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE:
            raise ValueError("request too large")
    return b"".join(chunks)


def control_request(path: str, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send ``request`` to the daemon at ``path`` and return its JSON reply.

    Raises ControlError when no daemon listens there, it does not answer within ``timeout``
    seconds, or the reply is not a JSON object. An ``{"error": ...}`` reply is returned as is.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(f"daemon not running (no control socket at {path})") from exc
        except PermissionError as exc:
            raise ControlError(f"permission denied on control socket {path}") from exc
        sock.sendall(encode_message(request))
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
            if len(reply) > 64 * MAX_MESSAGE:
                raise ControlError("reply too large")
    except TimeoutError as exc:
        raise ControlError(f"daemon at {path} did not answer within {timeout} s") from exc
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            raise ControlError(f"daemon at {path} closed the connection") from exc
        raise ControlError(f"control socket {path}: {exc}") from exc
    finally:
        sock.close()
    try:
        response = json.loads(reply)
    except ValueError as exc:
        raise ControlError(f"daemon at {path} sent a reply that is not JSON") from exc
    if not isinstance(response, dict):
        raise ControlError(f"daemon at {path} sent {type(response).__name__}, not an object")
    return response
