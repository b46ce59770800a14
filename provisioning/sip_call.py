"""`mip6term testbed call FROM TO [--seconds S]`: one call between the bed's baresip phones.

Driven through baresip's ctrl_tcp (netstring-framed JSON commands and events): `dial` on the
caller, wait for CALL_ESTABLISHED (or CALL_CLOSED with the final status), keep the call up
for S seconds, `hangup`, wait for both sides' CALL_CLOSED. The RTP figures are the ones
baresip's rtcpsummary module prints when the call ends (packets sent/received, lost).
Set-up time = dial -> CALL_ESTABLISHED at the caller (INVITE -> 200 OK seen by the phone).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioning import netns
from provisioning.errors import ProvisioningError
from provisioning.nodes import sip
from provisioning.topology import namespace

PHONE_NAMES = ("host4", "host6", "cn", "host4tcp")
_SUMMARY = re.compile(r"audio\s+Transmit:\s+Receive:[ \t]*\n((?:[ \t]*[a-z. ]+:[^\n]*\n?)*)")
_SUMMARY_ROW = re.compile(r"^\s*([a-z. ]+):\s+(-?[\d.]+)\s+(-?[\d.]+)", re.M)


class CtrlConnection:
    """One ctrl_tcp connection (in the phone's namespace)."""

    def __init__(self, ns: str, port: int, timeout: float = 5.0) -> None:
        with netns.inside(ns):
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    def command(self, command: str, params: str = "") -> None:
        data = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(b"%d:%s," % (len(data), data))

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.01))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            raise ProvisioningError("the phone closed its control connection")
        self.buffer += chunk
        while True:
            length, colon, rest = self.buffer.partition(b":")
            if not colon or not length.isdigit() or len(rest) < int(length) + 1:
                return
            n = int(length)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(rest[:n]))
            self.buffer = rest[n + 1:]

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float
                   ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if predicate(event):
                    del self.events[: i + 1]
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._read(min(remaining, 0.5))

    def close(self) -> None:
        self.sock.close()


def _is(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") is True and e.get("type") == kind


def _closed_or_established(e: dict[str, Any]) -> bool:
    return e.get("event") is True and e.get("type") in ("CALL_ESTABLISHED", "CALL_CLOSED")


def _final_status(param: str) -> int | None:
    match = re.match(r"\s*(\d{3})\b", param or "")
    return int(match.group(1)) if match else None


@dataclass
class RtpFigures:
    sent: int | None = None
    received: int | None = None
    lost: int | None = None  # what this side saw missing from the far end's stream
    lost_by_peer: int | None = None  # what the far end reported missing (RTCP)

    def as_dict(self) -> dict[str, int | None]:
        return {"sent": self.sent, "received": self.received, "lost": self.lost,
                "lost_reported_by_peer": self.lost_by_peer}


def rtp_summary(log_text: str) -> RtpFigures:
    """The last rtcpsummary block of a phone's log (printed when a call ends)."""
    blocks = rtp_summaries(log_text)
    return blocks[-1] if blocks else RtpFigures()


def rtp_summaries(log_text: str) -> list[RtpFigures]:
    """Every rtcpsummary block of a phone's log, in order (one per ended call)."""
    return [_figures(block.group(1)) for block in _SUMMARY.finditer(log_text)]


def _figures(block: str) -> RtpFigures:
    rows = {m.group(1).strip(): (m.group(2), m.group(3)) for m in _SUMMARY_ROW.finditer(block)}
    figures = RtpFigures()
    if "packets" in rows:
        figures.sent, figures.received = (int(v) for v in rows["packets"])
    if "lost" in rows:  # from RTCP: absent in a call shorter than the first report
        figures.lost_by_peer, figures.lost = (int(float(v)) for v in rows["lost"])
    return figures


@dataclass
class CallResult:
    caller: str
    callee: str
    established: bool = False
    status: int | None = None  # final status code when not established
    reason: str = ""
    setup_ms: float | None = None
    duration_s: float = 0.0
    rtp: dict[str, RtpFigures] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.caller, "to": self.callee, "established": self.established,
                "status": 200 if self.established else self.status, "reason": self.reason,
                "setup_ms": None if self.setup_ms is None else round(self.setup_ms, 1),
                "duration_s": round(self.duration_s, 2),
                "rtp": {name: self._side(name) for name in self.rtp}}

    def _side(self, name: str) -> dict[str, Any]:
        """One phone's figures, and how much of the far end's stream never arrived.

        Both phones send one packet per 20 ms while the call is up at both ends. What the far
        end sent beyond our own count left it after we hung up, while our BYE was still on
        its way (it takes longer when the machine is busy): never receivable, not lost.
        """
        figures = self.rtp[name]
        row: dict[str, Any] = figures.as_dict()
        peer = self.rtp.get(self.callee if name == self.caller else self.caller)
        if peer is not None and peer.sent and figures.received is not None:
            expected = min(peer.sent, figures.sent) if figures.sent else peer.sent
            missing = max(0, expected - figures.received)
            row["missing"] = missing
            row["loss_ratio"] = round(missing / expected, 4)
        return row


