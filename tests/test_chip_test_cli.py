"""``posdiag chip-test`` as a real subprocess against pcscd + vpcd: a card is inserted after the
prompt; per-step verdicts in English and Chinese, --json against its schema, exit codes; and
card data (a published test PAN in the card's records, FCI and label) never comes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pcscd import READER
from posdiag_process import Finished, PosdiagProcess

from posdiag import chip_test, schemas
from posdiag.i18n import Texts

PAN = "4111111111111111"
SECRETS = (PAN, "4111 1111 1111 1111", "D28122011234567890", "TESTER/LEAKCHECK",
           "4111111111111111D2812201", "5A084111111111111111")


def config(tmp: Path) -> Path:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    path = tmp / "posdiag.toml"
    path.write_text(f'[terminal]\nid = "T-CHIP"\n[paths]\nstate_dir = "{state}"\n'
                    f'[outbox]\npath = "{state}/outbox.sqlite"\n'
                    f'[checks.chip_reader]\nreaders = ["{READER}"]\napdu_timeout_s = 0.5\n')
    return path


def chip_through_cli(tmp: Path, vpcd, card: str | None, *args: str,
                     lang: str = "en") -> Finished:
    proc = PosdiagProcess("chip-test", "-vv", "--config", str(config(tmp)), "--lang", lang,
                          "--timeout", "15" if card else "1", *args)
    proc.wait_for_stderr(chip_test.prompt(Texts(lang), 15 if card else 1))
    if card:
        vpcd(card)
    return proc.finish(timeout_s=30)


def test_json_visa_credit(tmp_path: Path, vpcd) -> None:
    done = chip_through_cli(tmp_path, vpcd, "visa-credit", "--json")
    assert done.returncode == 0, done
    doc = json.loads(done.stdout)
    schemas.validate("chip_test", doc)
    assert doc["outcome"] == "ok" and doc["brand"] == "Visa" and doc["protocol"] == "T=1"
    assert [s["step"] for s in doc["steps"]] == list(chip_test.STEPS)
    assert all(s["status"] == "ok" for s in doc["steps"])
    assert doc["applications"][0]["aid"] == "A0000000031010"


@pytest.mark.parametrize(("card", "step", "reason"), [
    ("blocked-card", "selection", "card_blocked"),
    ("blocked-application", "selection", "card_app_blocked"),
    ("mute-card", "atr", "card_mute"),
    ("bad-tck", "atr", "card_atr_invalid"),
])
def test_json_card_problems_exit_1(tmp_path: Path, vpcd, card: str, step: str,
                                   reason: str) -> None:
    done = chip_through_cli(tmp_path, vpcd, card, "--json")
    assert done.returncode == 1, done
    doc = json.loads(done.stdout)
    schemas.validate("chip_test", doc)
    failed = [s for s in doc["steps"] if s["status"] == "fail"]
    assert [(s["step"], s["reason"]) for s in failed] == [(step, reason)]
    later = chip_test.STEPS[chip_test.STEPS.index(step) + 1:]
    assert all(s["status"] == "skipped" for s in doc["steps"] if s["step"] in later)


def test_no_card_exit_2(tmp_path: Path, vpcd) -> None:
    done = chip_through_cli(tmp_path, vpcd, None, "--json")
    assert done.returncode == 2, done
    doc = json.loads(done.stdout)
    schemas.validate("chip_test", doc)
    assert doc["outcome"] == "no_card" and doc["steps"] == []


def test_text_in_chinese(tmp_path: Path, vpcd) -> None:
    done = chip_through_cli(tmp_path, vpcd, "blocked-card", lang="zh_CN")
    assert done.returncode == 1
    assert "芯片卡测试" in done.stdout and "卡片已锁定" in done.stdout
    assert "发卡银行" in done.stdout  # the hint, in Chinese


def test_text_in_english(tmp_path: Path, vpcd) -> None:
    done = chip_through_cli(tmp_path, vpcd, "unionpay-debit")
    assert done.returncode == 0, done
    assert "UnionPay" in done.stdout and "the card and the reader work" in done.stdout


def test_pcscd_not_running_is_a_reader_error(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.write_text(cfg.read_text() + f'socket = "{tmp_path}/none.comm"\n')
    proc = tmp_path / "proc"
    proc.mkdir()
    done = PosdiagProcess("chip-test", "--json", "--config", str(cfg), "--procfs",
                          str(proc)).finish()
    assert done.returncode == 2
    doc = json.loads(done.stdout)
    schemas.validate("chip_test", doc)
    assert doc["reason"] == "pcscd_not_running" and doc["hints"] == ["chip_reader.start_pcscd"]


@pytest.mark.parametrize("mode", [("--json",), ()], ids=["json", "text"])
def test_chip_test_never_shows_card_data(tmp_path: Path, vpcd, mode: tuple[str, ...]) -> None:
    done = chip_through_cli(tmp_path, vpcd, "visa-credit-card-data", *mode)
    assert done.returncode == 0, done  # the test ran through: Visa found by the PPSE
    assert "Visa" in done.stdout
    places = {"stdout": done.stdout, "stderr": done.stderr}
    places |= {str(f): f.read_bytes().decode("latin-1") for f in tmp_path.rglob("*")
               if f.is_file()}
    leaked = [f"{s!r} in {where}" for s in SECRETS for where, text in places.items()
              if s.lower() in text.lower()]
    assert not leaked


def test_chip_test_sends_no_read_record(vpcd, tmp_path: Path) -> None:
    done = PosdiagProcess("chip-test", "--json", "--config", str(config(tmp_path)),
                          "--timeout", "15")
    done.wait_for_stderr(chip_test.prompt(Texts("en"), 15))
    card = vpcd("visa-credit-card-data")
    finished = done.finish(timeout_s=30)
    assert finished.returncode == 0
    assert card.commands and all(c[1] in (0xA4, 0xC0) for c in card.commands)


def test_selftest_with_that_card_in_never_shows_card_data(tmp_path: Path, vpcd) -> None:
    vpcd("visa-credit-card-data")
    done = PosdiagProcess("selftest", "-vv", "--json", "--check", "chip_reader", "--config",
                          str(config(tmp_path))).finish()
    (r,) = json.loads(done.stdout)["checks"]
    assert r["status"] == "ok" and r["metrics"]["application_brand"] == "Visa", r
    assert r["metrics"]["application_label"] is None or PAN not in r["metrics"]["application_label"]
    text = done.stdout + done.stderr
    assert not [s for s in SECRETS if s.lower() in text.lower()]
