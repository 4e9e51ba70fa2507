"""Repeated log-worthy occurrences (rejected commands, dropped replies) as a bounded trickle.

A flood of 4,000 bad commands must not become 4,000 log lines: journald rate-limits the whole
service, and the lines that matter get lost. The first occurrence after a quiet interval is
logged in full at once; later ones are counted by key and said in one summary line per interval.
The totals since start are kept for whoever wants to show them (heartbeats, tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

SUMMARY_INTERVAL_S = 60.0


class Tally:
    """Thread-safe: ``add`` is called from the MQTT thread and the main loop alike."""

    def __init__(self, logger: logging.Logger, what: str, *,
                 interval_s: float = SUMMARY_INTERVAL_S, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval must be > 0 s, not {interval_s!r}")
        self.log = logger
        self.what = what  # plural noun for the summary: "commands rejected"
        self.interval_s = interval_s
        self.level = level
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        self._said_at: float | None = None  # when the last line was logged

    def add(self, key: str, detail: str) -> None:
        """Count one occurrence; ``detail`` is logged only if it is the first in a while."""
        with self._lock:
            self._totals[key] += 1
            now = self.clock()
            quiet = self._said_at is None or now - self._said_at >= self.interval_s
            if quiet and not self._pending:
                self._said_at = now
                line = detail
            else:
                self._pending[key] += 1
                line = self._summary_if_due(now)
        if line:
            self.log.log(self.level, "%s", line)

    def flush(self, *, force: bool = False) -> None:
        """Log the summary of what was counted, if an interval has passed (or ``force``)."""
        with self._lock:
            line = self._summary_if_due(self.clock(), force=force)
        if line:
            self.log.log(self.level, "%s", line)

    def totals(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._totals)

    def _summary_if_due(self, now: float, *, force: bool = False) -> str:
        if not self._pending:
            return ""
        if not force and self._said_at is not None and now - self._said_at < self.interval_s:
            return ""
        since = "" if self._said_at is None else f" in the last {now - self._said_at:.0f} s"
        counts = ", ".join(f"{k} {n}" for k, n in sorted(self._pending.items()))
        line = f"{sum(self._pending.values())} more {self.what}{since}: {counts}"
        self._pending.clear()
        self._said_at = now
        return line
