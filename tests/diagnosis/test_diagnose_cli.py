"""``posdiag diagnose``: listing, Chinese aliases, text and JSON output, languages, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posdiag import schemas
from posdiag.cli import EX_USAGE, main

FIX = Path(__file__).resolve().parents[2] / "hardware-fixtures"


@pytest.fixture
def healthy(healthy_rootfs: Path) -> list[str]:
    return ["--sysfs", str(FIX / "sysfs/healthy-terminal"),
            "--procfs", str(FIX / "procfs/healthy-terminal"), "--rootfs", str(healthy_rootfs)]


@pytest.fixture
def on_battery(healthy: list[str]) -> list[str]:
    return ["--sysfs", str(FIX / "sysfs/battery-discharging-low"), *healthy[2:]]


@pytest.fixture
def config(tmp_path: Path) -> list[str]:
    path = tmp_path / "posdiag.toml"
    path.write_text('[terminal]\nid = "T-DIAG"\n')
    return ["--config", str(path)]


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)


def test_without_a_symptom_lists_them_with_their_chinese_names(capsys, config) -> None:
    assert main(["diagnose", *config]) == 0
    out = capsys.readouterr().out
    for sid, zh in (("card-read-failure", "刷卡失败"), ("transaction-timeout", "交易超时"),
                    ("transaction-declined", "交易被拒绝"),
                    ("terminal-status-abnormal", "用户状态异常"), ("alarm", "显示报警"),
                    ("printer", "打印机不出小票"), ("power", "不开机或电量不足")):
        line = next(x for x in out.splitlines() if x.strip().startswith(sid))
        assert zh in line
    assert "刷不了卡" in out  # aliases too


def test_symptom_list_as_json(capsys, config) -> None:
    assert main(["diagnose", "--json", *config]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows][:2] == ["card-read-failure", "transaction-timeout"]
    assert rows[0]["name_zh_CN"] == "刷卡失败" and "读卡失败" in rows[0]["aliases"]


def test_text_output_ranks_causes_with_evidence_and_ends_with_the_most_likely(on_battery, capsys,
                                                                             config) -> None:
    code = main(["diagnose", "power", *on_battery, *config])
    out = capsys.readouterr().out
    lines = out.rstrip().splitlines()
    assert lines[-1] == "Most likely cause: Battery almost empty"
    assert "1. Battery almost empty  (score 0.75)" in out
    assert "[power] WARN battery_low: battery BAT0 at 12% (low at 20%)" in out
    assert "battery_percent=12, battery_status=Discharging, mains_online=false" in out
    assert "1. Plug the terminal into its charger and a working outlet now." in out
    assert code == 1  # the evidence is a warning


def test_chinese_alias_and_language(on_battery, capsys, config) -> None:
    code = main(["diagnose", "电量不足", "--lang", "zh_CN", *on_battery, *config])
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == "最可能的原因: 电池电量不足"
    assert "battery_low: 电池 BAT0 电量 12%（20% 即为偏低）" in out
    assert "1. 立即把终端接上充电器，并插到有电的插座上。" in out
    assert code == 1


def test_language_from_the_environment_and_the_config(on_battery, capsys, config, tmp_path,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    main(["diagnose", "power", *on_battery, *config])
    assert "最可能的原因" in capsys.readouterr().out
    cfg = tmp_path / "en.toml"
    cfg.write_text('[terminal]\nlang = "en"\n')
    main(["diagnose", "power", *on_battery, "--config", str(cfg)])
    assert "Most likely cause" in capsys.readouterr().out  # the config beats LANG


def test_no_fault_found_says_what_to_try_and_exits_0(healthy, capsys, config) -> None:
    assert main(["diagnose", "power", *healthy, *config]) == 0
    out = capsys.readouterr().out
    assert "No fault found" in out and "What to try next:" in out
    assert out.rstrip().splitlines()[-1] == \
        "Most likely cause: none found on the terminal (no fault found)"


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_json_is_one_document_valid_against_the_schema(on_battery, capsys, config, lang) -> None:
    code = main(["diagnose", "power", "--json", "--lang", lang, *on_battery, *config])
    doc = json.loads(capsys.readouterr().out)
    schemas.validate("diagnosis", doc)
    assert doc["schema"] == "posdiag.diagnosis/1" and doc["terminal_id"] == "T-DIAG"
    assert doc["lang"] == lang and doc["exit_code"] == code == 1
    assert doc["most_likely"]["id"] == "battery_empty"
    assert [c["name"] for c in doc["checks"]] == ["power", "system"]  # only what it needs
    (evidence,) = doc["causes"][0]["evidence"]
    assert evidence["metrics"]["battery_percent"] == 12


def test_unknown_symptom_is_a_usage_error(capsys, config) -> None:
    assert main(["diagnose", "coffee-machine", *config]) == EX_USAGE
    err = capsys.readouterr().err
    assert "unknown symptom 'coffee-machine'" in err and "card-read-failure" in err
