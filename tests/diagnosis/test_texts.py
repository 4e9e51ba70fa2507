"""Texts of the diagnosis: every symptom, cause and step in both languages, and every hint id a
check can emit resolves in both (a missing translation fails here, never a silent fallback)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from posdiag.diagnosis import load_catalogue
from posdiag.diagnosis.catalogue import problems_with_texts
from posdiag.diagnosis.document import step_text
from posdiag.i18n import LANGS, Texts, catalog

REPO = Path(__file__).resolve().parents[2]
HINT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("lang", LANGS)
def test_every_symptom_cause_and_step_has_a_text(lang: str) -> None:
    assert list(problems_with_texts(load_catalogue(), catalog(lang))) == []


def test_the_check_also_finds_a_missing_text() -> None:
    cat = load_catalogue()
    texts = {k: dict(v) for k, v in catalog("zh_CN").items()}
    del texts["cause"]["battery_empty"]
    del texts["step"]["power.plug_in_now"]
    del texts["symptom"]["alarm"]
    assert sorted(problems_with_texts(cat, texts)) == [
        "[cause] battery_empty", "[step] power.plug_in_now", "[symptom] alarm"]


def test_diagnosis_files_define_the_same_keys_in_both_languages() -> None:
    import tomllib

    folder = REPO / "agent" / "locale"
    en = tomllib.loads((folder / "en.diagnosis.toml").read_text("utf-8"))
    zh = tomllib.loads((folder / "zh_CN.diagnosis.toml").read_text("utf-8"))
    assert set(en) == set(zh) == {"ui", "symptom", "cause", "step"}
    for section in en:
        assert set(en[section]) == set(zh[section]), section
    for section in ("symptom", "cause", "step"):
        for key, text in zh[section].items():
            assert CJK.search(text), f"zh_CN [{section}] {key} is not Chinese"


def test_every_step_text_is_used_by_the_catalogue() -> None:
    used = load_catalogue().step_ids()
    assert set(catalog("en")["step"]) - used == set()


def test_step_ids_and_hint_ids_do_not_collide() -> None:
    # A step id resolves in [step] first, then [hint]: the same id in both would hide one.
    for lang in LANGS:
        assert not set(catalog(lang)["step"]) & set(catalog(lang)["hint"])


def test_steps_may_reuse_check_hints() -> None:
    t = Texts("zh_CN")
    assert step_text(t, "printer.load_paper") == t.hint("printer.load_paper")
    assert step_text(t, "power.plug_in_now") == catalog("zh_CN")["step"]["power.plug_in_now"]


def test_chinese_symptom_names_are_accepted_aliases() -> None:
    cat = load_catalogue()
    zh = catalog("zh_CN")["symptom"]
    for sid, symptom in cat.symptoms.items():
        assert zh[sid] in symptom.aliases, sid
        found = cat.find(zh[sid])
        assert found is not None and found.id == sid


def check_hint_literals() -> dict[str, str]:
    """Every string constant in the checks shaped like a hint id, whatever its area."""
    found: dict[str, str] = {}
    summaries = set(catalog("en")["summary"])  # summary ids have the same shape
    for path in sorted((REPO / "agent" / "checks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and HINT.match(node.value) and node.value not in summaries:
                found[node.value] = path.name
    return found


def test_every_hint_id_a_check_can_emit_resolves_in_both_languages() -> None:
    used = check_hint_literals()
    assert {"card_reader.check_connection", "printer.load_paper", "cellular.insert_sim",
            "contactless.check_antenna", "power.connect_charger"} <= set(used)
    for lang in LANGS:
        missing = {h: f for h, f in used.items() if h not in catalog(lang)["hint"]}
        assert not missing, (lang, missing)
