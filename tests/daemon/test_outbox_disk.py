"""The outbox on a small or full file system, as the field report found it (issue 15, items
1-5): real tmpfs mounts of 512 KiB and 1 MiB, a filler file that takes the last byte, damaged
files. Bytes on disk are the files' sizes (database + -wal + -shm)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from posdiag.service import payloads
from posdiag.service.outbox import (
    MIN_MAX_BYTES,
    DiskBudget,
    Outbox,
    OutboxCorrupt,
    OutboxError,
    OutboxFull,
    disk_bytes,
)
from posdiag.service.payloads import KINDS

TOPIC = "posdiag/v1/T-0001/report"
DEFAULT_MAX_BYTES = 8 << 20  # [outbox] max_bytes default


def body(n: int):
    def build(seq: int) -> bytes:
        return (b'{"seq":%d,"x":"' % seq + b"x" * n)[:n] + b'"}'
    return build


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(fs: Path) -> Path:
    """Take every free byte of ``fs`` with a file; return it (unlink it to give space back)."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)
    return filler


def total_counted(h: payloads.OutboxHealth) -> int:
    return (h.dropped_event + h.dropped_report + h.dropped_heartbeat + h.denied
            + h.store_failed_event + h.store_failed_report + h.store_failed_heartbeat)


# -- 1. bounded on disk ----------------------------------------------------------------------

@pytest.mark.parametrize("max_bytes", [MIN_MAX_BYTES, 1 << 20, DEFAULT_MAX_BYTES])
def test_budget_adds_up_to_at_most_max_bytes(max_bytes: int) -> None:
    b = DiskBudget.of(max_bytes)
    assert b.total_bytes <= max_bytes
    assert 0 < b.message_bytes < max_bytes // 3
    assert b.wal_autocheckpoint >= 8


def test_max_bytes_below_the_smallest_outbox_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f">= {MIN_MAX_BYTES}"):
        Outbox(tmp_path / "o.sqlite", MIN_MAX_BYTES - 1)


@pytest.mark.parametrize(("size", "max_bytes"), [("512k", 256 << 10), ("1m", 512 << 10)])
def test_whole_outbox_stays_within_max_bytes_on_a_small_tmpfs(tmp_path: Path, size: str,
                                                              max_bytes: int) -> None:
    """Broker away, then back: every class, sizes from a heartbeat to a big report, the cap
    evicting all the time. Database + WAL + shm never pass max_bytes, so a tmpfs twice that
    size never fills and no store fails."""
    rng = random.Random(15)
    with tmpfs(tmp_path / "fs", size) as fs, Outbox(fs / "outbox.sqlite", max_bytes) as box:
        peak = 0
        for i in range(1500):
            box_put_or_refused(box, rng.choice(KINDS), rng.choice((150, 400, 1000, 2100, 6000)))
            if i > 900 and rng.random() < 0.5:  # the broker is back: deliveries
                for m in box.pending(rng.randint(1, 3)):
                    box.ack(m.seq)
            peak = max(peak, box.disk_bytes())
            assert peak <= max_bytes, f"{peak} bytes on disk after {i + 1} puts"
        h = box.health()
        assert h.store_failed_event + h.store_failed_report + h.store_failed_heartbeat == 0
        assert h.dropped_heartbeat > 0  # the cap did work
        assert h.bytes <= box.message_cap


def box_put_or_refused(box: Outbox, kind: str, n: int) -> None:
    from posdiag.service.outbox import MessageRefused

    with contextlib.suppress(MessageRefused):
        box.put(kind, TOPIC, body(n))


@pytest.mark.parametrize("size", ["512k", "1m"])
def test_default_max_bytes_on_a_small_tmpfs_keeps_delivering(tmp_path: Path, size: str) -> None:
    """As found: max_bytes 8 MiB on a state file system with less free, broker up, the box
    empty after every message. The WAL used to grow to 4 MiB and fill the file system; then
    every store failed for good. Now the WAL reuses its space and every store works."""
    with tmpfs(tmp_path / "fs", size) as fs, \
            Outbox(fs / "outbox.sqlite", DEFAULT_MAX_BYTES) as box:
        for i in range(1, 1501):
            seq = box.put(("report", "heartbeat", "event")[i % 3], TOPIC, body(1000))
            assert seq == i
            assert box.ack(seq)
        assert box.health().depth == 0
        assert box.disk_bytes() <= int(size[:-1]) * (1 << (20 if size.endswith("m") else 10))


