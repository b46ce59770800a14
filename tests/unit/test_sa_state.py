"""ESP sequence state across restarts (netstack/runtime/sa_state.py)."""

from __future__ import annotations

import os
from pathlib import Path

from netstack.ipsec.processor import SecurityProcessor
from netstack.ipsec.sa import SecurityAssociation
from netstack.runtime.sa_state import HEADROOM, SaStatePersister


def processor_with(out_seq: int = 0, in_top: int = 0) -> SecurityProcessor:
    processor = SecurityProcessor("mobility")
    out = SecurityAssociation(spi=0x1001, algorithm="aes-gcm-16", key=os.urandom(20), name="out")
    inbound = SecurityAssociation(spi=0x1002, algorithm="aes-gcm-16", key=os.urandom(20), name="in")
    out.seq = out_seq
    if in_top:
        inbound.replay.update(in_top)
    processor.sad.add(out, "out")
    processor.sad.add(inbound, "in")
    return processor


def test_a_restart_resumes_past_every_used_sequence_number(tmp_path: Path) -> None:
    path = tmp_path / "esp.json"
    before = processor_with(out_seq=1234, in_top=77)
    SaStatePersister(path, [before]).save(0.0)
    after = processor_with()
    assert SaStatePersister(path, [after]).restore() == 2
    assert after.sad.get("out").seq == 1234 + HEADROOM
    replay = after.sad.get("in").replay
    assert replay.top == 77
    assert not replay.check(77) and not replay.check(70)  # old packets stay replays
    assert replay.check(78)


def test_saving_is_due_when_the_counter_moved_half_the_headroom(tmp_path: Path) -> None:
    path = tmp_path / "esp.json"
    processor = processor_with(out_seq=10)
    persister = SaStatePersister(path, [processor])
    persister.save(0.0)
    processor.sad.get("out").seq = 10 + HEADROOM // 2 - 1
    persister.maybe_save(1.0)
    assert '"seq": 10,' in path.read_text() or '"seq": 10}' in path.read_text()
    processor.sad.get("out").seq = 10 + HEADROOM // 2
    persister.maybe_save(1.5)
    assert str(10 + HEADROOM // 2) in path.read_text()


def test_missing_or_corrupt_state_is_ignored(tmp_path: Path) -> None:
    processor = processor_with(out_seq=5)
    assert SaStatePersister(tmp_path / "none.json", [processor]).restore() == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert SaStatePersister(bad, [processor]).restore() == 0
    assert processor.sad.get("out").seq == 5
