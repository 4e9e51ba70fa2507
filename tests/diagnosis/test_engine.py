"""Scoring and ranking on hand-made check results, and running only a symptom's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from posdiag import config as cfgmod
from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig
from posdiag.diagnosis import UnknownSymptom, diagnose, evaluate, parse
from posdiag.paths import Roots
from posdiag.results import CheckResult, Status, Verdict, known_reasons, skipped

CHECKS = ("power", "system", "network", "printer", "cellular")

CATALOGUE = """
[engine]
threshold = 0.3
order = ["power", "network", "hardware", "host"]

[symptoms.printer]
aliases = ["不出小票"]
checks = ["power", "system", "printer"]
no_fault_steps = ["printer.self_test_page"]
[symptoms.printer.causes]
paper_out = 1.0
battery_empty = 0.5
jam = 1.0
overheating = 1.0
printer_gone = 1.0

[symptoms.network]
checks = ["network", "cellular"]
no_fault_steps = ["host.retry_later"]
[symptoms.network.causes]
no_sim = 1.0
link = 1.0
gateway = 1.0
dns = 1.0

[causes.battery_empty]
area = "power"
steps = ["power.plug_in_now"]
[[causes.battery_empty.rules]]
check = "power"
reason = ["battery_critical"]
weight = 0.9
show = ["battery_percent"]

[causes.no_sim]
area = "network"
steps = ["@evidence", "cellular.reseat_sim"]
[[causes.no_sim.rules]]
check = "cellular"
reason = ["sim_missing"]
weight = 0.9
[[causes.no_sim.rules]]
check = "network"
status = ["ok"]
when = [{ metric = "default_route_iface", op = "!~", value = "wwan*" }]
weight = -0.7

[[causes.no_sim.rules]]
check = "network"
reason = ["link_down"]
hint = "network.check_cellular"
weight = 0.5
corroborates = true

[causes.link]
area = "network"
steps = ["@evidence"]
[[causes.link.rules]]
check = "network"
reason = ["link_down"]
weight = 0.9

[causes.gateway]
area = "network"
steps = ["network.use_dhcp"]
[[causes.gateway.rules]]
check = "network"
reason = ["no_default_route"]
weight = 0.6

[causes.dns]
area = "network"
steps = ["network.set_dns"]
[[causes.dns.rules]]
check = "network"
reason = ["no_dns_servers"]
weight = 0.6

[causes.paper_out]
area = "hardware"
steps = ["printer.load_paper", "@evidence", "printer.reprint"]
[[causes.paper_out.rules]]
check = "printer"
reason = ["paper_out"]
weight = 0.95

[causes.jam]
area = "hardware"
steps = ["printer.clear_cutter"]
[[causes.jam.rules]]
check = "printer"
reason = ["printer_error"]
weight = 0.9
when = [{ metric = "cutter_error", op = "==", value = true }]

[causes.printer_gone]
area = "hardware"
steps = ["printer.check_power_and_cable"]
[[causes.printer_gone.rules]]
check = "printer"
status = ["fail"]
reason = ["no_device"]
weight = 0.95
[[causes.printer_gone.rules]]
check = "printer"
status = ["skipped"]
reason = ["no_device"]
weight = 0.5