def test_full_file_system_then_space_returns_resumes_and_counts(tmp_path: Path) -> None:
    """A 1 MiB tmpfs filled by another file while messages wait (broker away): stores fail,
    each counted with its seq used up; the file freed, storing resumes by itself, and every
    seq the outbox handed out is either delivered or counted."""
    with tmpfs(tmp_path / "fs", "1m") as fs, \
            Outbox(fs / "outbox.sqlite", DEFAULT_MAX_BYTES) as box:
        handed_out: list[int] = []
        for _ in range(20):
            handed_out.append(box.put("report", TOPIC, body(1000)))
        filler = fill(fs)
        failed = 0
        for i in range(200):
            kind = KINDS[i % 3]
            try:
                handed_out.append(box.put(kind, TOPIC, body(1000)))
            except OutboxFull as e:
                assert "full" in str(e)
                failed += 1
        assert failed > 0, "the filled file system should have refused some stores"
        h = box.health()
        assert h.store_failed_event + h.store_failed_report + h.store_failed_heartbeat == failed
        filler.unlink()
        after = box.put("heartbeat", TOPIC, body(200))
        delivered = [m.seq for m in box.pending(10_000)]
        for m in box.pending(10_000):
            box.ack(m.seq)
        h = box.health()
        # Every seq up to the last one is accounted for: delivered or counted.
        assert len(delivered) + total_counted(h) == after
        assert after == 20 + 200 + 1


# -- 2. counted, with the seq used up --------------------------------------------------------

def test_failed_store_uses_its_seq_and_reaches_the_next_heartbeat(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "512k") as fs:
        path = fs / "outbox.sqlite"
        with Outbox(path, DEFAULT_MAX_BYTES) as box:
            assert box.put("event", TOPIC, body(100)) == 1
            filler = fill(fs)
            stored = [1]
            with contextlib.suppress(OutboxFull):
                for _ in range(1000):
                    stored.append(box.put("report", TOPIC, body(1000)))
            for kind in ("heartbeat", "heartbeat", "event"):
                with pytest.raises(OutboxFull):
                    box.put(kind, TOPIC, body(1000))
            # Not on disk yet (nothing can be written), but already in health().
            h = box.health()
            assert (h.store_failed_report, h.store_failed_heartbeat, h.store_failed_event) == \
                (1, 2, 1)
            filler.unlink()

            def heartbeat(seq: int) -> bytes:
                return payloads.dumps(payloads.heartbeat(
                    "T-0001", seq, [], valid_for_s=60, outbox=box.health()))

            seq = box.put("heartbeat", TOPIC, heartbeat)
            assert seq == stored[-1] + 4 + 1  # four failed stores, four seqs skipped
            sent = next(m for m in box.pending(10_000) if m.seq == seq)
            out = json.loads(sent.payload)["outbox"]
            assert out["store_failed"] == {"event": 1, "report": 1, "heartbeat": 2}
            assert out["id"] == box.outbox_id
        with Outbox(path, DEFAULT_MAX_BYTES) as again:  # written with that heartbeat
            h = again.health()
            assert (h.store_failed_report, h.store_failed_heartbeat, h.store_failed_event) == \
                (1, 2, 1)
            gaps = set(range(1, seq + 1)) - {m.seq for m in again.pending(10_000)}
            assert len(gaps) == total_counted(h) == 4


def test_heartbeat_schema_takes_the_new_counters_and_id(tmp_path: Path) -> None:
    from posdiag import schemas

    with Outbox(tmp_path / "o.sqlite", MIN_MAX_BYTES) as box:
        doc = payloads.heartbeat("T-0001", 1, [], valid_for_s=60, outbox=box.health())
        schemas.validate("heartbeat", doc)
        assert doc["outbox"]["id"] == box.outbox_id
        birth = payloads.status("T-0001", "online", None, outbox_id=box.outbox_id)
        schemas.validate("status", birth)
        assert birth["agent"]["outbox_id"] == box.outbox_id


# -- 4. damage that SQLite accepts quietly ---------------------------------------------------

CRASHING_CHILD = textwrap.dedent("""
    import os, sys
    from posdiag.service.outbox import Outbox
    box = Outbox(sys.argv[1], 1 << 20)
    for _ in range(int(sys.argv[2])):
        box.put("report", "p/T-1/report", lambda s: b"r" * 800)
    os._exit(0)  # like SIGKILL: no close, the WAL keeps what it has
""")


def crash_after(path: Path, puts: int) -> None:
    subprocess.run([sys.executable, "-c", CRASHING_CHILD, str(path), str(puts)], check=True)


