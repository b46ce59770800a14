"""ESP sequence state that survives a daemon restart (manually keyed SAs are never re-keyed).

Without it a restarted daemon would send from sequence number 1 again and its peer would drop
everything as replays (RFC 4303 3.3.3). Outbound counters are saved whenever they have moved
`HEADROOM // 2` past the last save (and every few seconds), and resume `HEADROOM` past the
saved value, so a restart never reuses a number. Inbound windows resume at the saved top with
everything at or below it treated as seen, so packets captured before the restart stay replays.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from netstack.ipsec.processor import SecurityProcessor

log = logging.getLogger(__name__)

HEADROOM = 1 << 16
SAVE_INTERVAL = 5.0


def _key(processor: SecurityProcessor, sa: object) -> str:
    return f"{processor.name}/{getattr(sa, 'name', '')}/{getattr(sa, 'spi', 0):#x}"


class SaStatePersister:
    def __init__(self, path: Path, processors: Iterable[SecurityProcessor | None]) -> None:
        self.path = path
        self.processors = [p for p in processors if p is not None]
        self._saved_seq: dict[str, int] = {}
        self._last_save = float("-inf")

    def _associations(self) -> Iterable[tuple[str, object]]:
        for processor in self.processors:
            for sa in processor.sad:
                yield _key(processor, sa), sa

    def restore(self) -> int:
        """Resume counters and replay windows from the state file; returns how many SAs."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable ESP state %s: %s", self.path, exc)
            return 0
        restored = 0
        for key, sa in self._associations():
            row = data.get(key)
            if not isinstance(row, dict):
                continue
            seq = int(row.get("seq", 0))
            if seq:
                sa.seq = min(max(sa.seq, seq + HEADROOM), sa.seq_max - 1)  # type: ignore[attr-defined]
            top = int(row.get("replay_top", 0))
            replay = sa.replay  # type: ignore[attr-defined]
            if top > replay.top:
                replay.top = top
                replay.bitmap = (1 << replay.size) - 1
            restored += 1
        return restored

    def maybe_save(self, now: float) -> None:
        if now - self._last_save >= SAVE_INTERVAL or any(
            sa.seq >= self._saved_seq.get(key, 0) + HEADROOM // 2  # type: ignore[attr-defined]
            for key, sa in self._associations()
        ):
            self.save(now)

    def save(self, now: float) -> None:
        if not self.processors:
            return
        rows = {
            key: {"seq": sa.seq, "replay_top": sa.replay.top}  # type: ignore[attr-defined]
            for key, sa in self._associations()
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".esp-state-", dir=self.path.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(rows, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save ESP state: %s", exc)
            return
        self._saved_seq = {key: row["seq"] for key, row in rows.items()}
        self._last_save = now
