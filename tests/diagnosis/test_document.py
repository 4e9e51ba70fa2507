"""The diagnosis document against its schema (posdiag.diagnosis/1), both verdicts, both
languages, and the schema's own rules."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import jsonschema
import pytest

from posdiag import schemas
from posdiag.diagnosis import SCHEMA_ID, document, evaluate, load_catalogue
from posdiag.i18n import LANGS, Texts
from posdiag.results import CheckResult, Status, Verdict

NOW = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


def paper_out() -> list[CheckResult]:
    v = Verdict("printer")
    v.metric("paper_end", True)
    v.fail("paper_out", "printer is out of paper", "printer.load_paper")
    return [v.result(""), CheckResult("power", Status.OK, "ok", "on mains"),
            CheckResult("system", Status.OK, "ok", "fine")]


def build(results: list[CheckResult], lang: str = "en") -> dict:
    cat = load_catalogue()
    d = evaluate(cat, cat.symptoms["printer"], results)
    return document(d, Texts(lang), terminal_id="T-0001", boot_id=None, now=NOW)


@pytest.mark.parametrize("lang", LANGS)
def test_fault_found_document(lang: str) -> None:
    doc = build(paper_out(), lang)
    schemas.validate("diagnosis", doc)
    assert doc["schema"] == SCHEMA_ID and doc["generated_at"] == "2024-05-01T08:30:15Z"
    assert doc["verdict"] == "fault_found" and doc["status"] == "fail" and doc["exit_code"] == 2
    cause = doc["causes"][0]
    assert (cause["rank"], cause["id"], cause["area"], cause["score"]) == \
        (1, "printer_paper_out", "hardware", 0.95)
    assert doc["most_likely"] == {"id": "printer_paper_out", "title": cause["title"],
                                  "score": 0.95}
    assert [s["n"] for s in cause["steps"]] == [1, 2, 3]
    assert cause["steps"][0]["id"] == "printer.load_paper"
    assert cause["evidence"][0]["metrics"] == {"paper_end": True}
    assert doc["no_fault_steps"] == []
    if lang == "zh_CN":
        assert cause["title"] == "打印机缺纸" and doc["symptom"]["name"] == "打印机不出小票"


@pytest.mark.parametrize("lang", LANGS)
def test_no_fault_document(lang: str) -> None:
    ok = [CheckResult(n, Status.OK, "ok", "fine") for n in ("power", "system", "printer")]
    doc = build(ok, lang)
    schemas.validate("diagnosis", doc)
    assert doc["verdict"] == "no_fault_found" and doc["exit_code"] == 0
    assert doc["causes"] == [] and doc["most_likely"] is None
    assert [s["id"] for s in doc["no_fault_steps"]] == list(
        load_catalogue().symptoms["printer"].no_fault_steps)


@pytest.mark.parametrize(("path", "value"), [
    (("verdict",), "no_fault_found"),  # but causes are listed
    (("exit_code",), 0),  # a fault found exits non-zero
    (("causes", 0, "area"), "kitchen"),
    (("causes", 0, "evidence", 0, "weight"), 0),
    (("causes", 0, "steps"), []),
    (("symptom", "id"), "Printer"),
    (("lang",), "fr"),
])
def test_schema_rejects_inconsistent_documents(path: tuple, value: object) -> None:
    doc = copy.deepcopy(build(paper_out()))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate("diagnosis", doc)


def test_schema_is_shipped_and_resolvable_with_the_others() -> None:
    assert "diagnosis" in schemas.available()
    assert schemas.load("diagnosis")["$id"] == "urn:posdiag:schema:diagnosis:1"
