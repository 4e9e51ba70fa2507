"""The dpkg status file parser: real stanzas, package states, Multi-Arch, and garbage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.dpkg import status as status_mod
from posdiag.drivers.dpkg.status import (
    PackageState,
    parse_status,
    read_status,
    valid_package_name,
)
from posdiag.drivers.errors import DriverError, PermissionDenied

HEALTHY = Path(__file__).resolve().parents[2] / "hardware-fixtures/rootfs/healthy-terminal"


def stanza(name: str, status: str = "install ok installed", version: str | None = "1.0-1",
           arch: str | None = "amd64", extra: str = "") -> str:
    lines = [f"Package: {name}", f"Status: {status}"]
    if arch:
        lines.append(f"Architecture: {arch}")
    if version:
        lines.append(f"Version: {version}")
    return "\n".join(lines) + "\n" + extra


def test_healthy_fixture() -> None:
    db = read_status(HEALTHY)
    assert db is not None
    assert db.damaged == 0
    assert len(db.packages) == 16
    assert db.installed_count == 15
    (openssl,) = db.installed("openssl")
    assert openssl.version == "3.0.11-1~deb12u2"
    assert openssl.architecture == "amd64"
    assert db.installed("openssh-server")[0].version == "1:9.2p1-2+deb12u2"
    assert db.installed("ca-certificates")[0].architecture == "all"
    assert db.installed("tzdata")[0].version == "2024a-0+deb12u1"


def test_config_files_only_is_not_installed_but_keeps_its_state() -> None:
    db = read_status(HEALTHY)
    assert db is not None
    assert db.installed("modemmanager") == ()
    (entry,) = db.entries("modemmanager")
    assert str(entry.state) == "deinstall ok config-files"
    assert entry.version == "1.20.4-1"
    assert not entry.installed


@pytest.mark.parametrize(("status", "installed"), [
    ("install ok installed", True),
    ("hold ok installed", True),  # apt-mark hold: still installed
    ("install ok triggers-pending", True),
    ("install ok triggers-awaited", True),
    ("install ok half-configured", False),
    ("install ok unpacked", False),
    ("install ok half-installed", False),
    ("install reinstreq installed", False),
    ("deinstall ok installed", False),  # marked for removal
    ("purge ok not-installed", False),
    ("deinstall ok config-files", False),
])
def test_which_states_count_as_installed(status: str, installed: bool) -> None:
    db = parse_status(stanza("pcscd", status))
    assert db.damaged == 0
    assert bool(db.installed("pcscd")) is installed


def test_installed_needs_a_version() -> None:
    db = parse_status(stanza("pcscd", version=None))
    assert db.installed("pcscd") == ()
    assert len(db.entries("pcscd")) == 1


def test_continuation_lines_never_become_fields() -> None:
    text = stanza("openssl", version="3.0.11-1~deb12u2", extra=(
        "Description: toolkit\n"
        " Version: 9.9\n"
        "\tPackage: evil\n"
        " .\n"
        "Conffiles:\n"
        " /etc/ssl/openssl.cnf 6b4e8a5b1e1c1b8f2d1a2a7ad1f4e2b3\n"))
    db = parse_status(text)
    assert db.damaged == 0
    assert [p.name for p in db.packages] == ["openssl"]
    assert db.installed("openssl")[0].version == "3.0.11-1~deb12u2"


def test_field_names_are_case_insensitive_and_order_free() -> None:
    db = parse_status("version: 2.0\nSTATUS: install ok installed\npackage: libc6\n")
    assert db.installed("libc6")[0].version == "2.0"


def test_blank_lines_with_spaces_separate_stanzas() -> None:
    db = parse_status(stanza("a1") + "   \n\n\n" + stanza("b2", version="2.0"))
    assert [p.name for p in db.packages] == ["a1", "b2"]


def test_crlf_line_ends_are_tolerated() -> None:
    db = parse_status(stanza("openssl").replace("\n", "\r\n"))
    assert db.installed("openssl")[0].version == "1.0-1"


def test_multi_arch_packages_have_one_stanza_per_architecture() -> None:
    db = parse_status(stanza("libc6", version="2.36-9+deb12u4") + "\n"
                      + stanza("libc6", version="2.36-9+deb12u3", arch="i386"))
    assert [p.version for p in db.installed("libc6")] == ["2.36-9+deb12u4", "2.36-9+deb12u3"]
    assert [p.version for p in db.installed("libc6:i386")] == ["2.36-9+deb12u3"]
    assert db.installed("libc6:arm64") == ()


def test_a_damaged_stanza_does_not_hide_the_others() -> None:
    text = "\n\n".join([
        stanza("openssl"),
        "this is not a field\n\x00\x01\x02 binary junk",
        stanza("libc6", status="install ok sideways"),  # not a dpkg state
        "Status: install ok installed\nVersion: 1.0\n",  # no Package
        stanza("UPPER"),  # not a valid package name
        stanza("tzdata", extra="garbage line in the middle\n"),  # damaged, but usable
        stanza("bash", extra="Version: 9.9\n"),  # duplicate field: the first one counts
        " continuation without a field\n" + stanza("dpkg"),
        stanza("spaced", version="1.0 2.0"),
    ])
    db = parse_status(text)
    assert sorted(p.name for p in db.packages) == ["bash", "dpkg", "openssl", "tzdata"]
    assert db.installed("bash")[0].version == "1.0-1"
    assert db.damaged == 8


def test_empty_and_blank_text_hold_nothing() -> None:
    for text in ("", "\n\n", "   \n\t\n"):
        db = parse_status(text)
        assert db.packages == () and db.damaged == 0


@given(st.text(max_size=2000))
def test_garbage_text_never_raises(text: str) -> None:
    db = parse_status(text)
    for p in db.packages:
        assert valid_package_name(p.name)
        assert isinstance(p.state, PackageState)
    assert db.installed_count <= len(db.packages)


@given(st.lists(st.sampled_from([
    "Package: openssl", "Status: install ok installed", "Version: 3.0.11-1~deb12u2",
    "Architecture: amd64", " continued", "", "Status: hold ok installed", "junk", "Package:",
    "Version:", ":", "Package: libc6",
]), max_size=40))
def test_shuffled_real_lines_never_raise(lines: list[str]) -> None:
    db = parse_status("\n".join(lines))
    for p in db.packages:
        assert p.name in ("openssl", "libc6")


@pytest.mark.parametrize(("name", "ok"), [
    ("openssl", True), ("libstdc++6", True), ("libusb-1.0-0", True), ("python3.11", True),
    ("a", False), ("Openssl", False), ("-x", False), ("lib_foo", False), ("", False),
])
def test_package_names(name: str, ok: bool) -> None:
    assert valid_package_name(name) is ok


def test_package_state_rejects_unknown_words() -> None:
    with pytest.raises(ValueError, match="three words"):
        PackageState.parse("install ok")
    with pytest.raises(ValueError, match="not a dpkg package state"):
        PackageState.parse("install fine installed")


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------
def test_missing_file_is_none(tmp_path: Path) -> None:
    assert read_status(tmp_path) is None
    (tmp_path / "var").write_text("a file where a directory should be")
    assert read_status(tmp_path) is None


def test_directory_in_place_of_the_file_is_a_driver_error(tmp_path: Path) -> None:
    (tmp_path / "var/lib/dpkg/status").mkdir(parents=True)
    with pytest.raises(DriverError, match="not a regular file") as e:
        read_status(tmp_path)
    assert e.value.device == "/var/lib/dpkg/status"


def test_fifo_in_place_of_the_file_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    os.mkfifo(tmp_path / "var/lib/dpkg/status")
    with pytest.raises(DriverError, match="not a regular file"):
        read_status(tmp_path)


def test_permission_error_is_permission_denied(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, where chmod 000 would not stop the read.
    def refuse(*_args: object) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(status_mod, "read_regular", refuse)
    with pytest.raises(PermissionDenied):
        read_status(tmp_path)


def test_runaway_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_mod, "MAX_BYTES", 1024)
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(stanza("openssl") * 200)
    with pytest.raises(DriverError, match="larger than"):
        read_status(tmp_path)


def test_non_utf8_bytes_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_bytes(
        stanza("openssl").encode() + b"Description: caf\xe9 \xff\xfe\n")
    db = read_status(tmp_path)
    assert db is not None
    assert db.installed("openssl")[0].version == "1.0-1"
