"""The MQTT ``diagnose`` command returns the same document as ``posdiag diagnose --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posdiag import schemas
from posdiag.cli import main
from posdiag.diagnosis import diagnose_remote
from posdiag.service import payloads
from posdiag.service.commands import Command, CommandRejected
from posdiag.service.daemon import Daemon

FIX = Path(__file__).resolve().parents[2] / "hardware-fixtures"


@pytest.fixture
def trees(healthy_rootfs: Path) -> dict[str, str]:
    return {"sysfs": str(FIX / "sysfs/battery-discharging-low"),
            "procfs": str(FIX / "procfs/healthy-terminal"),
            "rootfs": str(healthy_rootfs)}


def make_config(tmp_path: Path, lang: str = "") -> Path:
    path = tmp_path / "posdiag.toml"
    path.write_text(f'[terminal]\nid = "T-REMOTE"\nlang = "{lang}"\n'
                    f'[outbox]\npath = "{tmp_path / "outbox.sqlite"}"\n')
    return path


def without_time(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc.pop("generated_at")
    for check in doc["checks"]:
        check.pop("duration_ms")
    return doc


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_same_document_as_the_cli(trees: dict[str, str], tmp_path: Path, capsys, monkeypatch,
                                  lang: str) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    cfg = make_config(tmp_path)
    daemon = Daemon(cfg, dict(trees))
    remote = diagnose_remote(daemon, {"symptom": "power", "lang": lang})
    argv = ["diagnose", "power", "--json", "--lang", lang, "--config", str(cfg)]
    for key, value in trees.items():
        argv += [f"--{key}", value]
    main(argv)
    local = json.loads(capsys.readouterr().out)
    assert without_time(remote) == without_time(local)
    schemas.validate("diagnosis", remote)
    assert remote["most_likely"]["id"] == "battery_empty"


def test_the_daemon_answers_diagnose_with_a_valid_reply(trees: dict[str, str],
                                                        tmp_path: Path) -> None:
    daemon = Daemon(make_config(tmp_path), dict(trees))
    result = daemon._diagnose(Command("diagnose", {"symptom": "电量不足"}))
    reply = payloads.reply(daemon.config.terminal_id, "diagnose", result=result)
    schemas.validate("reply", reply)
    assert reply["result"]["symptom"]["id"] == "power"


def test_language_comes_from_the_command_then_the_config_never_the_service_locale(
        trees: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LC_ALL", "zh_CN.UTF-8")
    daemon = Daemon(make_config(tmp_path), dict(trees))
    assert diagnose_remote(daemon, {"symptom": "power"})["lang"] == "en"
    zh = Daemon(make_config(tmp_path, "zh_CN"), dict(trees))
    doc = diagnose_remote(zh, {"symptom": "power"})
    assert doc["lang"] == "zh_CN" and doc["most_likely"]["title"] == "电池电量不足"
    assert diagnose_remote(zh, {"symptom": "power", "lang": "en"})["lang"] == "en"


def test_unknown_symptom_is_rejected_with_its_code(trees: dict[str, str], tmp_path: Path) -> None:
    daemon = Daemon(make_config(tmp_path), dict(trees))
    with pytest.raises(CommandRejected) as e:
        diagnose_remote(daemon, {"symptom": "coffee-machine"})
    assert e.value.code == "unknown_symptom" and "card-read-failure" in e.value.message
