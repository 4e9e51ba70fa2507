"""os-release(5) parsing and lookup, and the kernel release from procfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.osinfo import (
    OsRelease,
    parse_os_release,
    read_kernel_release,
    read_os_release,
)

FIXTURES = Path(__file__).resolve().parents[2] / "hardware-fixtures"
ROOTFS = FIXTURES / "rootfs/healthy-terminal"
PROCFS = FIXTURES / "procfs/healthy-terminal"


def test_healthy_fixture_is_debian_12() -> None:
    osr = read_os_release(ROOTFS)
    assert osr is not None
    assert osr.path == "/etc/os-release"
    assert osr.pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert osr.id == "debian"
    assert osr.version_id == "12"
    assert osr.get("VERSION_CODENAME") == "bookworm"
    assert osr.get("HOME_URL") == "https://www.debian.org/"


def test_healthy_kernel_release() -> None:
    assert read_kernel_release(PROCFS) == "6.1.0-18-amd64"


@pytest.mark.parametrize(("line", "value"), [
    ('A="Debian GNU/Linux 12 (bookworm)"', "Debian GNU/Linux 12 (bookworm)"),
    ("A='single quoted $HOME'", "single quoted $HOME"),
    ("A=bare", "bare"),
    ('A="say \\"hi\\""', 'say "hi"'),
    ('A="back\\\\slash"', "back\\slash"),
    ('A="\\$HOME and \\`cmd\\`"', "$HOME and `cmd`"),
    ('A="keeps \\n as is"', "keeps \\n as is"),
    ("A='it'\\''s'", "it's"),
    ("A=x\\ y", "x y"),
    ('A=mixed"quo ted"\'parts\'', "mixedquo tedparts"),
    ("A=value # a comment", "value"),
    ('A=""', ""),
    ("A=", ""),
    ('  A="indented"  ', "indented"),
    ("A=ünïcödé", "ünïcödé"),
])
def test_shell_style_values(line: str, value: str) -> None:
    assert parse_os_release(line) == {"A": value}


@pytest.mark.parametrize("line", [
    'A="unclosed',
    "A='unclosed",
    "A=two words",  # a shell would run "words" as a command
    "A = spaced",
    "export A=1",
    "1A=digit first",
    "# A=commented",
    "just text",
    'A="bell \x07"',  # control characters are no text
])
def test_malformed_lines_are_skipped(line: str) -> None:
    assert parse_os_release(line + "\nB=kept") == {"B": "kept"}


def test_later_assignment_wins() -> None:
    assert parse_os_release("ID=debian\nID=raspbian\n") == {"ID": "raspbian"}


def test_pretty_name_falls_back_to_name() -> None:
    assert OsRelease({"NAME": "Buildroot"}).pretty_name == "Buildroot"
    assert OsRelease({}).pretty_name is None
    assert OsRelease({"ID_LIKE": "ubuntu debian"}).id_like == ("ubuntu", "debian")
    assert OsRelease({"VERSION_ID": ""}).version_id is None  # empty is "not set"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_etc_wins_over_usr_lib(tmp_path: Path) -> None:
    write(tmp_path / "etc/os-release", "ID=local\n")
    write(tmp_path / "usr/lib/os-release", "ID=vendor\n")
    osr = read_os_release(tmp_path)
    assert osr is not None and osr.id == "local" and osr.path == "/etc/os-release"


def test_usr_lib_is_the_fallback(tmp_path: Path) -> None:
    write(tmp_path / "usr/lib/os-release", "ID=vendor\n")
    osr = read_os_release(tmp_path)
    assert osr is not None and osr.id == "vendor" and osr.path == "/usr/lib/os-release"


def test_neither_file_is_none(tmp_path: Path) -> None:
    assert read_os_release(tmp_path) is None


def test_relative_symlink_as_debian_ships_it(tmp_path: Path) -> None:
    write(tmp_path / "usr/lib/os-release", "ID=debian\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").symlink_to("../usr/lib/os-release")
    osr = read_os_release(tmp_path)
    assert osr is not None and osr.id == "debian" and osr.path == "/etc/os-release"


def test_absolute_symlink_resolves_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "usr/lib/os-release", "ID=inside\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")
    osr = read_os_release(root)
    assert osr is not None and osr.id == "inside"


def test_symlink_cannot_climb_out_of_the_root(tmp_path: Path) -> None:
    write(tmp_path / "outside/os-release", "ID=outside\n")
    root = tmp_path / "root"
    write(root / "usr/lib/os-release", "ID=fallback\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to("../../../../outside/os-release")
    osr = read_os_release(root)
    # "/../../outside" stays at "/outside" inside the root, which does not exist there.
    assert osr is not None and osr.id == "fallback"


def test_dangling_or_looping_link_falls_back(tmp_path: Path) -> None:
    write(tmp_path / "usr/lib/os-release", "ID=vendor\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").symlink_to("os-release")  # points at itself
    osr = read_os_release(tmp_path)
    assert osr is not None and osr.id == "vendor"


def test_fifo_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc/os-release")
    assert read_os_release(tmp_path) is None
    (tmp_path / "sys/kernel").mkdir(parents=True)
    os.mkfifo(tmp_path / "sys/kernel/osrelease")
    assert read_kernel_release(tmp_path) is None


def test_binary_os_release_gives_no_fields_but_no_error(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_bytes(b"\x00\xff\xfe\x80ID\xff=x\n")
    osr = read_os_release(tmp_path)
    assert osr is not None and osr.id is None


@pytest.mark.parametrize(("content", "expected"), [
    (b"6.1.0-18-amd64\n", "6.1.0-18-amd64"),
    (b"6.1.21-v8+", "6.1.21-v8+"),
    (b"", None),
    (b"\n", None),
    (b"6.1.0 extra words\n", None),
    (b"\x00\xff\x01", None),
    (b"x" * 200, None),
])
def test_kernel_release_values(tmp_path: Path, content: bytes, expected: str | None) -> None:
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/osrelease").write_bytes(content)
    assert read_kernel_release(tmp_path) == expected


def test_kernel_release_missing_is_none(tmp_path: Path) -> None:
    assert read_kernel_release(tmp_path) is None


@given(st.text(max_size=500))
def test_garbage_never_raises(text: str) -> None:
    fields = parse_os_release(text)
    for key, value in fields.items():
        assert key.isidentifier()
        assert value.isprintable()