[causes.overheating]
area = "hardware"
steps = ["device.cool_down"]
[[causes.overheating.rules]]
check = "system"
reason = ["overheating"]
weight = 0.5
[[causes.overheating.rules]]
check = "power"
when = [{ metric = "battery_temp_c", op = ">=", value = 60 }]
weight = 0.5
show = ["battery_health"]
"""


@pytest.fixture(scope="module")
def cat():
    return parse(CATALOGUE, checks=CHECKS, reasons=known_reasons())


def result(name: str, *findings: tuple[str, str, str, tuple[str, ...]], **metrics: object
           ) -> CheckResult:
    v = Verdict(name)
    for k, value in metrics.items():
        v.metric(k, value)  # type: ignore[arg-type]
    for status, reason, summary, hints in findings:
        v.add(Status(status), reason, summary, *hints)
    return v.result("all fine")


def test_one_matching_rule_scores_relevance_times_weight(cat) -> None:
    d = evaluate(cat, cat.symptoms["printer"], [
        result("power", ("fail", "battery_critical", "battery at 4%", ("power.connect_charger",)),
               battery_percent=4, mains_online=False),
        result("printer"), result("system")])
    assert [(c.id, c.score) for c in d.likely] == [("battery_empty", 0.45)]
    (e,) = d.likely[0].evidence
    assert (e.check, e.status, e.reason, e.summary) == ("power", Status.FAIL,
                                                        "battery_critical", "battery at 4%")
    assert dict(e.metrics) == {"battery_percent": 4}  # what the rule shows, not every metric
    assert e.hints == ("power.connect_charger",)


def test_noisy_or_combines_independent_evidence(cat) -> None:
    d = evaluate(cat, cat.symptoms["printer"], [
        result("system", ("warn", "overheating", "cpu at 80 °C", ("system.cool_down",))),
        result("power", battery_temp_c=61.0, battery_health="Hot"), result("printer")])
    (c,) = d.likely
    assert c.id == "overheating" and c.score == 0.75  # 1 - (1 - .5)(1 - .5)
    assert [dict(e.metrics) for e in c.evidence] == [{}, {"battery_temp_c": 61.0,
                                                          "battery_health": "Hot"}]


def test_ok_results_match_rules_on_metrics_alone(cat) -> None:
    d = evaluate(cat, cat.symptoms["printer"], [result("power", battery_temp_c=59.9),
                                                result("printer"), result("system")])
    assert not d.likely and not d.unlikely
    d = evaluate(cat, cat.symptoms["printer"], [result("power", battery_temp_c=70),
                                                result("printer"), result("system")])
    assert [(c.id, c.score) for c in d.likely] == [("overheating", 0.5)]
    assert d.likely[0].evidence[0].status is Status.OK


def test_metric_conditions_must_hold(cat) -> None:
    error = ("fail", "printer_error", "printer error", ("printer.service",))
    d = evaluate(cat, cat.symptoms["printer"], [result("printer", error, cutter_error=False)])
    assert not d.likely
    d = evaluate(cat, cat.symptoms["printer"], [result("printer", error, cutter_error=True)])
    assert d.most_likely is not None and d.most_likely.id == "jam"
    assert dict(d.most_likely.evidence[0].metrics) == {"cutter_error": True}


def test_every_finding_of_a_result_is_evidence_not_only_the_worst(cat) -> None:
    r = result("printer", ("fail", "cover_open", "cover open", ("printer.close_cover",)),
               ("fail", "paper_out", "no paper", ("printer.load_paper",)))
    assert r.reason == "cover_open"
    d = evaluate(cat, cat.symptoms["printer"], [r])
    assert d.most_likely is not None and d.most_likely.id == "paper_out"


def test_threshold_is_exclusive_and_weak_causes_are_kept_apart(cat) -> None:
    d = evaluate(cat, cat.symptoms["printer"], [
        skipped("printer", "no_device", "no printer found (not required)")])
    assert [(c.id, c.score) for c in d.likely] == [("printer_gone", 0.5)]
    # 0.6 × 0.5 relevance = 0.3: not above the threshold
    cat2 = parse(CATALOGUE.replace("battery_empty = 0.5", "battery_empty = 0.3333")
                 .replace("weight = 0.9\nshow", "weight = 0.9001\nshow"),
                 checks=CHECKS, reasons=known_reasons())
    d = evaluate(cat2, cat2.symptoms["printer"], [
        result("power", ("fail", "battery_critical", "4%", ()))])
    assert not d.likely and [c.id for c in d.unlikely] == ["battery_empty"]
    assert d.unlikely[0].score == 0.3
    assert not d.fault_found and d.most_likely is None


def test_equal_scores_follow_the_troubleshooting_order_then_the_file(cat) -> None:
    d = evaluate(cat, cat.symptoms["network"], [
        result("network", ("fail", "no_dns_servers", "no dns", ("network.check_dns_settings",)),
               ("fail", "no_default_route", "no gateway", ("network.check_gateway",)))])
    assert [c.id for c in d.likely] == ["gateway", "dns"]  # same area, file order
    d = evaluate(cat, cat.symptoms["printer"], [
        result("printer", ("fail", "paper_out", "no paper", ("printer.load_paper",))),
        result("power", ("fail", "battery_critical", "4%", ("power.connect_charger",)))])
    assert [(c.id, c.score) for c in d.likely] == [("paper_out", 0.95), ("battery_empty", 0.45)]
    cat2 = parse(CATALOGUE.replace("weight = 0.95\n\n[causes.jam]", "weight = 0.45\n\n"
                                   "[causes.jam]"), checks=CHECKS, reasons=known_reasons())
    d = evaluate(cat2, cat2.symptoms["printer"], [
        result("printer", ("fail", "paper_out", "no paper", ())),
        result("power", ("fail", "battery_critical", "4%", ()))])
    assert [(c.id, c.score) for c in d.likely] == [("battery_empty", 0.45), ("paper_out", 0.45)]


def test_evidence_against_lowers_a_supported_cause(cat) -> None:
    sim = ("fail", "sim_missing", "no SIM", ("cellular.insert_sim",))
    backup = evaluate(cat, cat.symptoms["network"], [
        result("network", default_route_iface="eth0"), result("cellular", sim)])
    assert not backup.likely
    (weak,) = backup.unlikely
    assert weak.id == "no_sim" and weak.score == 0.27  # 0.9 × (1 - 0.7)
    only_link = evaluate(cat, cat.symptoms["network"], [
        result("network", default_route_iface="wwan0"), result("cellular", sim)])
    assert [(c.id, c.score) for c in only_link.likely] == [("no_sim", 0.9)]
    against_alone = evaluate(cat, cat.symptoms["network"], [
        result("network", default_route_iface="eth0"), result("cellular")])
    assert not against_alone.likely and not against_alone.unlikely


def test_corroboration_adds_to_a_supported_cause_only(cat) -> None:
    down = ("fail", "link_down", "wwan0 down", ("network.check_cellular",))
    alone = evaluate(cat, cat.symptoms["network"], [result("network", down),
                                                    result("cellular")])
    assert [c.id for c in alone.likely] == ["link"]  # no_sim has no evidence of its own
    both = evaluate(cat, cat.symptoms["network"], [
        result("network", down),
        result("cellular", ("fail", "sim_missing", "no SIM", ("cellular.insert_sim",)))])
    assert [(c.id, c.score) for c in both.likely] == [("no_sim", 0.95), ("link", 0.9)]
    # its evidence is shown, but its hints are another cause's advice
    assert [e.check for e in both.likely[0].evidence] == ["cellular", "network"]
    assert both.likely[0].steps == ("cellular.insert_sim", "cellular.reseat_sim")


def test_steps_expand_evidence_hints_in_place_without_repeats(cat) -> None:
    d = evaluate(cat, cat.symptoms["printer"], [result("printer", (
        "fail", "paper_out", "no paper", ("printer.load_paper", "printer.replace_paper_soon")))])
    assert d.likely[0].steps == ("printer.load_paper", "printer.replace_paper_soon",
                                 "printer.reprint")
    d = evaluate(cat, cat.symptoms["network"], [result("network", (
        "fail", "link_down", "eth0 down", ("network.check_cable", "network.check_cable")))])
    assert d.likely[0].steps == ("network.check_cable",)


def test_results_of_checks_the_symptom_does_not_run_are_ignored(cat) -> None:
    d = evaluate(cat, cat.symptoms["network"], [
        result("printer", ("fail", "paper_out", "no paper", ())),
        result("network")])
    assert [r.name for r in d.results] == ["network"] and not d.likely


@pytest.mark.parametrize(("statuses", "exit_code"), [
    ((), 0),
    (("warn",), 1),
    (("fail",), 2),
    (("fail", "warn"), 2),
    (("skipped",), 1),  # a fault found on a skipped result (device not found) is still a fault
])
def test_exit_code_follows_the_evidence_of_the_likely_causes(cat, statuses, exit_code) -> None:
    results = [result("network")]
    reasons = {"warn": "no_dns_servers", "fail": "no_default_route"}
    for s in statuses:
        if s == "skipped":
            results = [skipped("printer", "no_device", "not found")]
            continue
        results.append(result("network", (s, reasons[s], "x", ())))
    sym = cat.symptoms["printer" if "skipped" in statuses else "network"]
    d = evaluate(cat, sym, results)
    assert d.exit_code == exit_code


def test_no_fault_with_a_check_that_could_not_tell_is_unknown(cat) -> None:
    crashed = CheckResult("system", Status.UNKNOWN, "timeout", "no answer within 8 s")
    d = evaluate(cat, cat.symptoms["printer"], [crashed, result("printer"), result("power")])
    assert not d.likely and d.inconclusive == ("system",) and d.exit_code == 3


# --------------------------------------------------------------------------------------------
# Running: only the symptom's checks, through the runner, respecting enabled = false
# --------------------------------------------------------------------------------------------
def fake_check(name: str, finding: tuple[str, str] | None, ran: list[str]) -> CheckSpec:
    def run(ctx: CheckContext, cfg: CheckConfig) -> CheckResult:
        ran.append(name)
        v = Verdict(name)
        if finding:
            v.add(Status(finding[0]), finding[1], f"{name}: {finding[1]}", "agent.report_bug")
        return v.result("fine")
    return CheckSpec(name, run, CheckConfig)


def test_diagnose_runs_only_the_symptoms_enabled_checks(cat) -> None:
    ran: list[str] = []
    specs = [fake_check("power", ("fail", "battery_critical"), ran),
             fake_check("system", None, ran), fake_check("network", None, ran),
             fake_check("printer", ("fail", "paper_out"), ran),
             fake_check("cellular", None, ran)]
    config = cfgmod.build({"checks": {"system": {"enabled": False}}},
                          {s.name: s.config_type for s in specs})
    seen: list[str] = []
    d = diagnose("不出小票", specs, config, Roots(Path("/nonexistent")), catalogue=cat,
                 on_result=lambda r: seen.append(r.name))
    assert sorted(ran) == ["power", "printer"]
    assert [r.name for r in d.results] == ["power", "system", "printer"]  # the symptom's order
    assert (d.results[1].status, d.results[1].reason) == (Status.SKIPPED, "disabled")
    assert sorted(seen) == ["power", "printer", "system"]
    assert [c.id for c in d.likely] == ["paper_out", "battery_empty"]


def test_unknown_symptom_is_an_error_listing_the_known_ones(cat) -> None:
    with pytest.raises(UnknownSymptom, match="known: printer, network"):
        diagnose("coffee-machine", [], cfgmod.build({}, {}), Roots(), catalogue=cat)

