"""Shared test set-up: make the hardware fixtures importable and expose fixture paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "hardware-fixtures"
sys.path.insert(0, str(FIXTURES))


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


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
