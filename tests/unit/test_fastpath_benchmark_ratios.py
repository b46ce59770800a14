"""benchmarks.fastpath's ratio rows: the right pairs, TAYGA at its better link setting."""

from __future__ import annotations

from benchmarks.fastpath import _ratio_rows
from benchmarks.report import Measurement

F = "fastpath"


def _rows() -> list[Measurement]:
    return [
        Measurement(F, "UDP 100 B host->CN (fast path)", pps=200_000.0),
        Measurement(F, "TCP host->CN (fast path)", mbit_s=13_000.0),
        Measurement(F, "TCP CN->host (-R) (fast path)", mbit_s=1_400.0),
        Measurement(F, "UDP 100 B host->CN (kernel forwarding)", pps=250_000.0),
        Measurement(F, "TCP host->CN (kernel forwarding)", mbit_s=13_000.0),
        Measurement(F, "TCP CN->host (-R) (kernel forwarding)", mbit_s=2_800.0),
        Measurement(F, "UDP 100 B host->CN (Python path)", pps=40_000.0),
        Measurement("tayga", "UDP 100 B v4->v6", pps=90_000.0),
        Measurement("tayga", "UDP 100 B v4->v6 (threaded NAPI)", pps=100_000.0),
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
    # no row for a pair with a side missing (no TAYGA -R, no Python TCP here)
    assert "TCP -R Mbit/s fast path / TAYGA (its better link setting)" not in notes
    assert "TCP Mbit/s fast path / Python path" not in notes
