"""Runs checks: concurrently, each with its own deadline, in dependency order, never crashing.

- A check whose dependencies have all finished starts at once (up to ``max_workers`` at a time).
- A check still running at its deadline is reported ``unknown``/``timeout`` and abandoned:
  its thread is a daemon and whatever it returns later is ignored. (Threads cannot be killed;
  checks keep their own I/O timeouts below the deadline so abandoned threads end soon.)
- An exception escaping a check is a bug, recorded as ``unknown``/``check_crashed``.
- A dependant of a ``fail``ed check is ``skipped``/``dependency_failed``: one root cause,
  one report.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from posdiag.checks.base import AnySpec, CheckContext
from posdiag.config import Config
from posdiag.paths import Roots
from posdiag.results import CheckResult, Status, skipped
from posdiag.summary import Summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Which checks run (in registry order) and which are listed as disabled."""

    run: tuple[AnySpec, ...]
    disabled: tuple[AnySpec, ...]


def plan(specs: Sequence[AnySpec], config: Config, only: Iterable[str] = ()) -> Plan:
    """Checks named in ``only`` run even when disabled by config; else the enabled ones."""
    wanted = list(only)
    if wanted:
        names = set(wanted)
        return Plan(tuple(s for s in specs if s.name in names), ())
    run = tuple(s for s in specs if s.enabled(config.check(s.name)))
    return Plan(run, tuple(s for s in specs if s not in run))


def run_checks(specs: Sequence[AnySpec], config: Config, roots: Roots, *,
               only: Iterable[str] = (),
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run the plan and return one result per check, in registry order."""
    p = plan(specs, config, only)
    results: dict[str, CheckResult] = {}

    def record(result: CheckResult) -> None:
        results[result.name] = result
        if on_result is not None:
            on_result(result)

    for spec in p.disabled:
        record(skipped(spec.name, "disabled", Summary("runner.disabled")))
    _execute(p.run, config, roots, record)
    order = {s.name: i for i, s in enumerate(specs)}
    return sorted(results.values(), key=lambda r: order.get(r.name, len(order)))


@dataclass
class _Running:
    spec: AnySpec
    started: float
    deadline: float


def _execute(specs: Sequence[AnySpec], config: Config, roots: Roots,
             record: Callable[[CheckResult], None]) -> None:
    names = {s.name for s in specs}
    waiting = {s.name: s for s in specs}
    # Only dependencies that are part of this run order it; others are ignored.
    deps = {s.name: tuple(d for d in s.depends_on if d in names) for s in specs}
    done: dict[str, CheckResult] = {}
    running: dict[str, _Running] = {}
    finished: queue.SimpleQueue[tuple[str, CheckResult]] = queue.SimpleQueue()
    workers = config.runner.max_workers

    def finish(result: CheckResult) -> None:
        done[result.name] = result
        record(result)

    while waiting or running:
        # Start (or skip) everything whose dependencies are settled; a skip can settle another.
        progress = True
        while progress and len(running) < workers:
            progress = False
            for name in list(waiting):
                if len(running) >= workers:
                    break
                if any(d not in done for d in deps[name]):
                    continue
                spec = waiting.pop(name)
                progress = True
                failed = [done[d] for d in deps[name] if _blocks(done[d])]
                if failed:
                    first = failed[0]
                    # A chain of skips names the check that really failed, not the last link.
                    cause = (first.summary.args.get("cause", first.summary)
                             if first.reason == "dependency_failed"
                             and isinstance(first.summary, Summary)
                             else Summary("runner.dependency", check=first.name,
                                          reason=first.reason))
                    finish(skipped(name, "dependency_failed",
                                   Summary("runner.not_run", cause=cause)))
                    continue
                running[name] = _start(spec, config, roots, finished)
        if not running:
            if waiting:  # a dependency cycle or a dependency on itself: a registry bug
                for name in list(waiting):
                    waiting.pop(name)
                    finish(CheckResult(name, Status.UNKNOWN, "check_crashed",
                                       Summary("runner.dependency_cycle")))
            continue
        timeout = max(0.0, min(r.deadline for r in running.values()) - time.monotonic())
        try:
            name, result = finished.get(timeout=timeout)
        except queue.Empty:
            now = time.monotonic()
            for name, r in list(running.items()):
                if now >= r.deadline:
                    del running[name]
                    limit = r.deadline - r.started
                    finish(CheckResult(name, Status.UNKNOWN, "timeout",
                                       Summary("runner.timeout", seconds=limit),
                                       duration_ms=round(limit * 1000, 1)))
            continue
        r = running.pop(name, None)
        if r is None:  # arrived after its deadline: already reported as a timeout
            continue
        finish(result.with_duration((time.monotonic() - r.started) * 1000))


def _blocks(dep: CheckResult) -> bool:
    """A failed dependency, or one itself skipped for a failed dependency, blocks its dependants."""
    return dep.status is Status.FAIL or dep.reason == "dependency_failed"


def _start(spec: AnySpec, config: Config, roots: Roots,
           finished: queue.SimpleQueue[tuple[str, CheckResult]]) -> _Running:
    cfg = config.check(spec.name)
    started = time.monotonic()
    deadline = started + spec.timeout(cfg)
    ctx = CheckContext(spec.name, roots, config, deadline)

    def body() -> None:
        finished.put((spec.name, _guarded(spec, ctx, cfg)))

    threading.Thread(target=body, name=f"check-{spec.name}", daemon=True).start()
    return _Running(spec, started, deadline)


def _guarded(spec: AnySpec, ctx: CheckContext, cfg: object) -> CheckResult:
    try:
        result = spec.run(ctx, cfg)
    except Exception as e:  # the one place a check's bug is contained
        log.warning("check %s crashed: %s: %s", spec.name, type(e).__name__, e)
        log.debug("traceback of the crash in %s", spec.name, exc_info=True)
        return CheckResult(spec.name, Status.UNKNOWN, "check_crashed",
                           Summary("runner.crashed", error=f"{type(e).__name__}: {e}"[:280]),
                           hints=("agent.report_bug",))
    if not isinstance(result, CheckResult) or result.name != spec.name:
        return CheckResult(spec.name, Status.UNKNOWN, "check_crashed",
                           Summary("runner.bad_result", type=type(result).__name__),
                           hints=("agent.report_bug",))
    return result
