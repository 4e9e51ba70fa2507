"""Texts: both languages complete, every hint id a check can emit has a text in each."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from posdiag.checks import REGISTRY
from posdiag.i18n import LANGS, Texts, catalog, normalize, resolve_lang

CHECKS_DIR = Path(__file__).resolve().parents[2] / "agent" / "checks"
HINT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def hint_literals() -> dict[str, str]:
    """Every string constant in the checks that looks like a hint id of a known area."""
    areas = {k.split(".")[0] for k in catalog("en")["hint"]}
    summaries = set(catalog("en")["summary"])  # summary ids share the area.name shape
    found: dict[str, str] = {}
    for path in CHECKS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and HINT.match(node.value) and node.value.split(".")[0] in areas \
                    and node.value not in summaries:
                found[node.value] = path.name
    return found


def test_catalogs_have_the_same_keys():
    en, zh = catalog("en"), catalog("zh_CN")
    assert set(en) == set(zh)
    for section in en:
        assert set(en[section]) == set(zh[section]), section


@pytest.mark.parametrize("lang", LANGS)
def test_no_empty_texts(lang):
    for section, entries in catalog(lang).items():
        for key, text in entries.items():
            assert text.strip(), f"{lang}: [{section}] {key} is empty"


def test_chinese_texts_are_chinese():
    for section, entries in catalog("zh_CN").items():
        if section == "status" or section == "ui":
            continue
        for key, text in entries.items():
            if section == "summary" and not re.search(r"[A-Za-z]", re.sub(r"{[^}]*}", "", text)):
                continue  # pure composition of other phrases: "{feed}，{battery}"
            assert re.search(r"[\u4e00-\u9fff]", text), f"[{section}] {key} is not translated"


def test_every_hint_used_by_a_check_has_texts():
    used = hint_literals()
    assert len(used) > 20  # the scan must actually find the checks' hints
    missing = {h: f for h, f in used.items() if h not in catalog("en")["hint"]}
    assert not missing


def test_every_check_has_a_description():
    for spec in REGISTRY:
        for lang in LANGS:
            assert spec.name in catalog(lang)["check"], (lang, spec.name)


@pytest.mark.parametrize(("value", "lang"), [
    ("zh_CN.UTF-8", "zh_CN"), ("zh_CN", "zh_CN"), ("zh-cn", "zh_CN"), ("zh", "zh_CN"),
    ("en_US.UTF-8", "en"), ("C", "en"), ("POSIX", "en"), ("de_DE@euro", "en"),
])
def test_normalize(value, lang):
    assert normalize(value) == lang


def test_resolution_order():
    env = {"LANG": "zh_CN.UTF-8", "LC_ALL": "en_US.UTF-8"}
    assert resolve_lang(None, "", env) == "en"  # LC_ALL beats LANG
    assert resolve_lang(None, "zh_CN", env) == "zh_CN"  # config beats the environment
    assert resolve_lang("en", "zh_CN", env) == "en"  # --lang beats the config
    assert resolve_lang(None, "", {}) == "en"


def test_texts_lookup():
    assert Texts("zh_CN").status("fail") == "故障"
    assert Texts("en").hint("agent.report_bug").startswith("This is a posdiag bug")
    assert Texts("xx").lang == "en"


def test_reason_codes_doc_lists_exactly_the_catalog():
    doc = (CHECKS_DIR.parents[1] / "docs" / "reason-codes.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", doc, re.M))
    assert documented == set(catalog("en")["reason"])


def summary_ids_in_code() -> dict[str, str]:
    """Every literal message id given to ``Summary(...)`` anywhere in the package."""
    found: dict[str, str] = {}
    for path in CHECKS_DIR.parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Summary" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                found[node.args[0].value] = path.name
    return found


def test_every_summary_id_in_the_code_has_texts():
    used = summary_ids_in_code()
    assert len(used) > 20
    missing = {k: f for k, f in used.items() if k not in catalog("en")["summary"]}
    assert not missing


def test_summary_templates_take_the_same_arguments_in_every_language():
    from posdiag.summary import OPTIONAL_ARGS, placeholders

    en, zh = catalog("en")["summary"], catalog("zh_CN")["summary"]
    for key, template in en.items():
        assert placeholders(template) - OPTIONAL_ARGS == placeholders(zh[key]) - OPTIONAL_ARGS, key


def test_a_summary_is_english_text_that_can_be_said_in_chinese():
    from posdiag.summary import Summary, from_dict, localized

    s = Summary("power.battery_low", battery=Summary("power.battery", name="BAT0"),
                percent=12.4, limit=20, tail=(Summary("power.state.discharging"),
                                              Summary("power.no_external_online")))
    assert s == "battery BAT0 at 12% (low at 20%), discharging, no external supply online"
    assert localized(s, Texts("zh_CN")) == \
        "电池 BAT0 电量 12%（20% 即为偏低），正在放电，没有接通的外部电源"
    assert localized("plain", Texts("zh_CN")) == "plain"
    again = from_dict(s.to_dict())
    assert again == s and again.localized(Texts("zh_CN")) == s.localized(Texts("zh_CN"))
    assert from_dict({"id": "no.such.id", "args": {}}) is None
    with pytest.raises(KeyError):
        Summary("no.such.id")
