"""The install route of systemd/README.md, exactly as written: ``make install`` into a scratch root.

The staged tree is then mounted where it belongs (/opt/posdiag) inside a private mount namespace, so
the installed entry point, the unit's ExecStart= and the shipped configuration are exercised at
their final paths without touching the machine's own /opt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:  # the test set-up installs these (Makefile TEST_DEBS); a hole there is a bug
        pytest.fail(f"{tool} not found: `make debs` installs it")
    return path


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the install test needs root (mount namespace); CI runs as root")
    dest = tmp_path_factory.mktemp("scratch-root")
    result = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return dest


def in_final_place(stage: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with the staged /opt/posdiag bind-mounted at /opt/posdiag."""
    script = ("set -e; mount -t tmpfs posdiag-test /opt; mkdir /opt/posdiag; "
              f"mount --bind {stage}/opt/posdiag /opt/posdiag; exec \"$@\"")
    return subprocess.run([_need("unshare"), "--mount", "--propagation", "private",
                           "bash", "-c", script, "in-final-place", *command],
                          capture_output=True, text=True, timeout=120)


def test_files_land_where_the_unit_and_the_readme_say(stage: Path) -> None:
    expected = {
        "usr/lib/systemd/system/posdiag.service": 0o644,
        "usr/lib/sysusers.d/posdiag.conf": 0o644,
        "usr/lib/tmpfiles.d/posdiag.conf": 0o644,
        "usr/lib/udev/rules.d/60-posdiag.rules": 0o644,
        "etc/posdiag/posdiag.toml": 0o644,
        "opt/posdiag/bin/posdiag": 0o755,
    }
    for rel, mode in expected.items():
        path = stage / rel
        assert path.is_file(), rel
        assert path.stat().st_mode & 0o777 == mode, rel
    assert (stage / "etc/posdiag/conf.d").is_dir()
    assert os.readlink(stage / "usr/local/bin/posdiag") == "/opt/posdiag/bin/posdiag"
    # The configuration starts as the annotated sample; the unit and rules are the shipped files.
    assert (stage / "etc/posdiag/posdiag.toml").read_text() == \
        (ROOT / "docs/posdiag.sample.toml").read_text()
    assert (stage / "usr/lib/systemd/system/posdiag.service").read_text() == \
        (ROOT / "systemd/posdiag.service").read_text()
    # Nothing in dpkg's /usr/bin.
    assert not (stage / "usr/bin").exists()


def test_no_staging_path_is_left_in_the_installed_tree(stage: Path) -> None:
    marker = str(stage).encode()
    offenders = [str(p.relative_to(stage)) for p in stage.rglob("*")
                 if p.is_file() and not p.is_symlink() and marker in p.read_bytes()]
    assert offenders == []
    assert (stage / "opt/posdiag/bin/posdiag").read_text().startswith("#!/opt/posdiag/bin/python")


def test_unit_exec_start_runs_the_installed_agent(stage: Path) -> None:
    unit = (stage / "usr/lib/systemd/system/posdiag.service").read_text()
    exec_start = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert exec_start == ["ExecStart=/opt/posdiag/bin/posdiag run"]

    version = in_final_place(stage, "/opt/posdiag/bin/posdiag", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("posdiag ")
    # The installed package is the one under /opt, built from Debian's interpreter.
    where = in_final_place(stage, "/opt/posdiag/bin/python", "-c",
                           "import posdiag, sys; print(posdiag.__file__); print(sys.base_prefix)")
    assert where.returncode == 0, where.stderr
    module, base = where.stdout.split()
    assert module.startswith("/opt/posdiag/lib/python3")
    assert base == "/usr"

    # With the real binary in place, the shipped unit verifies without a single complaint.
    verify = in_final_place(stage, _need("systemd-analyze"), "verify",
                            str(stage / "usr/lib/systemd/system/posdiag.service"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (verify.stdout + verify.stderr).strip() == ""


def test_the_installed_configuration_is_valid_as_shipped(stage: Path) -> None:
    check = in_final_place(stage, "/opt/posdiag/bin/posdiag", "config", "check",
                           "--config", str(stage / "etc/posdiag/posdiag.toml"))
    assert check.returncode == 0, check.stderr
    assert "[terminal]" in check.stdout
    # ...and a mistake in it is reported as the README says: exit 78, file and key named.
    broken = stage / "etc/posdiag/conf.d/50-typo.toml"
    broken.write_text("[mqtt]\nhots = \"broker\"\n")
    try:
        bad = in_final_place(stage, "/opt/posdiag/bin/posdiag", "config", "check",
                             "--config", str(stage / "etc/posdiag/posdiag.toml"))
    finally:
        broken.unlink()
    assert bad.returncode == 78
    assert "50-typo.toml" in bad.stderr and "hots" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sysusers_and_tmpfiles_apply_to_the_scratch_root(stage: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(stage, root, symlinks=True)
    (root / "etc").mkdir(exist_ok=True)
    # A Debian base system has these groups; the snippet adds posdiag to them.
    (root / "etc/group").write_text("root:x:0:\nlp:x:7:\ndialout:x:20:\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    sysusers = subprocess.run([_need("systemd-sysusers"), f"--root={root}", "posdiag.conf"],
                              capture_output=True, text=True, timeout=60)
    assert sysusers.returncode == 0, sysusers.stderr
    passwd = (root / "etc/passwd").read_text()
    assert any(line.startswith("posdiag:") and line.endswith(":/var/lib/posdiag:/usr/sbin/nologin")
               for line in passwd.splitlines()), passwd
    groups = {line.split(":")[0]: line.split(":")[3] for line in
              (root / "etc/group").read_text().splitlines()}
    assert "posdiag" in groups["dialout"].split(",") and "posdiag" in groups["lp"].split(",")

    tmpfiles = subprocess.run([_need("systemd-tmpfiles"), f"--root={root}", "--create",
                               "posdiag.conf"], capture_output=True, text=True, timeout=60)
    assert tmpfiles.returncode == 0, tmpfiles.stderr
    state = root / "var/lib/posdiag"
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o700


def test_a_second_install_keeps_the_operators_configuration(stage: Path) -> None:
    config = stage / "etc/posdiag/posdiag.toml"
    config.write_text('[terminal]\nid = "T-0042"\n')
    result = subprocess.run(["make", "-s", "install", f"DESTDIR={stage}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert config.read_text() == '[terminal]\nid = "T-0042"\n'
    assert "kept" in result.stdout
