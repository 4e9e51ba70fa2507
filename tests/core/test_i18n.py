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
    found: dict[str, str] = {}
    for path in CHECKS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and HINT.match(node.value) and node.value.split(".")[0] in areas:
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
