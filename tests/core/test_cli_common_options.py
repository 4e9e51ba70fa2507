"""The common options (--config, --lang, -v, the three roots) work before the command too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posdiag.cli import COMMON_OPTIONS, _merge_common, _parser

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "hardware-fixtures"
ROOTS = {"sysfs": FIX / "sysfs/healthy-terminal", "procfs": FIX / "procfs/healthy-terminal",
         "rootfs": FIX / "rootfs/healthy-terminal"}


def posdiag(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    return subprocess.run([sys.executable, "-m", "posdiag", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def parse(*argv: str):
    return _merge_common(_parser().parse_args(list(argv)))


def test_config_before_the_command_is_read_not_refused(tmp_path):
    # As found: 'posdiag --config FILE selftest' said "invalid choice".
    p = posdiag("--config", "/nonexistent.toml", "selftest")
    assert p.returncode == 78, p.stderr
    assert "/nonexistent.toml: file not found" in p.stderr
    assert "invalid choice" not in p.stderr
    conf = tmp_path / "posdiag.toml"
    conf.write_text('[terminal]\nid = "T-0042"\n')
    p = posdiag("--config", str(conf), "config", "check")
    assert p.returncode == 0, p.stderr
    assert 'id = "T-0042"' in p.stdout


def test_every_common_option_before_the_command_reaches_it(tmp_path):
    roots = [a for k, v in ROOTS.items() for a in (f"--{k}", str(v))]
    ns = parse("--config", "/c.toml", "--lang", "zh_CN", "-v", *roots, "selftest", "--json")
    assert (ns.config, ns.lang, ns.verbose, ns.json) == ("/c.toml", "zh_CN", 1, True)
    assert {k: ns.__dict__[k] for k in ROOTS} == {k: str(v) for k, v in ROOTS.items()}
    assert not [k for k in vars(ns) if k.startswith("before_")]
    # The same through a real process: the fixture roots given before 'selftest' are used.
    p = posdiag(*roots, "--lang", "zh_CN", "selftest", "--json", "--check", "power")
    assert p.returncode in (0, 1, 2, 3), p.stderr
    power = json.loads(p.stdout)["checks"][0]
    assert power["name"] == "power" and power["metrics"]["battery_percent"] == pytest.approx(
        int((ROOTS["sysfs"] / "class/power_supply/BAT0/capacity").read_text()))


@pytest.mark.parametrize("command", [["selftest"], ["diagnose"], ["checks"], ["run"],
                                     ["swipe-test"], ["config", "check"], ["fleet", "status"],
                                     ["fleet", "listen"], ["fleet", "command", "T-1", "ping"]])
def test_after_the_command_wins_and_verbosity_adds_up(command):
    ns = parse("--config", "/before.toml", "--lang", "en", "--sysfs", "/b", "-v", *command,
               "--config", "/after.toml", "--lang", "zh_CN", "-vv")
    assert (ns.config, ns.lang, ns.sysfs, ns.verbose) == ("/after.toml", "zh_CN", "/b", 3)
    ns = parse(*command)
    assert all(getattr(ns, k) is None for k in COMMON_OPTIONS) and ns.verbose == 0


def test_an_option_that_is_not_common_is_refused_before_the_command():
    p = posdiag("--json", "selftest")
    assert p.returncode == 64 and "unrecognized arguments: --json" in p.stderr


def test_top_level_help_names_the_rule():
    p = posdiag("--help")
    assert p.returncode == 0
    assert "the one after" in p.stdout and "--config FILE" in p.stdout
