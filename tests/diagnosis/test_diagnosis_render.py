"""The text view: ranked causes with evidence and numbered steps, the most likely cause last,
lines kept to the terminal width in both languages."""

from __future__ import annotations

import io

import pytest

from posdiag.diagnosis import evaluate, load_catalogue
from posdiag.diagnosis.render import render, render_symptoms
from posdiag.i18n import LANGS, Texts
from posdiag.render import width
from posdiag.results import CheckResult, Status, Verdict, skipped


def card_terminal() -> list[CheckResult]:
    v = Verdict("card_reader")
    v.metric("port", "/dev/ttyUSB0")
    v.fail("checksum_error", "card reader answer broke the protocol (checksum) on /dev/ttyUSB0",
           "card_reader.check_connection")
    return [CheckResult("power", Status.OK, "ok", "on mains"), v.result(""),
            skipped("contactless", "no_device", "no contactless reader found on USB"),
            CheckResult("system", Status.UNKNOWN, "timeout", "no answer within 8 s"),
            CheckResult("software", Status.OK, "ok", "fine")]


def text(lang: str, results: list[CheckResult]) -> str:
    cat = load_catalogue()
    d = evaluate(cat, cat.symptoms["card-read-failure"], results)
    out = io.StringIO()
    render(d, Texts(lang), out, terminal_id="T-0001")
    return out.getvalue()


@pytest.mark.parametrize("lang", LANGS)
def test_causes_in_rank_order_with_numbered_steps_and_the_verdict_last(lang: str) -> None:
    out = text(lang, card_terminal())
    lines = out.rstrip().splitlines()
    first = next(i for i, x in enumerate(lines) if x.startswith("1. "))
    second = next(i for i, x in enumerate(lines) if x.startswith("2. "))
    assert first < second
    t = Texts(lang)
    title = t.get("cause", "reader_comm_error")
    assert lines[first].startswith(f"1. {title}  (")
    assert lines[-1] == f"{t.ui('diag_most_likely')}: {title}"
    assert "port=/dev/ttyUSB0" in out
    assert f"{t.ui('diag_inconclusive')}: system" in out
    assert all(width(x) <= 96 for x in lines if not x.startswith(t.ui("diag_checked"))), out


def test_no_fault_lists_the_symptoms_own_next_steps() -> None:
    ok = [CheckResult(n, Status.OK, "ok", "fine")
          for n in ("power", "system", "card_reader", "contactless", "software")]
    out = text("zh_CN", ok)
    assert "未发现故障" in out and "1. 换一张卡试试" in out
    assert out.rstrip().splitlines()[-1] == "最可能的原因: 终端上未发现（未发现故障）"


def test_symptom_list_shows_ids_chinese_names_and_aliases() -> None:
    out = io.StringIO()
    render_symptoms(load_catalogue(), Texts("en"), out)
    text_ = out.getvalue()
    assert "card-read-failure" in text_ and "Card cannot be read — 刷卡失败" in text_
    assert "also: 刷不了卡, 读卡失败" in text_
