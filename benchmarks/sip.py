"""SIP VoIP through the terminal (issue 12): call set-up time, media gap across a handover,
and RTP packets per second through the ALG's translated path.

One test bed of its own (`bsip`, `testbed up --sip`). Every figure has its reference from
the same run: the host's IPv6 phone (home address, no translation, no ALG) next to the
IPv4 phone behind the ALG, and a call without a handover next to one with a handover.

- set-up: `testbed call` N times per direction, dial -> CALL_ESTABLISHED at the caller
  (INVITE -> 200 OK as the phone sees it); min/median/max ms.
- media gap: a call from the CN to a host phone; tcpdump on the host's link records when
  each RTP packet reaches the phone; `move a` 3 s into the call; the largest gap between two
  consecutive packets, against the largest gap of the same call without a move.
- concurrent calls: 50 real baresip calls at once from one host phone to the CN (each 50
  RTP packets/s each way, 10 s), host4 (ALG) against host6 (reference); RTP from the phones'
  own summaries.
- RTP load: `benchmarks.rtp_load` with 50 symmetric streams of 50 packets/s each way
  (172-octet RTP) between the host and the CN for 10 s: through translation + ALG (IPv4
  phone side) and through the IPv6 passthrough (reference); received pps and loss per way.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.report import Measurement, Skipped

STREAMS, STREAM_PORT, LOAD_SECONDS = 50, 50000, 10.0
CONCURRENT_CALLS = 50  # real baresip calls at once (the "50 simultaneous streams")
RTP_RANGES = {"host4": "udp dst portrange 30000-30999",
              "host6": "ip6 and udp dst portrange 31000-31999"}


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _setup_times(prefix: str, sdir: str, calls: int) -> list[Measurement]:
    from provisioning.sip_call import place_call

    results = []
    reference = None
    for caller, callee, what in (("host6", "cn", "IPv6 phone (no ALG, reference)"),
                                 ("host4", "cn", "IPv4 phone via ALG"),
                                 ("cn", "host4", "CN -> IPv4 phone via ALG")):
        samples = []
        for _ in range(calls):
            result = place_call(prefix, sdir, caller, callee, seconds=0.5)
            if result.established and result.setup_ms is not None:
                samples.append(result.setup_ms)
            time.sleep(0.3)
        if not samples:
            continue
        median = statistics.median(samples)
        reference = reference or median
        results.append(Measurement(
            group="sip", name=f"call set-up {caller} -> {callee}: {what}", packets=len(samples),
            seconds=median / 1000,
            detail={"min_ms": round(min(samples), 1), "median_ms": round(median, 1),
                    "max_ms": round(max(samples), 1), "ratio_to_reference": round(median / reference, 2)},
        ))
    return results


def _arrivals(pcap: str) -> list[float]:
    out = subprocess.run(["tshark", "-n", "-r", pcap, "-T", "fields", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, timeout=60, check=False).stdout
    return [float(line) for line in out.split()]


def _max_gap_ms(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    return max(b - a for a, b in zip(times, times[1:], strict=False)) * 1000


def _call_with_capture(prefix: str, sdir: str, phone: str, during: Callable[[], None] | None
                       ) -> tuple[float | None, dict[str, Any]]:
    from provisioning import netns
    from provisioning.sip_call import place_call
    from provisioning.topology import namespace

    pcap = os.path.join(sdir, f"gap-{phone}-{int(time.time() * 1000)}.pcap")
    proc = netns.popen(namespace(prefix, "host"),
                       ["tcpdump", "-i", "eth0", "-n", "-U", "-w", pcap, RTP_RANGES[phone]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        result = place_call(prefix, sdir, "cn", phone, seconds=8, during=during)
    finally:
        time.sleep(0.5)
        proc.terminate()
        proc.wait(timeout=10)
    gap = _max_gap_ms(_arrivals(pcap))
    return gap, result.as_dict()


def _media_gaps(prefix: str, sdir: str) -> list[Measurement]:
    from provisioning import handover

    results = []
    for phone in ("host4", "host6"):
        reference, _ = _call_with_capture(prefix, sdir, phone, None)
        moved_in: list[float] = []

        def move_a(moved_in: list[float] = moved_in) -> None:
            time.sleep(3)
            moved_in.append(handover.move(prefix, "a", timeout=20))

        gap, call = _call_with_capture(prefix, sdir, phone, move_a)
        handover.move(prefix, "b", timeout=20)
        if gap is None:
            continue
        results.append(Measurement(
            group="sip", name=f"media gap across move a, CN -> {phone}", seconds=gap / 1000,
            detail={"max_gap_ms": round(gap, 1),
                    "reference_max_gap_ms_without_move": None if reference is None else round(reference, 1),
                    "move_s": round(moved_in[0], 3) if moved_in else None,
                    "rtp_received": call["rtp"].get(phone, {}).get("received")},
        ))
    return results


def _load(prefix: str, sdir: str, local: str, remote: str, what: str, streams: int = STREAMS
          ) -> Measurement:
    from provisioning import netns
    from provisioning.topology import CN_ADDRESS, namespace

    module = [sys.executable, "-m", "benchmarks.rtp_load"]
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    answer = netns.popen(namespace(prefix, "cn"),
                         [*module, "answer", "--local", str(CN_ADDRESS), "--ports", str(STREAM_PORT),
                          "--streams", str(streams), "--seconds", str(LOAD_SECONDS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    time.sleep(1.0)
    call = netns.run(namespace(prefix, "host"),
                     [*module, "call", "--local", local, "--remote", remote, "--ports",
                      str(STREAM_PORT), "--streams", str(streams), "--seconds", str(LOAD_SECONDS)],
                     timeout=LOAD_SECONDS + 60)
    out, _ = answer.communicate(timeout=LOAD_SECONDS + 60)
    try:
        caller, answerer = json.loads(call.stdout), json.loads(out)
    except ValueError as exc:
        raise RuntimeError(f"RTP load ({what}, {streams} streams) printed no result: "
                           f"{call.stderr.decode(errors='replace')[-200:]}") from exc
    up_loss = 1 - answerer["received"] / caller["sent"] if caller["sent"] else None
    down_loss = 1 - caller["received"] / answerer["sent"] if answerer["sent"] else None
    pps = (caller["received"] + answerer["received"]) / LOAD_SECONDS
    return Measurement(
        group="sip", name=f"RTP {streams} x 50 pps each way: {what}", pps=pps,
        loss_percent=None if up_loss is None or down_loss is None
        else round(100 * max(up_loss, down_loss), 2),
        packets=caller["sent"] + answerer["sent"], seconds=LOAD_SECONDS,
        detail={"host_sent": caller["sent"], "cn_received": answerer["received"],
                "cn_sent": answerer["sent"], "host_received": caller["received"],
                "loss_host_to_cn_percent": None if up_loss is None else round(100 * up_loss, 2),
                "loss_cn_to_host_percent": None if down_loss is None else round(100 * down_loss, 2)},
    )


def _concurrent_calls(prefix: str, sdir: str, caller: str, calls: int, what: str,
                      seconds: float = 10.0) -> Measurement:
    """`calls` real baresip calls caller -> cn at once (one UA each side, call_max_calls)."""
    from provisioning.nodes import sip as sip_node
    from provisioning.sip_call import CtrlConnection, _log_since, _log_size, rtp_summaries
    from provisioning.topology import namespace

    phones = sip_node.phones("0.0.0.0")
    logs = {name: sip_node.phone_log(sdir, name) for name in (caller, "cn")}
    offsets = {name: _log_size(path) for name, path in logs.items()}
    conn = CtrlConnection(namespace(prefix, phones[caller].node), phones[caller].ctrl_port)
    try:
        started = time.monotonic()
        for _ in range(calls):
            conn.command("dial", f"sip:cn@{sip_node.SIP_DOMAIN}")
        established = failed = 0
        deadline = time.monotonic() + 30
        while established + failed < calls and time.monotonic() < deadline:
            event = conn.wait_event(lambda e: e.get("type") in ("CALL_ESTABLISHED", "CALL_CLOSED"),
                                    1.0)
            if event is not None:
                established += event["type"] == "CALL_ESTABLISHED"
                failed += event["type"] == "CALL_CLOSED"
        all_up = time.monotonic() - started
        time.sleep(seconds)
        for _ in range(calls):
            conn.command("hangup")
            time.sleep(0.02)
        time.sleep(3.0)
    finally:
        conn.close()
    mine = rtp_summaries(_log_since(logs[caller], offsets[caller]))
    theirs = rtp_summaries(_log_since(logs["cn"], offsets["cn"]))
    sent = sum(f.sent or 0 for f in mine), sum(f.sent or 0 for f in theirs)
    received = sum(f.received or 0 for f in mine), sum(f.received or 0 for f in theirs)
    up = 1 - received[1] / sent[0] if sent[0] else None
    down = 1 - received[0] / sent[1] if sent[1] else None
    losses = [x for x in (up, down) if x is not None]
    return Measurement(
        group="sip", name=f"{calls} concurrent calls {caller} -> cn: {what}",
        pps=(received[0] + received[1]) / seconds,
        loss_percent=round(100 * max(0.0, *losses), 2) if losses else None,
        packets=sent[0] + sent[1], seconds=seconds,
        detail={"established": established, "failed": failed,
                "all_established_ms": round(all_up * 1000, 1), "summaries": len(mine),
                "caller_sent": sent[0], "cn_received": received[1], "cn_sent": sent[1],
                "caller_received": received[0]},
    )


def _cn_pool_address(prefix: str, sdir: str) -> str | None:
    from ipaddress import IPv4Address

    from provisioning import control
    from provisioning.nodes.agents import GUEST, socket_path
    from provisioning.topology import CN_ADDRESS

    status = control.request(socket_path(sdir, GUEST), {"cmd": "status"}, 2.0)
    for row in status.get("translation_table", []):
        if row.get("ipv6") == str(CN_ADDRESS):
            return str(IPv4Address(row["ipv4"]))
    return None


def run(prefix: str = "bsip", calls: int = 5) -> tuple[list[Measurement], list[Skipped]]:
    if os.geteuid() != 0:
        return [], [Skipped("sip", "SIP calls", "needs root (network namespaces)")]
    from provisioning.nodes.agents import TranslationOptions
    from provisioning.topology import HOME_ADDRESS, state_dir

    sdir = state_dir(prefix)
    results: list[Measurement] = []
    skipped: list[Skipped] = []
    try:
        done = _cli("testbed", "up", "--sip", "--prefix", prefix, timeout=180)
        if done.returncode != 0:
            return [], [Skipped("sip", "SIP calls", done.stderr.strip()[-300:])]
        results += _setup_times(prefix, sdir, calls)
        results += _media_gaps(prefix, sdir)
        for caller, what in (("host6", "IPv6 phone (reference)"), ("host4", "IPv4 phone via ALG")):
            results.append(_concurrent_calls(prefix, sdir, caller, CONCURRENT_CALLS, what))
        cn4 = _cn_pool_address(prefix, sdir)
        from provisioning.topology import CN_ADDRESS

        home4 = str(TranslationOptions().addresses()[2])
        for streams in (STREAMS, 4 * STREAMS):  # the asked-for load, then four times it
            for local, remote, what in ((str(HOME_ADDRESS), str(CN_ADDRESS),
                                         "IPv6 passthrough (reference)"),
                                        (home4, cn4, "IPv4 via translation + ALG")):
                if remote is None:
                    skipped.append(Skipped("sip", what, "the CN has no pool address"))
                    continue
                try:
                    measured = _load(prefix, sdir, local, remote, what, streams)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    skipped.append(Skipped("sip", f"RTP load {what}", str(exc)))
                    continue
                results.append(measured)
    except Exception as exc:  # a failed step is a result to report, not a crash
        return results, [Skipped("sip", "SIP calls", f"{type(exc).__name__}: {exc}")]
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)
    return results, skipped
