"""The safe reader under every sysfs/procfs driver: never hangs, never raises."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers import kernel_file
from posdiag.drivers.kernel_file import parse_int, read_attribute, read_bytes, read_int, read_text


def test_reads_an_attribute_without_its_newline(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("Not charging\n")
    assert read_attribute(tmp_path / "status") == "Not charging"


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert read_bytes(tmp_path / "nope") is None
    assert read_attribute(tmp_path / "nope") is None
    assert read_int(tmp_path / "nope") is None


def test_directory_in_place_of_a_file_is_none(tmp_path: Path) -> None:
    (tmp_path / "capacity").mkdir()
    assert read_bytes(tmp_path / "capacity") is None


def test_dangling_and_looping_symlinks_are_none(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    assert read_bytes(tmp_path / "dangling") is None
    assert read_bytes(tmp_path / "loop_a") is None


def test_fifo_without_writer_returns_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "temp"
    os.mkfifo(fifo)
    out: list[bytes | None] = []
    t = threading.Thread(target=lambda: out.append(read_bytes(fifo)), daemon=True)
    t.start()
    t.join(2.0)
    assert not t.is_alive(), "reading a FIFO blocked"
    assert out == [None]


@pytest.mark.parametrize("code", [errno.EIO, errno.ENODATA, errno.ENODEV, errno.EAGAIN])
def test_errno_while_reading_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     code: int) -> None:
    (tmp_path / "capacity").write_text("87\n")
    (tmp_path / "status").write_text("Full\n")
    real_read = os.read

    def failing_read(fd: int, n: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/capacity"):
            raise OSError(code, os.strerror(code))
        return real_read(fd, n)

    monkeypatch.setattr(kernel_file.os, "read", failing_read)
    assert read_int(tmp_path / "capacity") is None
    assert read_attribute(tmp_path / "status") == "Full"


def test_limit_truncates(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 200_000)
    assert len(read_bytes(tmp_path / "big", limit=100_000) or b"") == 100_000


def test_non_utf8_and_control_characters_are_not_text(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"\xff\xfe\n")
    (tmp_path / "b").write_bytes(b"Li\x00ion\n")
    (tmp_path / "c").write_bytes(b"two\nlines\n")
    (tmp_path / "d").write_bytes(b"\n")
    assert read_text(tmp_path / "a") is None
    assert read_attribute(tmp_path / "b") is None
    assert read_attribute(tmp_path / "c") is None
    assert read_attribute(tmp_path / "d") is None


@pytest.mark.parametrize(("text", "value"), [
    ("87\n", 87), ("-12", -12), ("+3", 3), (" 7 ", 7), ("0", 0),
    ("", None), ("abc", None), ("12abc", None), ("1.5", None), ("0x10", None),
    ("99999999999999999999999", None), (None, None),
])
def test_parse_int(text: str | None, value: int | None) -> None:
    assert parse_int(text) == value


@given(st.text(max_size=40))
def test_parse_int_never_raises(text: str) -> None:
    v = parse_int(text)
    assert v is None or isinstance(v, int)
