"""ControlServer / control_request over a temporary unix socket (loopback only, fast)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from netstack.runtime.control import ControlError, ControlServer, control_request


@pytest.fixture
def sock_path() -> Iterator[str]:
    # Short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can exceed it.
    directory = tempfile.mkdtemp(prefix="rtctl-", dir="/tmp")
    try:
        yield os.path.join(directory, "ctl.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def status_handler(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("cmd") == "status":
        return {"home_address": ipaddress.IPv6Address("2001:db8::1"), "mac": b"\x02\x00\x00\x00\x00\x01",
                "prefixes": (ipaddress.IPv6Network("2001:db8::/64"),)}
    if request.get("cmd") == "boom":
        raise RuntimeError("boom")
    if request.get("cmd") == "list":
        return ["not", "a", "dict"]  # type: ignore[return-value]
    if request.get("cmd") == "opaque":
        return {"thing": object()}
    return {"echo": request}


async def _ask(path: str, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    return await asyncio.to_thread(control_request, path, request, timeout)


async def _raw_exchange(path: str, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(payload)
    writer.write_eof()
    data = await reader.read()
    writer.close()
    return data


def test_status_roundtrip_serialises_addresses_and_bytes(sock_path: str) -> None:
    async def main() -> dict[str, Any]:
        async with ControlServer(sock_path, status_handler):
            return await _ask(sock_path, {"cmd": "status"})

    assert asyncio.run(main()) == {
        "home_address": "2001:db8::1",
        "mac": "020000000001",
        "prefixes": ["2001:db8::/64"],
    }


def test_async_handler_is_awaited(sock_path: str) -> None:
    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"pong": request["n"] + 1}

    async def main() -> dict[str, Any]:
        async with ControlServer(sock_path, handler):
            return await _ask(sock_path, {"cmd": "ping", "n": 41})

    assert asyncio.run(main()) == {"pong": 42}


def test_handler_errors_become_error_replies_and_server_survives(sock_path: str) -> None:
    async def main() -> list[dict[str, Any]]:
        async with ControlServer(sock_path, status_handler) as server:
            replies = [
                await _ask(sock_path, {"cmd": "boom"}),
                await _ask(sock_path, {"cmd": "list"}),
                await _ask(sock_path, {"cmd": "opaque"}),
                await _ask(sock_path, {"cmd": "again"}),
            ]
            assert server.errors == 3 and server.requests == 4
            return replies

    boom, not_dict, opaque, again = asyncio.run(main())
    assert boom == {"error": "RuntimeError: boom"}
    assert "not dict" in not_dict["error"]
    assert "not JSON serialisable" in opaque["error"]
    assert again == {"echo": {"cmd": "again"}}


@pytest.mark.parametrize("payload", [b"{not json\n", b"[1, 2]\n", b"", b"\xff\xfe\n"])
def test_malformed_requests_get_error_reply(sock_path: str, payload: bytes) -> None:
    async def main() -> bytes:
        async with ControlServer(sock_path, status_handler):
            return await _raw_exchange(sock_path, payload)

    reply = asyncio.run(main())
    assert reply.endswith(b"\n")
    assert b'"error":"bad request' in reply


def test_request_without_newline_but_eof_is_accepted(sock_path: str) -> None:
    async def main() -> bytes:
        async with ControlServer(sock_path, status_handler):
            return await _raw_exchange(sock_path, b'{"cmd":"x"}')

    assert asyncio.run(main()) == b'{"echo":{"cmd":"x"}}\n'


def test_socket_mode_is_0600_and_file_removed_on_close(sock_path: str) -> None:
    async def main() -> int:
        server = ControlServer(sock_path, status_handler)
        await server.start()
        mode = stat.S_IMODE(os.stat(sock_path).st_mode)
        await server.close()
        return mode

    assert asyncio.run(main()) == 0o600
    assert not os.path.exists(sock_path)


def test_stale_socket_file_is_replaced(sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)  # bound, never listening: what a crashed daemon leaves behind
    dead.close()
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)

    async def main() -> dict[str, Any]:
        async with ControlServer(sock_path, status_handler):
            return await _ask(sock_path, {"cmd": "hi"})

    assert asyncio.run(main()) == {"echo": {"cmd": "hi"}}


def test_live_socket_is_not_stolen(sock_path: str) -> None:
    async def main() -> None:
        async with ControlServer(sock_path, status_handler):
            with pytest.raises(ControlError, match="already serving"):
                await ControlServer(sock_path, status_handler).start()
            # the first server still answers
            assert await _ask(sock_path, {"cmd": "still"}) == {"echo": {"cmd": "still"}}

    asyncio.run(main())


def test_regular_file_at_path_is_left_alone(sock_path: str) -> None:
    with open(sock_path, "w") as f:
        f.write("precious")

    async def main() -> None:
        with pytest.raises(ControlError, match="not a socket"):
            await ControlServer(sock_path, status_handler).start()

    asyncio.run(main())
    with open(sock_path) as f:
        assert f.read() == "precious"


def test_client_reports_daemon_not_running(sock_path: str) -> None:
    with pytest.raises(ControlError, match="daemon not running"):
        control_request(sock_path, {"cmd": "status"})
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)
    dead.close()
    with pytest.raises(ControlError, match="daemon not running"):
        control_request(sock_path, {"cmd": "status"})


def test_client_times_out_on_silent_daemon(sock_path: str) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(sock_path)
    silent.listen(1)  # connect() succeeds via the backlog; nobody ever answers
    try:
        with pytest.raises(ControlError, match="did not answer"):
            control_request(sock_path, {"cmd": "status"}, timeout=0.05)
    finally:
        silent.close()


def test_client_rejects_non_object_reply(sock_path: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"[1]\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(serve, path=sock_path)
        async with server:
            with pytest.raises(ControlError, match="not an object"):
                await _ask(sock_path, {"cmd": "status"})

    asyncio.run(main())
