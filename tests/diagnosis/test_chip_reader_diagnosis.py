"""``posdiag diagnose card-read-failure`` on this machine with the chip reader on pcscd + vpcd:
chip reader absent, pcscd down, a mute card and a blocked card each come out as the most likely
cause, and a card fault (卡片芯片失效) is never blamed on the reader (读卡器故障) or vice versa."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pcscd import READER

from posdiag import schemas
from posdiag.cli import main

READER_CAUSES = {"chip_reader_absent", "pcscd_down"}
CARD_CAUSES = {"chip_card_mute", "chip_card_blocked"}


def diagnose(tmp: Path, capsys, lang: str = "en", **chip: str) -> dict:
    chip.setdefault("readers", f'["{READER}"]')
    lines = [f"{k} = {v}" for k, v in chip.items()]
    cfg = tmp / "posdiag.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp}"\n[outbox]\npath = "{tmp}/o.sqlite"\n'
                   "[checks.chip_reader]\nrequired = true\napdu_timeout_s = 0.5\n"
                   + "\n".join(lines) + "\n")
    main(["diagnose", "card-read-failure", "--json", "--lang", lang, "--config", str(cfg)])
    doc = json.loads(capsys.readouterr().out)
    schemas.validate("diagnosis", doc)
    return doc


def causes(doc: dict) -> list[str]:
    return [c["id"] for c in doc["causes"]]


def test_pcscd_down(tmp_path: Path, capsys, pcscd) -> None:
    doc = diagnose(tmp_path, capsys, socket=f'"{tmp_path}/gone.comm"')
    assert doc["most_likely"]["id"] == "pcscd_down", causes(doc)
    assert not CARD_CAUSES & set(causes(doc))


def test_chip_reader_absent(tmp_path: Path, capsys, pcscd) -> None:
    doc = diagnose(tmp_path, capsys, readers='["ACS ACR39U*"]')
    assert doc["most_likely"]["id"] == "chip_reader_absent", causes(doc)
    assert not CARD_CAUSES & set(causes(doc))


@pytest.mark.parametrize(("card", "cause"), [
    ("mute-card", "chip_card_mute"),
    ("bad-tck", "chip_card_mute"),
    ("silent-after-atr", "chip_card_mute"),
    ("blocked-card", "chip_card_blocked"),
    ("blocked-application", "chip_card_blocked"),
])
def test_card_faults_are_the_card_not_the_reader(tmp_path: Path, capsys, vpcd, card: str,
                                                 cause: str) -> None:
    vpcd(card)
    doc = diagnose(tmp_path, capsys)
    assert doc["most_likely"]["id"] == cause, causes(doc)
    assert not READER_CAUSES & set(causes(doc))


def test_healthy_card_is_no_chip_fault(tmp_path: Path, capsys, vpcd) -> None:
    vpcd("unionpay-debit")
    doc = diagnose(tmp_path, capsys)
    assert not (READER_CAUSES | CARD_CAUSES) & set(causes(doc)), causes(doc)


def test_chinese_cause_title(tmp_path: Path, capsys, vpcd) -> None:
    vpcd("blocked-card")
    doc = diagnose(tmp_path, capsys, lang="zh_CN")
    assert doc["most_likely"]["title"] == "卡片或其支付应用已被发卡行锁定"
