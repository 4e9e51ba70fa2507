"""Shared test set-up: make the hardware fixtures importable and expose fixture paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "hardware-fixtures"
sys.path.insert(0, str(FIXTURES))

# Tests leave nothing behind. Child processes (umockdev testbeds, the agent, tools) get a
# temporary directory of this run's own, so what they leave is seen at the end, and another
# suite running on the same machine cannot be mistaken for ours. This process keeps /tmp.
tempfile.gettempdir()
CHILD_TMPDIR = Path(tempfile.mkdtemp(prefix="posdiag-tests-"))
os.environ["TMPDIR"] = str(CHILD_TMPDIR)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    left = sorted(p.name for p in CHILD_TMPDIR.iterdir()) if CHILD_TMPDIR.exists() else []
    shutil.rmtree(CHILD_TMPDIR, ignore_errors=True)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests left temporary files behind: {', '.join(left)}"
        if reporter is not None:
            reporter.write_line(f"FAILED (session check): {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def healthy_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The healthy rootfs tree on a private 64 MiB tmpfs: ``statvfs`` of ``/`` and
    ``/var/lib/posdiag`` then gives the same free space on every run and every machine, instead of
    this machine's disk (nearly full on a build machine, and changing while other tests write)."""
    where = tmp_path_factory.mktemp("healthy-rootfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "posdiag-test",
                    str(where)], check=True)
    try:
        shutil.copytree(FIXTURES / "rootfs" / "healthy-terminal", where, symlinks=True,
                        dirs_exist_ok=True)
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def run_check(spec, *, sysfs: Path | None = None, procfs: Path | None = None,
              rootfs: Path | None = None, config: dict | None = None, **check_cfg):
    """Run one check through the real config builder and runner; returns its CheckResult.

    ``check_cfg`` are the keys of ``[checks.<name>]``; ``config`` other top-level tables.
    """
    from posdiag import config as cfgmod
    from posdiag.paths import Roots
    from posdiag.runner import run_checks

    data = dict(config or {})
    data.setdefault("checks", {})[spec.name] = check_cfg
    cfg = cfgmod.build(data, {spec.name: spec.config_type})
    roots = Roots(sysfs or Path("/sys"), procfs or Path("/proc"), rootfs or Path("/"))
    (result,) = run_checks([spec], cfg, roots, only=[spec.name])
    return result


# The real pcscd + vpcd fixtures (tests/pcscd.py), shared by every module that needs a chip reader.
from pcscd import pcscd, vpcd  # noqa: E402, F401
