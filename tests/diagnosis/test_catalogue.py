"""The symptom catalogue: the shipped one loads against the registry, and every kind of mistake
in the data is a load error naming the entry."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from posdiag.checks import REGISTRY
from posdiag.diagnosis import CatalogueError, load_catalogue, parse
from posdiag.diagnosis.catalogue import Condition
from posdiag.results import known_reasons

CHECKS = frozenset(s.name for s in REGISTRY)
SYMPTOMS = ("card-read-failure", "transaction-timeout", "transaction-declined",
            "terminal-status-abnormal", "alarm", "printer", "power")

MINIMAL = """
[engine]
threshold = 0.3
order = ["power", "network", "hardware"]

[symptoms.power]
aliases = ["不开机"]
checks = ["power"]
no_fault_steps = ["power.hold_power_button"]
[symptoms.power.causes]
battery_empty = 1.0

[causes.battery_empty]
area = "power"
steps = ["power.plug_in_now"]
[[causes.battery_empty.rules]]
check = "power"
reason = ["battery_critical"]
weight = 0.9
"""


def load(text: str):
    return parse(text, checks=CHECKS, reasons=known_reasons())


def test_shipped_catalogue_loads_against_the_registry() -> None:
    cat = load_catalogue()
    assert tuple(cat.symptoms) == SYMPTOMS
    assert cat.order == ("power", "network", "card", "software", "time", "hardware", "host",
                         "service")
    assert 0 < cat.threshold < 1


def test_every_check_a_symptom_or_rule_names_is_registered() -> None:
    cat = load_catalogue()
    named = {c for s in cat.symptoms.values() for c in s.checks}
    named |= {r.check for c in cat.causes.values() for r in c.rules}
    assert named <= CHECKS
    # the device checks are part of the diagnosis, not optional extras
    assert {"card_reader", "contactless", "printer", "cellular"} <= named


@pytest.mark.parametrize(("name", "symptom"), [
    ("刷卡失败", "card-read-failure"), ("刷不了卡", "card-read-failure"),
    ("读卡失败", "card-read-failure"), ("交易超时", "transaction-timeout"),
    ("交易被拒绝", "transaction-declined"), ("交易拒绝", "transaction-declined"),
    ("用户异常", "terminal-status-abnormal"), ("用户状态异常", "terminal-status-abnormal"),
    ("账户异常", "terminal-status-abnormal"), ("报警", "alarm"), ("显示报警", "alarm"),
    ("屏幕乱码", "alarm"), ("语音提示异常", "alarm"), ("打印机缺纸", "printer"),
    ("不出小票", "printer"), ("不开机", "power"), ("电量不足", "power"),
    ("Card-Read-Failure", "card-read-failure"), (" power ", "power"),
    ("transaction_timeout", "transaction-timeout"),
])
def test_symptoms_are_found_by_id_and_by_the_words_merchants_use(name: str,
                                                                 symptom: str) -> None:
    found = load_catalogue().find(name)
    assert found is not None and found.id == symptom


def test_unknown_symptom_is_not_found() -> None:
    assert load_catalogue().find("printer-on-fire") is None


def test_every_cause_can_be_reached_from_a_symptom_it_is_listed_for() -> None:
    cat = load_catalogue()
    for sym in cat.symptoms.values():
        for cid in sym.causes:
            assert any(r.check in sym.checks for r in cat.causes[cid].rules), (sym.id, cid)


def test_schema_lists_the_catalogue_areas() -> None:
    schema = json.loads(resources.files("posdiag.schema").joinpath("diagnosis.json")
                        .read_text("utf-8"))
    assert tuple(schema["$defs"]["cause"]["properties"]["area"]["enum"]) == \
        load_catalogue().order


def test_minimal_catalogue_parses() -> None:
    cat = load(MINIMAL)
    assert cat.find("不开机").id == "power"
    rule = cat.causes["battery_empty"].rules[0]
    assert rule.reasons == {"battery_critical"} and rule.weight == 0.9


@pytest.mark.parametrize(("old", "new", "words"), [
    ('check = "power"\nreason', 'check = "powr"\nreason', "rules[0].check: unknown check 'powr'"),
    ('reason = ["battery_critical"]', 'reason = ["battery_critcal"]',
     "reason[0]: unknown reason code 'battery_critcal'"),
    ("battery_empty = 1.0", "battery_empty = 1.0\nbattery_gone = 1.0",
     "causes.battery_gone: unknown cause"),
    ('area = "power"', 'area = "electricity"', "area: 'electricity' is not in engine.order"),
    ("weight = 0.9", "weight = 1.5", "weight must be in -1…1"),
    ("weight = 0.9", "weight = -0.5", "at least one rule with a positive weight"),
    ("weight = 0.9", "weight = 0.9\ncorroborates = true", "does not only corroborate"),
    ("weight = 0.9", "weight = 0.9\ncorroborates = 1", "corroborates: must be true or false"),
    ("weight = 0.9", "weight = 0.9\nwhen = [{ metric = \"battery_percent\", op = \"=<\", "
                     "value = 5 }]", "operator '=<' is not one of"),
    ("weight = 0.9", "weight = 0.9\nwhen = [{ metric = \"battery_percent\", op = \"<\", "
                     "value = \"low\" }]", "operator '<' needs a number"),
    ('reason = ["battery_critical"]\n', "", "a rule needs a reason or a metric condition"),
    ("weight = 0.9", "weight = 0.9\nstatus = [\"broken\"]", "'broken' is not a status"),
    ("weight = 0.9", "weight = 0.9\nweigth = 1", "rules[0].weigth: unknown key"),
    ('checks = ["power"]', 'checks = ["power", "toaster"]', "checks[1]: unknown check 'toaster'"),
    ('checks = ["power"]', 'checks = ["system"]', "could never be found"),
    ('aliases = ["不开机"]', 'aliases = ["不开机", "不开机"]', "lists a value twice"),
    ("threshold = 0.3", "threshold = 1.3", "threshold: must be between 0 and 1"),
    ('steps = ["power.plug_in_now"]', 'steps = ["plug it in"]', "is not a text id"),
    ("battery_empty = 1.0", "battery_empty = 0", "relevance must be above 0"),
    ("[symptoms.power]\n", "[symptoms.Power_Off]\n", "symptom id is lower-case words"),
])
def test_mistakes_in_the_data_are_load_errors_naming_the_entry(old: str, new: str,
                                                               words: str) -> None:
    assert old in MINIMAL
    with pytest.raises(CatalogueError) as e:
        load(MINIMAL.replace(old, new, 1))
    assert words in str(e.value)


def test_a_cause_no_symptom_lists_is_an_error() -> None:
    extra = MINIMAL + """
