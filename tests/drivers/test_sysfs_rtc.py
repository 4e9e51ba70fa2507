"""The RTC reader: since_epoch and hctosys, tolerant of absent or broken attributes."""

from __future__ import annotations

from pathlib import Path

import pytest

from posdiag.drivers.sysfs.rtc import Rtc, read_rtc


def _rtc(root: Path, since_epoch: str | None, hctosys: str | None = None) -> Path:
    d = root / "class" / "rtc" / "rtc0"
    d.mkdir(parents=True)
    if since_epoch is not None:
        (d / "since_epoch").write_text(since_epoch)
    if hctosys is not None:
        (d / "hctosys").write_text(hctosys)
    return root


def test_reads_time_and_hctosys(tmp_path: Path) -> None:
    assert read_rtc(_rtc(tmp_path, "1735732800\n", "1\n")) == Rtc("rtc0", 1735732800, True)


def test_absent_rtc(tmp_path: Path) -> None:
    assert read_rtc(tmp_path) is None
    assert read_rtc(_rtc(tmp_path, None)) is None


@pytest.mark.parametrize("text", ["", "garbage", "-5", "12.5"])
def test_unusable_time(tmp_path: Path, text: str) -> None:
    assert read_rtc(_rtc(tmp_path, text)) is None


def test_unreadable_time(tmp_path: Path) -> None:
    root = _rtc(tmp_path, None)
    (root / "class/rtc/rtc0/since_epoch").mkdir()  # read fails like EINVAL on a dead RTC
    assert read_rtc(root) is None


def test_hctosys_unknown(tmp_path: Path) -> None:
    assert read_rtc(_rtc(tmp_path, "100", "x")) == Rtc("rtc0", 100, None)


@pytest.mark.parametrize("name", ["", "../rtc0", ".."])
def test_bad_names(tmp_path: Path, name: str) -> None:
    assert read_rtc(_rtc(tmp_path, "100"), name) is None