def test_zero_byte_outbox_is_damage_moved_aside_and_logged(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    with Outbox(path, MIN_MAX_BYTES) as box:
        box.put("report", TOPIC, body(100))
        old_id = box.outbox_id
    path.write_bytes(b"")  # what a file system repair or a botched copy leaves
    with pytest.raises(OutboxCorrupt, match="empty"):
        Outbox(path, MIN_MAX_BYTES)
    with caplog.at_level(logging.WARNING, logger="posdiag.service.outbox"), \
            Outbox.recover(path, MIN_MAX_BYTES) as box:
        assert box.outbox_id != old_id  # the backend's signal that seq started again
    assert "damaged" in caplog.text and "moved to" in caplog.text
    assert len(list(path.parent.glob("outbox.sqlite.corrupt-*"))) == 1


def test_damaged_wal_is_damage_not_an_older_or_empty_outbox(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    crash_after(path, 30)
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 32
    with wal.open("r+b") as f:
        f.write(os.urandom(32))
    with pytest.raises(OutboxCorrupt, match="write-ahead log"):
        Outbox(path, 1 << 20)
    with Outbox.recover(path, 1 << 20) as box:
        # The counter is carried over where the moved file still tells it: seq never reused.
        assert box.put("report", TOPIC, body(100)) > 1


def test_zero_byte_database_with_damaged_wal_does_not_restart_seq_silently(
        tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    crash_after(path, 3)
    path.write_bytes(b"")
    with Path(f"{path}-wal").open("r+b") as f:
        f.write(b"\0" * 32)
    with pytest.raises(OutboxCorrupt):
        Outbox(path, 1 << 20)


def test_outbox_id_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, MIN_MAX_BYTES) as box:
        first = box.outbox_id
    with Outbox(path, MIN_MAX_BYTES) as box:
        assert box.outbox_id == first
        assert box.health().outbox_id == first
    with Outbox(tmp_path / "other.sqlite", MIN_MAX_BYTES) as other:
        assert other.outbox_id != first


def test_an_outbox_of_the_previous_version_is_upgraded_in_place(tmp_path: Path) -> None:
    """Terminals in the field hold schema-1 outboxes: they keep their messages and seq and get
    an id and the new counters."""
    from posdiag.service.outbox import _COUNTERS_V1, _SCHEMA, APPLICATION_ID, PRIORITY

    path = tmp_path / "o.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)
    conn.executemany("INSERT INTO meta VALUES (?, ?)",
                     [(k, {"next_seq": 8, "depth_report": 1, "bytes_report": 11}.get(k, 0))
                      for k in _COUNTERS_V1])
    conn.execute("INSERT INTO messages VALUES (7, 'report', ?, 't', ?, 0, 11)",
                 (PRIORITY["report"], b"0123456789"))
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.close()
    os.chmod(path, 0o600)
    with Outbox(path, MIN_MAX_BYTES) as box:
        assert [m.seq for m in box.pending(10)] == [7]
        assert len(box.outbox_id) == 16
        assert box.put("event", TOPIC, body(10)) == 8
        assert box.health().store_failed_event == 0


# -- 5. said once ----------------------------------------------------------------------------

def test_disk_full_is_logged_once_and_again_when_it_clears(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    with tmpfs(tmp_path / "fs", "512k") as fs, \
            Outbox(fs / "outbox.sqlite", DEFAULT_MAX_BYTES) as box, \
            caplog.at_level(logging.INFO, logger="posdiag.service.outbox"):
        filler = fill(fs)
        failures = 0
        for _ in range(300):  # more than the 118 of the field report
            try:
                box.put("report", TOPIC, body(3000))
            except OutboxError:
                failures += 1
        assert failures > 100
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "file system is full" in errors[0].getMessage()
        filler.unlink()
        box.put("heartbeat", TOPIC, body(100))
        box.put("heartbeat", TOPIC, body(100))
        cleared = [r.getMessage() for r in caplog.records
                   if "storing works again;" in r.getMessage()]
        assert len(cleared) == 1
        assert f"{failures} message(s) could not be stored" in cleared[0]
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_disk_bytes_counts_all_three_files(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, MIN_MAX_BYTES) as box:
        box.put("report", TOPIC, body(500))
        files = sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal", "-shm")
                    if Path(f"{path}{s}").exists())
        assert box.disk_bytes() == disk_bytes(path) == files
        assert Path(f"{path}-shm").exists()
