"""``posdiag fleet`` on a plain install, without the ``fleet`` extra (no jsonschema).

The environment is a real venv whose site-packages holds everything the test venv has except
jsonschema, so ``import jsonschema`` fails the way it does on a terminal-only install.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

EX_UNAVAILABLE = 69


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plain-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = Path(subprocess.run(
        [str(root / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    for entry in ours.iterdir():
        if entry.name == "jsonschema" or entry.name.startswith("jsonschema-"):
            continue
        (theirs / entry.name).symlink_to(entry)
    python = root / "bin/python"
    probe = subprocess.run([str(python), "-c", "import posdiag, paho; import jsonschema"],
                           capture_output=True, text=True)
    assert "No module named 'jsonschema'" in probe.stderr, probe.stderr  # a real failure
    return python


def run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "posdiag", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def one_clear_line(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "jsonschema" in lines[0] and "posdiag[fleet]" in lines[0]
    return lines[0]


def test_fleet_command_says_one_line_not_a_traceback(plain_python, tmp_path):
    p = run(plain_python, tmp_path, "fleet", "command", "T-1", "selftest", "--host", "127.0.0.1",
            "--port", "1", "--no-tls")
    assert p.returncode == EX_UNAVAILABLE
    one_clear_line(p)
    assert p.stdout == ""


def test_fleet_listen_refuses_before_creating_the_database(plain_python, tmp_path):
    db = tmp_path / "state" / "fleet.sqlite"
    p = run(plain_python, tmp_path, "fleet", "listen", "--db", str(db), "--no-tls")
    assert p.returncode == EX_UNAVAILABLE
    one_clear_line(p)
    assert list(tmp_path.iterdir()) == []


def test_the_terminal_side_needs_no_jsonschema(plain_python, tmp_path):
    p = run(plain_python, tmp_path, "checks")
    assert p.returncode == 0 and "power" in p.stdout, p.stderr
