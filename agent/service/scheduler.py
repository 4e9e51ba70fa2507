"""When each check runs in the daemon: its own interval, spread by jitter, runnable on demand;
and where: on one worker thread, so the main loop keeps its beat while a check waits.

Jitter keeps a fleet of terminals that booted together (a power cut in a mall) from probing the
payment host and publishing in lock-step.
"""

from __future__ import annotations

import functools
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any


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

    def update(self, intervals: Mapping[str, float], *, jitter: float | None = None) -> None:
        """New intervals after a reload: keep schedules of unchanged checks."""
        if jitter is not None:
            if not 0 <= jitter < 1:
                raise ValueError("jitter is a fraction of the interval, 0 <= jitter < 1")
            self.jitter = jitter
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

    def update(self, interval: float, *, jitter: float | None = None) -> None:
        """A new interval after a reload: due no later than one new interval from now, so a
        shorter one applies at once and a longer one after the beat already planned."""
        if jitter is not None:
            self.jitter = jitter
        if interval != self.interval:
            self.interval = interval
            self.next_at = min(self.next_at, self.clock() + self._spread())


class Worker:
    """One thread that runs jobs (check cycles, selftests, diagnoses) one after another.

    One, not a pool: two runs of the same check at once would fight over its serial port. A
    job's outcome is not handled here: ``deliver`` hands a callable to the owner's loop, which
    calls it there, so every piece of daemon state keeps a single owner.
    """

    def __init__(self, deliver: Callable[[Callable[[], None]], None], *,
                 name: str = "posdiag-checks",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.deliver = deliver
        self.clock = clock
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._started_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[BaseException], None]) -> None:
        """Run ``work()`` on the worker; then ``done(value)`` or ``failed(error)`` is
        delivered to the owner."""
        with self._lock:
            self._queued += 1
        self._jobs.put((work, done, failed))

    @property
    def queued(self) -> int:
        """Jobs submitted and not finished (the running one included)."""
        with self._lock:
            return self._queued

    def running_for_s(self) -> float:
        """How long the current job has run (0 when idle)."""
        with self._lock:
            started = self._started_at
        return 0.0 if started is None else self.clock() - started

    def stop(self) -> None:
        """Finish the running job, then end (daemon thread: a stuck job does not hold exit)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            work, done, failed = job
            with self._lock:
                self._started_at = self.clock()
            outcome: Callable[[], None]
            try:
                value = work()
            except Exception as e:  # reported to the owner, never lost in this thread
                outcome = functools.partial(failed, e)
            else:
                outcome = functools.partial(done, value)
            with self._lock:
                self._started_at = None
                self._queued -= 1
            self.deliver(outcome)