[causes.mains_lost]
area = "power"
steps = ["power.check_adapter"]
[[causes.mains_lost.rules]]
check = "power"
reason = ["on_battery"]
weight = 0.6
"""
    with pytest.raises(CatalogueError, match=r"causes\.mains_lost: no symptom lists this cause"):
        load(extra)


def test_an_alias_naming_two_symptoms_is_an_error() -> None:
    extra = MINIMAL + """
[symptoms.alarm]
aliases = ["不开机"]
checks = ["power"]
no_fault_steps = ["device.restart_terminal"]
[symptoms.alarm.causes]
battery_empty = 0.5
"""
    with pytest.raises(CatalogueError, match="alias '不开机' also names symptom power"):
        load(extra)


def test_not_toml_is_an_error() -> None:
    with pytest.raises(CatalogueError, match="not valid TOML"):
        load("[engine\n")


@pytest.mark.parametrize(("op", "value", "measured", "holds"), [
    ("<=", 5, 4, True), ("<=", 5, 5.0, True), ("<", 5, 5, False), (">", -85, -70, True),
    (">=", 1000, None, False), ("<", 5, "low", False), ("<", 1, True, False),
    ("==", True, True, True), ("==", True, 1, False), ("!=", True, False, True),
    ("!=", True, None, False), ("==", "Dead", "Dead", True), ("in", ("Hot", "Overheat"), "Hot",
                                                              True),
    ("in", ("Hot",), "Good", False), ("~", "wwan*", "wwan0", True), ("!~", "wwan*", "eth0", True),
    ("!~", "wwan*", "wwan0", False), ("~", "wwan*", 3, False),
])
def test_condition_operators(op: str, value: object, measured: object, holds: bool) -> None:
    assert Condition("m", op, value).holds(measured) is holds  # type: ignore[arg-type]


def test_condition_globs_select_metrics() -> None:
    cond = Condition("*_tcp_ms", ">", 1000)
    assert cond.matching({"acquirer_tcp_ms": 1500.0, "backup_tcp_ms": 20.0,
                          "acquirer_tls_ms": 3000.0}) == {"acquirer_tcp_ms": 1500.0}
