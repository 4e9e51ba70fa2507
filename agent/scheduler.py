"""When each check runs in the daemon: its own interval, spread by jitter, runnable on demand.

Jitter keeps a fleet of terminals that booted together (a power cut in a mall) from probing the
payment host and publishing in lock-step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping


class Scheduler:
    def __init__(self, intervals: Mapping[str, float], *, jitter: float = 0.1,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction of the interval, 0 <= jitter < 1")
        self.intervals = dict(intervals)
        self.jitter = jitter
        self.clock = clock
        self.rng = rng or random.Random()
        now = clock()
        self.next_at: dict[str, float] = {name: now for name in self.intervals}  # first cycle: all

    def _spread(self, interval: float) -> float:
        return interval * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def due(self) -> list[str]:
        now = self.clock()
        return [n for n, t in self.next_at.items() if t <= now]

    def done(self, names: Iterable[str]) -> None:
        now = self.clock()
        for n in names:
            if n in self.intervals:
                self.next_at[n] = now + self._spread(self.intervals[n])

    def run_now(self, name: str) -> None:
        if name in self.next_at:
            self.next_at[name] = self.clock()

    def run_in(self, name: str, seconds: float) -> None:
        """Run ``name`` again within ``seconds`` (sooner if it is already due sooner)."""
        if name in self.next_at:
            self.next_at[name] = min(self.next_at[name], self.clock() + seconds)

    def seconds_until_next(self) -> float:
        if not self.next_at:
            return 3600.0
        return max(0.0, min(self.next_at.values()) - self.clock())

    def update(self, intervals: Mapping[str, float]) -> None:
        """New intervals after a reload: keep schedules of unchanged checks."""
        now = self.clock()
        for n in list(self.next_at):
            if n not in intervals:
                del self.next_at[n]
        for n, iv in intervals.items():
            if n not in self.next_at:
                self.next_at[n] = now
            elif iv != self.intervals.get(n):
                self.next_at[n] = min(self.next_at[n], now + self._spread(iv))
        self.intervals = dict(intervals)


class Periodic:
    """A single recurring duty (heartbeat, report) with jitter."""

    def __init__(self, interval: float, *, jitter: float = 0.1, first_in: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.interval = interval
        self.jitter = jitter
        self.clock = clock
        self.rng = rng or random.Random()
        self.next_at = clock() + (self._spread() if first_in is None else first_in)

    def _spread(self) -> float:
        return self.interval * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def done(self) -> None:
        self.next_at = self.clock() + self._spread()

    def seconds_left(self) -> float:
        return max(0.0, self.next_at - self.clock())