def _log_size(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return f.seek(0, 2)
    except OSError:
        return 0


def _log_since(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def place_call(prefix: str, state_dir: str, caller: str, callee: str, *,
               seconds: float = 5.0, answer_timeout: float = 15.0,
               during: Callable[[], None] | None = None,
               commands: Sequence[tuple[float, str, str]] = ()) -> CallResult:
    """One call caller -> callee; `during` runs while the call is up (e.g. a handover);
    `commands` are (seconds into the call, phone, ctrl_tcp command) sent on the call's own
    control connections (baresip keeps one: a second connection would end the first), e.g.
    (1.5, "cn", "hold") for a re-INVITE."""
    for name in (caller, callee):
        if name not in PHONE_NAMES:
            raise ProvisioningError(f"unknown phone {name!r} (phones: {', '.join(PHONE_NAMES)})")
    if caller == callee:
        raise ProvisioningError("a phone cannot call itself")
    if not sip.is_up(state_dir):
        raise ProvisioningError("the test bed has no phones (bring it up with --sip)")
    all_phones = sip.phones("0.0.0.0")
    logs = {name: sip.phone_log(state_dir, name) for name in (caller, callee)}
    offsets = {name: _log_size(path) for name, path in logs.items()}
    conns = {name: CtrlConnection(namespace(prefix, all_phones[name].node),
                                  all_phones[name].ctrl_port) for name in (caller, callee)}
    result = CallResult(caller, callee)
    try:
        started = time.monotonic()
        conns[caller].command("dial", f"sip:{callee}@{sip.SIP_DOMAIN}")
        event = conns[caller].wait_event(_closed_or_established, answer_timeout)
        if event is None:
            conns[caller].command("hangup")
            result.reason = "no answer"
            return result
        if event["type"] == "CALL_CLOSED":
            result.status = _final_status(event.get("param", ""))
            result.reason = event.get("param", "")
            return result
        result.established = True
        result.setup_ms = (time.monotonic() - started) * 1000
        up_since = time.monotonic()
        if during is not None:
            during()
        for at, phone, command in sorted(commands):
            time.sleep(max(0.0, at - (time.monotonic() - up_since)))
            conns[phone].command(command)
        time.sleep(max(0.0, seconds - (time.monotonic() - up_since)))
        conns[caller].command("hangup")
        result.duration_s = time.monotonic() - up_since
        for name in (caller, callee):
            conns[name].wait_event(_is("CALL_CLOSED"), answer_timeout)
        deadline = time.monotonic() + 5.0  # rtcpsummary prints right after the close event
        for name in (caller, callee):
            figures = rtp_summary(_log_since(logs[name], offsets[name]))
            while figures.sent is None and time.monotonic() < deadline:
                time.sleep(0.1)
                figures = rtp_summary(_log_since(logs[name], offsets[name]))
            result.rtp[name] = figures
        return result
    finally:
        for conn in conns.values():
            conn.close()
