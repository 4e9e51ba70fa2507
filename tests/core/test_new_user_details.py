"""Small things a new user found: each as it was seen."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from posdiag.checks import REGISTRY

REPO = Path(__file__).resolve().parents[2]


def posdiag(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    return subprocess.run([sys.executable, "-m", "posdiag", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=60)


def test_unknown_top_level_key_lists_checks_among_the_known(tmp_path):
    conf = tmp_path / "posdiag.toml"
    conf.write_text("[chekcs.power]\nenabled = false\n")
    p = posdiag("config", "check", "--config", str(conf))
    assert p.returncode == 78
    known = p.stderr.split("known keys here: ")[1].split(")")[0].split(", ")
    assert "checks" in known and "terminal" in known


def test_config_check_shows_enabled_for_every_check(tmp_path):
    conf = tmp_path / "posdiag.toml"
    conf.write_text("[checks.printer]\nenabled = false\n")
    p = posdiag("config", "check", "--config", str(conf))
    assert p.returncode == 0, p.stderr
    checks = tomllib.loads(p.stdout)["checks"]
    assert {name: checks[name]["enabled"] for name in checks} == {
        s.name: s.name != "printer" and s.enabled_by_default for s in REGISTRY}


def test_swipe_test_without_a_reader_says_none_found_and_what_to_do(tmp_path):
    empty = tmp_path / "sys"
    empty.mkdir()
    for lang, none in (("en", "not found"), ("zh_CN", "未找到")):
        p = posdiag("swipe-test", "--timeout", "1", "--sysfs", str(empty), "--lang", lang)
        assert p.returncode == 2
        head = p.stdout.splitlines()[0]
        assert head.endswith(none) and "?" not in head


def test_swipe_test_on_a_port_that_is_not_a_reader_says_what_to_do():
    for lang, what in (("en", "What to do:"), ("zh_CN", "处理建议:")):
        p = posdiag("swipe-test", "--port", "/dev/null", "--timeout", "1", "--lang", lang)
        assert p.returncode == 2
        lines = p.stdout.splitlines()
        assert what in lines and lines[lines.index(what) + 1].startswith(" 1. ")


def test_make_prints_the_missing_debian_packages_on_one_line(tmp_path):
    # apt-get is replaced by a no-op so that nothing is installed; the line is what is tested.
    stub = tmp_path / "apt-get"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    p = subprocess.run(["make", "-s", "debs", "TEST_DEBS=posdiag-none-a posdiag-none-b"],
                       cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["installing Debian packages: posdiag-none-a posdiag-none-b"]
