"""The command line as a technician and a script use it: exit codes, JSON, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from posdiag import __version__
from posdiag.report import schema

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "hardware-fixtures"
HEALTHY = ["--sysfs", str(FIX / "sysfs/healthy-terminal"),
           "--procfs", str(FIX / "procfs/healthy-terminal"),
           "--rootfs", str(FIX / "rootfs/healthy-terminal")]


def posdiag(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    e = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "posdiag", *args], capture_output=True,
                          text=True, env=e, timeout=timeout)


def config_file(tmp_path: Path, text: str) -> str:
    f = tmp_path / "posdiag.toml"
    f.write_text(text)
    return str(f)


def test_version():
    p = posdiag("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"posdiag {__version__}"


def test_usage_error_is_64_not_a_status_code():
    p = posdiag("selftest", "--no-such-flag")
    assert p.returncode == 64 and "usage" in p.stderr
    p = posdiag("frobnicate")
    assert p.returncode == 64


def test_unknown_check_name(tmp_path):
    p = posdiag("selftest", "--config", config_file(tmp_path, ""), "--check", "nosuch")
    assert p.returncode == 64
    assert "unknown check 'nosuch'" in p.stderr and "Traceback" not in p.stderr


def test_missing_root_dir(tmp_path):
    p = posdiag("selftest", "--config", config_file(tmp_path, ""), "--sysfs", "/nonexistent/x")
    assert p.returncode == 64 and "--sysfs /nonexistent/x: no such directory" in p.stderr


@pytest.mark.parametrize(("text", "expect"), [
    ("[terminal\n", "not valid TOML"),
    ("[mqtt]\nport = 'eighty'\n", "mqtt.port: must be an integer"),
    ("[mqtt]\nportt = 1883\n", "mqtt.portt: unknown key"),
    ("[checks.nosuch]\nenabled = true\n", "checks.nosuch: unknown check"),
    ("[checks.power]\nenabled = 1\n", "checks.power.enabled: must be true or false"),
])
@pytest.mark.parametrize("command", [["selftest"], ["config", "check"], ["selftest", "--json"]])
def test_config_errors_exit_78_with_file_and_key(tmp_path, text, expect, command):
    f = config_file(tmp_path, text)
    p = posdiag(*command, "--config", f)
    assert p.returncode == 78, p.stderr
    assert f"{f}: " in p.stderr and expect in p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


def test_missing_config_file_is_78(tmp_path):
    p = posdiag("config", "check", "--config", str(tmp_path / "absent.toml"))
    assert p.returncode == 78 and "absent.toml: file not found" in p.stderr


def test_config_check_prints_effective_config(tmp_path):
    import tomllib

    f = config_file(tmp_path, '[terminal]\nid = "T-0042"\n')
    p = posdiag("config", "check", "--config", f, "--sysfs", str(tmp_path))
    assert p.returncode == 0, p.stderr
    eff = tomllib.loads(p.stdout)
    assert eff["terminal"]["id"] == "T-0042"
    assert eff["paths"]["sysfs"] == str(tmp_path)
    assert "config OK" in p.stderr and f in p.stderr


def test_checks_lists_registry_in_both_languages():
    from posdiag.checks import REGISTRY

    en = posdiag("checks")
    zh = posdiag("checks", "--lang", "zh_CN")
    js = json.loads(posdiag("checks", "--json").stdout)
    assert en.returncode == zh.returncode == 0
    assert [r["name"] for r in js] == [s.name for s in REGISTRY]
    for s in REGISTRY:
        assert s.name in en.stdout and s.name in zh.stdout
    assert "检查项" in zh.stdout


def test_selftest_json_is_one_valid_report(tmp_path):
    f = config_file(tmp_path, '[terminal]\nid = "T-0001"\n')
    p = posdiag("selftest", "--json", "--config", f, *HEALTHY)
    doc = json.loads(p.stdout)  # exactly one document: json.loads rejects trailing data
    jsonschema.validate(doc, schema("report"))
    assert doc["terminal_id"] == "T-0001" and doc["seq"] == 0
    assert p.returncode == {"ok": 0, "warn": 1, "fail": 2, "unknown": 3}[doc["status"]]


def test_selftest_text_has_table_and_no_colour_off_a_terminal(tmp_path):
    f = config_file(tmp_path, "")
    p = posdiag("selftest", "--config", f, *HEALTHY)
    assert p.returncode in (0, 1, 2, 3)
    assert "\033[" not in p.stdout
    assert "Overall:" in p.stdout


def test_selftest_in_chinese(tmp_path):
    f = config_file(tmp_path, "")
    p = posdiag("selftest", "--config", f, *HEALTHY, env={"LANG": "zh_CN.UTF-8"})
    assert "总体" in p.stdout
    p = posdiag("selftest", "--config", f, "--lang", "en", *HEALTHY,
                env={"LANG": "zh_CN.UTF-8"})
    assert "Overall" in p.stdout
