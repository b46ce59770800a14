"""benchmarks.fastpath's ratio rows: the right pairs, TAYGA at its better link setting."""

from __future__ import annotations

from benchmarks.fastpath import _ratio_rows
from benchmarks.report import Measurement

F = "fastpath"


def _rows() -> list[Measurement]:
    return [
        Measurement(F, "UDP 100 B host->CN (fast path)", pps=200_000.0,
                    detail={"arrived_pps": 330_000}),
        Measurement(F, "TCP host->CN (fast path)", mbit_s=13_000.0),
        Measurement(F, "TCP CN->host (-R) (fast path)", mbit_s=1_400.0),
        Measurement(F, "UDP 100 B host->CN (kernel forwarding)", pps=250_000.0,
                    detail={"arrived_pps": 300_000}),
        Measurement(F, "TCP host->CN (kernel forwarding)", mbit_s=13_000.0),
        Measurement(F, "TCP CN->host (-R) (kernel forwarding)", mbit_s=2_800.0),
        Measurement(F, "UDP 100 B host->CN (Python path)", pps=40_000.0),
        Measurement("tayga", "UDP 100 B v4->v6", pps=90_000.0, detail={"arrived_pps": 110_000}),
        Measurement("tayga", "UDP 100 B v4->v6 (threaded NAPI)", pps=100_000.0,
                    detail={"arrived_pps": 100_000}),
        Measurement("tayga", "TCP v4->v6", mbit_s=1_300.0),
        Measurement("tayga", "TCP v4->v6 (threaded NAPI)", mbit_s=1_000.0),
    ]


def test_ratios_take_taygas_better_setting_and_pair_like_with_like() -> None:
    notes = {m.name.removeprefix("ratio "): m.detail["note"] for m in _ratio_rows(_rows())}
    assert notes["UDP pkt/s fast path / TAYGA (its better link setting)"] == "2.00x"
    assert notes["TCP Mbit/s fast path / TAYGA (its better link setting)"] == "10.00x"
    assert notes["UDP pkt/s fast path / kernel forwarding"] == "0.80x"
    assert notes["TCP -R Mbit/s fast path / kernel forwarding"] == "0.50x"
    assert notes["UDP pkt/s fast path / Python path"] == "5.00x"
    # what reached the receiver's UDP layer: its own best row per side (TAYGA's softirq here)
    arrived = "UDP pkt/s arrived at the receiver's UDP layer, fast path / TAYGA (its better link setting)"
    assert notes[arrived] == "3.00x"
    assert notes["UDP pkt/s arrived at the CN's UDP layer, fast path / kernel forwarding"] == "1.10x"
    assert "UDP pkt/s arrived at the CN's UDP layer, fast path / Python path" not in notes
    # no row for a pair with a side missing (no TAYGA -R, no Python TCP here)
    assert "TCP -R Mbit/s fast path / TAYGA (its better link setting)" not in notes
    assert "TCP Mbit/s fast path / Python path" not in notes


def test_udp_measurement_reports_arrivals_over_the_senders_seconds() -> None:
    from benchmarks.testbed import udp_measurement

    data = {"end": {"sum": {"packets": 1_000, "lost_packets": 400, "lost_percent": 40.0},
                    "sum_sent": {"packets": 1_000, "seconds": 2.0},
                    "sum_received": {"packets": 1_000, "seconds": 2.0}}}
    m = udp_measurement(F, "x", data, "via", arrived=900)
    assert m.pps == 300.0  # iperf3's count: 600 kept by the application
    assert m.detail["arrived_pps"] == 450  # 900 reached its UDP layer in 2 s
    assert udp_measurement(F, "x", data, "via").detail["arrived_pps"] is None
