"""The runner: concurrency, deadlines, crash isolation, dependency skips, registry order."""

from __future__ import annotations

import threading
import time

from posdiag import config as c
from posdiag.checks.base import CheckSpec
from posdiag.paths import Roots
from posdiag.results import CheckResult, Status, Verdict
from posdiag.runner import plan, run_checks


def ok(ctx, cfg):
    return Verdict(ctx.name).result("fine")


def failing(ctx, cfg):
    v = Verdict(ctx.name)
    v.fail("link_down", "eth0 has no carrier", "network.check_cable")
    return v.result("fine")


def warning(ctx, cfg):
    v = Verdict(ctx.name)
    v.warn("on_battery", "on battery")
    return v.result("fine")


def sleeper(seconds):
    def run(ctx, cfg):
        time.sleep(seconds)
        return Verdict(ctx.name).result(f"slept {seconds}")
    return run


def crasher(ctx, cfg):
    return {}["missing"]


def blocked():
    """A check that hangs until the test releases it: whoever returns first did not wait for it."""
    release = threading.Event()
    returned = threading.Event()

    def run(ctx, cfg):
        release.wait(30)
        returned.set()
        return Verdict(ctx.name).result("released")
    return run, release, returned


def run(specs, only=(), cfg=None, on_result=None):
    cfg = cfg or c.build({}, {s.name: s.config_type for s in specs})
    return run_checks(specs, cfg, Roots(), only=only, on_result=on_result)


def by_name(results):
    return {r.name: r for r in results}


def test_results_in_registry_order_and_progress_in_completion_order():
    fast_reported = threading.Event()

    def slow(ctx, cfg):
        fast_reported.wait(4)  # finishes after "fast" however the threads are scheduled
        return Verdict(ctx.name).result("slow")

    def progress(r):
        seen.append(r.name)
        if r.name == "fast":
            fast_reported.set()

    specs = [CheckSpec("slow", slow), CheckSpec("fast", ok)]
    seen: list[str] = []
    results = run(specs, on_result=progress)
    assert [r.name for r in results] == ["slow", "fast"]
    assert seen == ["fast", "slow"]


def test_independent_checks_run_concurrently():
    # Each check waits until all four are inside it at once; run one after another, the first
    # would wait in vain, break the barrier and every check would be reported as crashed.
    together = threading.Barrier(4, timeout=4.0)  # below the 5 s check deadline

    def meet(ctx, cfg):
        together.wait()
        return Verdict(ctx.name).result("met")

    results = run([CheckSpec(f"s{i}", meet) for i in range(4)])
    assert [(r.status, r.summary) for r in results] == [(Status.OK, "met")] * 4


def test_timeout_is_unknown_and_does_not_wait_for_the_check():
    hang, release, returned = blocked()
    specs = [CheckSpec("hang", hang, timeout_s=0.3), CheckSpec("fine", ok)]
    t = time.monotonic()
    r = by_name(run(specs))
    elapsed = time.monotonic() - t
    hung_throughout = not returned.is_set()  # the run came back while the check still hung
    release.set()
    assert hung_throughout
    assert elapsed >= 0.3
    assert r["hang"].status is Status.UNKNOWN and r["hang"].reason == "timeout"
    assert "0.3" in r["hang"].summary
    assert r["fine"].status is Status.OK


def test_config_timeout_overrides_spec():
    hang, release, _ = blocked()
    specs = [CheckSpec("hang", hang, timeout_s=30)]
    cfg = c.build({"checks": {"hang": {"timeout_s": 0.2}}}, {"hang": c.CheckConfig})
    try:
        (r,) = run(specs, cfg=cfg)
    finally:
        release.set()
    # The runner's own words and duration name the limit it applied: 0.2 s, not the spec's 30.
    assert r.reason == "timeout" and r.summary == "no answer within 0.2 s"
    assert r.duration_ms == 200


