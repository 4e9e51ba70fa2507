from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.results import CheckResult, Status, Verdict


def test_worst_order_follows_monitoring_plugins():
    assert Status.worst([Status.OK, Status.WARN]) is Status.WARN
    assert Status.worst([Status.WARN, Status.UNKNOWN]) is Status.UNKNOWN
    assert Status.worst([Status.UNKNOWN, Status.FAIL]) is Status.FAIL
    assert Status.worst([Status.SKIPPED]) is Status.OK
    assert Status.worst([]) is Status.OK
    assert [s.exit_code for s in (Status.OK, Status.WARN, Status.FAIL, Status.UNKNOWN)] == \
        [0, 1, 2, 3]


@given(st.lists(st.sampled_from(list(Status))))
def test_worst_is_order_independent(statuses):
    assert Status.worst(statuses) is Status.worst(list(reversed(statuses)))


def test_verdict_picks_first_worst_and_keeps_all_hints():
    v = Verdict("power")
    v.warn("on_battery", "on battery", "power.connect_charger")
    v.fail("battery_critical", "battery 3 %", "power.connect_charger", "power.replace_battery")
    v.fail("battery_unhealthy", "battery dead", "power.replace_battery")
    v.metric("battery_percent", 3)
    r = v.result("ok")
    assert r.status is Status.FAIL and r.reason == "battery_critical"
    assert r.hints == ("power.connect_charger", "power.replace_battery")
    assert [f.reason for f in r.findings] == ["on_battery", "battery_critical",
                                              "battery_unhealthy"]
    assert v.result("x").metrics["battery_percent"] == 3


def test_ok_verdict():
    r = Verdict("x").result("all good")
    assert (r.status, r.reason, r.summary, r.findings) == (Status.OK, "ok", "all good", ())


@pytest.mark.parametrize("bad", ["Link-Down", "", "1abc", "a b"])
def test_reason_codes_must_be_snake_case(bad):
    with pytest.raises(ValueError):
        CheckResult("x", Status.FAIL, bad, "s")


def test_ok_needs_reason_ok():
    with pytest.raises(ValueError):
        CheckResult("x", Status.OK, "link_down", "s")


def test_metrics_are_json_scalars():
    r = CheckResult("x", Status.OK, "ok", "s", {"a_ms": 1.23456, "b": math.nan, "c": "v"})
    assert r.metrics == {"a_ms": 1.235, "b": None, "c": "v"}
    with pytest.raises(TypeError):
        CheckResult("x", Status.OK, "ok", "s", {"a": [1]})
    with pytest.raises(ValueError):
        CheckResult("x", Status.OK, "ok", "s", {"Bad Key": 1})


def test_metrics_are_immutable():
    r = CheckResult("x", Status.OK, "ok", "s", {"a": 1})
    with pytest.raises(TypeError):
        r.metrics["a"] = 2  # type: ignore[index]


def test_hint_ids_are_validated():
    v = Verdict("x")
    with pytest.raises(ValueError):
        v.warn("on_battery", "s", "nodot")


def test_reason_codes_must_be_in_the_catalog():
    with pytest.raises(ValueError, match="not in the catalog"):
        CheckResult("x", Status.FAIL, "made_up_reason", "s")
    with pytest.raises(ValueError, match="not in the catalog"):
        Verdict("x").warn("made_up_reason", "s")
