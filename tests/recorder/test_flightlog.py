"""The flight log file: ring wrap-around, stale slots, restarts, full disks, a damaged header."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from posdiag.flightlog import (
    HEADER_SIZE,
    RECORD_SIZE,
    FlightLog,
    FlightLogCorrupt,
    FlightLogError,
    Sample,
    decode,
    encode,
    file_size,
)

M0 = 29_000_000  # an epoch minute in 2025


def s(minute: int, **kw: object) -> Sample:
    return Sample(minute=minute, link_up=True, rtt="ok", rtt_ms=minute % 500, **kw)


def test_every_field_round_trips_and_unknown_is_encodable() -> None:
    full = Sample(minute=M0, link_up=False, link_changes=3, iface="cellular", wifi_dbm=-71,
                  cell_stat=5, rssi_dbm=-89, rsrp_dbm=-121, rtt="timeout", dns_failed=True,
                  power="battery", battery_pct=42)
    assert decode(encode(full)) == full
    empty = Sample(minute=M0)
    assert decode(encode(empty)) == empty
    assert len(encode(full)) == RECORD_SIZE == 24


def test_size_is_fixed_at_creation(tmp_path: Path) -> None:
    fl = FlightLog.create(tmp_path / "f.bin", 4320)
    assert (tmp_path / "f.bin").stat().st_size == file_size(4320) == 103_712
    for m in range(M0, M0 + 5000):
        fl.write(s(m))
    assert (tmp_path / "f.bin").stat().st_size == 103_712
    fl.close()


def test_wrap_around_and_stale_slots(tmp_path: Path) -> None:
    with FlightLog.create(tmp_path / "f.bin", 10) as fl:
        for m in range(M0, M0 + 15):  # 15 minutes into a 10-slot ring: the first 5 are gone
            fl.write(s(m))
        got = fl.window(M0 * 60, (M0 + 14) * 60)
        assert [x.minute for x in got] == list(range(M0 + 5, M0 + 15))
        # a slot holding an older lap's minute is not shown as the asked-for minute
        assert fl.read(M0 + 20) is None  # slot of M0+20 holds M0+10
        assert fl.read(M0 + 10) == s(M0 + 10)
        # a gap of more than one lap: everything is stale
        assert fl.window((M0 + 100) * 60, (M0 + 109) * 60) == []


def test_window_crossing_the_end_of_the_ring(tmp_path: Path) -> None:
    with FlightLog.create(tmp_path / "f.bin", 7) as fl:
        start = M0 - (M0 % 7) + 5  # slots 5, 6, 0, 1
        for m in range(start, start + 4):
            fl.write(s(m))
        assert [x.minute for x in fl.window(start * 60, (start + 3) * 60 + 59)] == \
            list(range(start, start + 4))


def test_restart_in_the_middle_of_a_window_keeps_samples_and_shows_the_gap(tmp_path: Path
                                                                          ) -> None:
    path = tmp_path / "f.bin"
    fl = FlightLog.open_or_create(path, 4320)
    for m in range(M0, M0 + 10):
        fl.write(s(m))
    fl.close()  # the agent stops for 5 minutes
    fl = FlightLog.open_or_create(path, 4320)
    for m in range(M0 + 15, M0 + 20):
        fl.write(s(m))
    minutes = list(fl.minutes(M0 * 60, (M0 + 19) * 60))
    fl.close()
    assert len(minutes) == 20
    missing = [m for m, x in minutes if x is None]
    assert missing == list(range(M0 + 10, M0 + 15))
    assert all(x == s(m) for m, x in minutes if x is not None)


def test_torn_record_reads_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    with FlightLog.create(path, 10) as fl:
        fl.write(s(M0))
    with path.open("r+b") as f:
        f.seek(HEADER_SIZE + (M0 % 10) * RECORD_SIZE + 9)
        f.write(b"\x55")
    with FlightLog.open(path) as fl:
        assert fl.read(M0) is None


def test_corrupt_header_is_moved_aside_with_a_log_line(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"not a flight log" * 10)
    with pytest.raises(FlightLogCorrupt, match="wrong magic"):
        FlightLog.open(path)
    with caplog.at_level(logging.ERROR, "posdiag.flightlog"):
        fl = FlightLog.open_or_create(path, 60)
    fl.write(s(M0))
    fl.close()
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a flight log")
    assert "moved it to" in caplog.text and "wrong magic" in caplog.text
    assert path.stat().st_size == file_size(60)


def test_truncated_file_and_other_slot_count(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f.bin"
    FlightLog.create(path, 60).close()
    os.truncate(path, 100)
    with pytest.raises(FlightLogCorrupt, match="100 bytes long"):
        FlightLog.open(path)
    path.unlink()
    FlightLog.create(path, 60).close()
    with caplog.at_level(logging.WARNING, "posdiag.flightlog"):
        FlightLog.open_or_create(path, 120).close()
    assert "holds 60 minutes, configured 120" in caplog.text
    assert FlightLog.open(path).slots == 120


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tiny"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "posdiag-rec-test", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_full_disk_at_creation_is_a_clear_error_and_leaves_nothing(tiny_tmpfs: Path) -> None:
    with pytest.raises(FlightLogError, match=r"No space left.*103712 bytes needed"):
        FlightLog.create(tiny_tmpfs / "f.bin", 4320)
    assert list(tiny_tmpfs.iterdir()) == []


def test_full_disk_after_creation_does_not_stop_writes(tiny_tmpfs: Path) -> None:
    fl = FlightLog.create(tiny_tmpfs / "f.bin", 1000)  # 24,032 bytes: fits in 64 KiB
    fd = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space"):  # fill the disk to the last block
            while True:
                os.write(fd, b"x" * 4096)
    finally:
        os.close(fd)
    try:
        for m in range(M0, M0 + 2500):  # two and a half laps on a full disk
            fl.write(s(m))
        assert [x.minute for x in fl.window((M0 + 2490) * 60, (M0 + 2499) * 60)] == \
            list(range(M0 + 2490, M0 + 2500))
    finally:
        fl.close()
