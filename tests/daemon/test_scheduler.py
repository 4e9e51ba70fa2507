"""The daemon's timing pieces (``service.scheduler``): intervals after a reload, the worker."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from posdiag.service.scheduler import Periodic, Scheduler, Worker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_periodic_shorter_interval_applies_at_once_longer_after_the_planned_beat() -> None:
    clock = Clock()
    beat = Periodic(3600, jitter=0, clock=clock)
    assert beat.seconds_left() == 3600
    beat.update(1)
    assert beat.seconds_left() == 1  # not an hour of waiting for the first new beat
    clock.now = 1
    assert beat.due()
    beat.done()
    beat.update(600)
    assert beat.seconds_left() == 1  # the beat already planned, then the new cadence
    clock.now = 2
    beat.done()
    assert beat.seconds_left() == 600


def test_periodic_update_takes_new_jitter() -> None:
    beat = Periodic(100, jitter=0, clock=Clock(), rng=random.Random(1))
    beat.update(100, jitter=0.5)
    beat.done()
    assert 50 <= beat.seconds_left() <= 150 and beat.jitter == 0.5


def test_scheduler_update_takes_new_jitter_and_refuses_nonsense() -> None:
    s = Scheduler({"a": 10}, jitter=0, clock=Clock())
    s.update({"a": 10}, jitter=0.2)
    assert s.jitter == 0.2
    with pytest.raises(ValueError):
        s.update({"a": 10}, jitter=1.0)


def run_on_owner(outcomes: queue.Queue[Callable[[], None]]) -> Callable[[], None]:
    return outcomes.get(timeout=10)


def test_worker_runs_jobs_in_order_off_the_owner_thread_and_delivers_outcomes() -> None:
    outcomes: queue.Queue[Callable[[], None]] = queue.Queue()
    worker = Worker(outcomes.put).start()
    threads: list[str] = []
    seen: list[object] = []
    gate = threading.Event()

    def slow() -> int:
        threads.append(threading.current_thread().name)
        gate.wait(10)
        return 1

    def boom() -> int:
        raise RuntimeError("runner bug")

    worker.submit(slow, seen.append, seen.append)
    worker.submit(boom, seen.append, lambda e: seen.append(str(e)))
    worker.submit(lambda: 3, seen.append, seen.append)
    # The first job is known to be running, and the owner is free meanwhile.
    while not threads:
        threading.Event().wait(0.01)
    assert worker.queued == 3 and worker.running_for_s() >= 0 and seen == []
    gate.set()
    for _ in range(3):
        run_on_owner(outcomes)()  # the owner takes each outcome in, on its own thread
    assert seen == [1, "runner bug", 3]
    assert threads == ["posdiag-checks"] and worker.queued == 0
    assert worker.running_for_s() == 0.0
    worker.stop()


def test_a_worker_stuck_beyond_every_check_limit_stops_the_watchdog(tmp_path, caplog) -> None:
    """The daemon feeds the watchdog from its main loop; with checks on the worker, a worker
    job far past the sum of all check time limits must stop that too, so systemd restarts."""
    from posdiag.runner import plan
    from posdiag.service.daemon import STALL_MARGIN_S, Daemon

    fix = Path(__file__).resolve().parents[2] / "hardware-fixtures"
    cfg = tmp_path / "posdiag.toml"
    cfg.write_text(f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n')
    daemon = Daemon(cfg, {"sysfs": str(fix / "sysfs/healthy-terminal"),
                          "procfs": str(fix / "procfs/healthy-terminal"),
                          "rootfs": str(fix / "rootfs/healthy-terminal")})
    limit = STALL_MARGIN_S + sum(s.timeout(daemon.config.check(s.name))
                                 for s in plan(daemon.specs, daemon.config).run)
    clock = Clock()
    daemon.worker = Worker(lambda outcome: None, clock=clock).start()
    gate, running = threading.Event(), threading.Event()
    daemon.worker.submit(lambda: (running.set(), gate.wait(10)), print, print)
    assert running.wait(10)
    try:
        clock.now = limit - 1
        assert not daemon._worker_stalled()
        clock.now = limit + 1
        assert daemon._worker_stalled() and daemon._worker_stalled()
        assert sum("no more watchdog pings" in r.getMessage() for r in caplog.records) == 1
    finally:
        gate.set()
        daemon.worker.stop()