def test_crash_is_isolated():
    (r, other) = run([CheckSpec("bad", crasher), CheckSpec("good", ok)])
    assert r.status is Status.UNKNOWN and r.reason == "check_crashed"
    assert "KeyError" in r.summary and r.hints == ("agent.report_bug",)
    assert other.status is Status.OK


def test_wrong_return_type_is_a_crash():
    (r,) = run([CheckSpec("bad", lambda ctx, cfg: None)])
    assert r.reason == "check_crashed"


def test_dependants_of_a_failure_are_skipped_once():
    specs = [
        CheckSpec("payment_host", ok, depends_on=("network",)),
        CheckSpec("clock_skew", ok, depends_on=("payment_host",)),
        CheckSpec("network", failing),
        CheckSpec("power", ok),
    ]
    r = by_name(run(specs))
    assert r["network"].status is Status.FAIL
    assert r["payment_host"].status is Status.SKIPPED
    assert r["payment_host"].reason == "dependency_failed"
    assert "network failed (link_down)" in r["payment_host"].summary
    assert r["clock_skew"].reason == "dependency_failed"  # transitively, not 'cycle'
    assert r["power"].status is Status.OK


def test_warning_dependency_still_runs_dependant():
    specs = [CheckSpec("b", ok, depends_on=("a",)), CheckSpec("a", warning)]
    r = by_name(run(specs))
    assert r["b"].status is Status.OK


def test_dependant_starts_after_dependency_finished():
    order: list[str] = []
    lock = threading.Lock()

    def rec(name, delay):
        def f(ctx, cfg):
            time.sleep(delay)
            with lock:
                order.append(name)
            return Verdict(ctx.name).result("x")
        return f

    specs = [CheckSpec("b", rec("b", 0), depends_on=("a",)), CheckSpec("a", rec("a", 0.2))]
    run(specs)
    assert order == ["a", "b"]


def test_cycle_is_reported_not_hung():
    specs = [CheckSpec("a", ok, depends_on=("b",)), CheckSpec("b", ok, depends_on=("a",))]
    r = by_name(run(specs))
    assert r["a"].reason == r["b"].reason == "check_crashed"


def test_disabled_checks_are_listed_as_skipped_unless_named():
    specs = [CheckSpec("a", ok), CheckSpec("b", ok, enabled_by_default=False)]
    r = by_name(run(specs))
    assert r["b"].status is Status.SKIPPED and r["b"].reason == "disabled"
    assert [x.name for x in run(specs, only=["b"])] == ["b"]
    assert run(specs, only=["b"])[0].status is Status.OK


def test_plan_honours_config_enable():
    specs = [CheckSpec("a", ok), CheckSpec("b", ok, enabled_by_default=False)]
    cfg = c.build({"checks": {"a": {"enabled": False}, "b": {"enabled": True}}},
                  {"a": c.CheckConfig, "b": c.CheckConfig})
    p = plan(specs, cfg)
    assert [s.name for s in p.run] == ["b"] and [s.name for s in p.disabled] == ["a"]


def test_max_workers_bounds_concurrency():
    active = 0
    peak = 0
    lock = threading.Lock()

    pair = threading.Barrier(2, timeout=4.0)

    def f(ctx, cfg):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        pair.wait()  # two at a time are running however slowly threads are scheduled
        with lock:
            active -= 1
        return Verdict(ctx.name).result("x")

    specs = [CheckSpec(f"c{i}", f) for i in range(6)]
    cfg = c.build({"runner": {"max_workers": 2}}, {s.name: c.CheckConfig for s in specs})
    results = run(specs, cfg=cfg)
    assert peak == 2 and len(results) == 6


def test_duration_is_measured():
    (r,) = run([CheckSpec("s", sleeper(0.15))])
    assert 140 <= r.duration_ms < 150 + 3000  # at least the sleep; the ceiling catches wrong units


def test_result_is_returned_as_is():
    (r,) = run([CheckSpec("n", failing)])
    assert isinstance(r, CheckResult)
    assert r.findings[0].reason == "link_down"
