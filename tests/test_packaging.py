"""The sdist and the wheel, built as a release would build them (python -m build, isolated)."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, str]:
    """Build from a copy of the tracked files, so the checkout gets no build/ or egg-info."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir",
                        str(out), str(src)], capture_output=True, text=True, timeout=600)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel, log


def test_build_gives_no_deprecation_warning(built):
    log = built[2]
    assert "deprecated" not in log.lower(), log
    assert "BuildBackendWarning" not in log and "SetuptoolsDeprecationWarning" not in log


def test_sdist_has_license_docs_systemd_and_no_tests(built):
    with tarfile.open(built[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in",
            "docs/architecture.md", "docs/cli.md", "docs/posdiag.sample.toml",
            "docs/reason-codes.md", "docs/asyncapi.yaml", "systemd/posdiag.service",
            "systemd/README.md", "agent/cli.py", "drivers/devices.toml"} <= names
    # Either every test with its conftest or none: none (they need fixtures, a broker, root).
    assert not [n for n in names if n.startswith(("tests/", "hardware-fixtures/", "bench/"))]
    assert not [n for n in names if "__pycache__" in n]


def test_wheel_has_the_package_data_and_the_license(built):
    with zipfile.ZipFile(built[1]) as whl:
        names = set(whl.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(whl.read(meta_name))
    assert {"posdiag/cli.py", "posdiag/schema/report.json", "posdiag/locale/zh_CN.toml",
            "posdiag/diagnosis/symptoms.toml", "posdiag/drivers/devices.toml"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["License-Expression"] == "Apache-2.0"
    assert not [n for n in names if n.startswith(("tests/", "agent/", "drivers/"))]
