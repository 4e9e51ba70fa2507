"""The on-disk outbox: persistent gap-free seq, oldest-first delivery, ack/reject, the byte cap
with priorities, durability under SIGKILL, disk full, corruption, threads, and a model check."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from posdiag.errors import PosdiagError
from posdiag.service.outbox import (
    MessageRefused,
    Outbox,
    OutboxCorrupt,
    OutboxError,
    OutboxFull,
)
from posdiag.service.payloads import KINDS, OutboxHealth

TOPIC = "t"  # one byte, so a message of size n has a payload of n - 1 bytes


def sized(n: int):
    """A build callback whose message counts n bytes against the cap and names its seq."""
    def build(seq: int) -> bytes:
        head = b"%d:" % seq
        return (head + b"x" * n)[: n - len(TOPIC)]
    return build


def seqs(box: Outbox) -> list[int]:
    return [m.seq for m in box.pending(1_000_000)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite"


@pytest.fixture
def box(path: Path) -> Iterator[Outbox]:
    with Outbox(path, 1 << 20) as b:
        yield b


# -- seq -------------------------------------------------------------------------------------

def test_seq_starts_at_one_and_build_gets_it(box: Outbox) -> None:
    seen: list[int] = []

    def build(seq: int) -> bytes:
        seen.append(seq)
        return b'{"seq":%d}' % seq

    assert box.put("report", "p/T-1/report", build) == 1
    assert box.put("heartbeat", "p/T-1/heartbeat", build) == 2
    assert seen == [1, 2]
    [m1, m2] = box.pending(10)
    assert (m1.seq, m1.kind, m1.topic, m1.payload) == (1, "report", "p/T-1/report", b'{"seq":1}')
    assert (m2.seq, m2.kind, m2.payload) == (2, "heartbeat", b'{"seq":2}')


def test_seq_is_persistent_gap_free_and_never_reused(path: Path) -> None:
    with Outbox(path, 1 << 20) as box:
        assert [box.put("event", TOPIC, sized(10)) for _ in range(3)] == [1, 2, 3]
        for s in (1, 2, 3):
            box.ack(s)
    with Outbox(path, 1 << 20) as box:
        assert box.health().depth == 0
        assert box.put("report", TOPIC, sized(10)) == 4
        box.ack(4)
    with Outbox(path, 1 << 20) as box:
        assert [box.put("heartbeat", TOPIC, sized(10)) for _ in range(2)] == [5, 6]
        assert seqs(box) == [5, 6]


def test_failing_build_stores_nothing_and_uses_no_seq(box: Outbox) -> None:
    def broken(seq: int) -> bytes:
        raise RuntimeError("serialiser bug")

    with pytest.raises(RuntimeError, match="serialiser bug"):
        box.put("report", TOPIC, broken)
    with pytest.raises(TypeError, match="bytes"):
        box.put("report", TOPIC, lambda seq: "text")  # type: ignore[arg-type, return-value]
    assert box.health() == OutboxHealth(outbox_id=box.outbox_id)
    assert box.put("report", TOPIC, sized(10)) == 1


def test_build_may_read_health_but_not_put(box: Outbox) -> None:
    box.put("event", TOPIC, sized(50))

    def heartbeat(seq: int) -> bytes:
        h = box.health()
        return b"seq=%d depth=%d" % (seq, h.depth)

    assert box.put("heartbeat", TOPIC, heartbeat) == 2
    assert box.pending(10)[1].payload == b"seq=2 depth=1"

    def nested(seq: int) -> bytes:
        box.put("event", TOPIC, sized(10))
        return b"x"

    with pytest.raises(OutboxError, match="inside a build"):
        box.put("report", TOPIC, nested)
    assert seqs(box) == [1, 2]
    assert box.put("report", TOPIC, sized(10)) == 3


def test_bad_arguments_are_refused(box: Outbox) -> None:
    with pytest.raises(ValueError, match="kind"):
        box.put("status", TOPIC, sized(10))
    for topic in ("", "a/+/b", "a/#", "a\x00b"):
        with pytest.raises(ValueError, match="topic"):
            box.put("report", topic, sized(10))
    with pytest.raises(ValueError, match="limit"):
        box.pending(-1)
    assert box.put("report", TOPIC, sized(10)) == 1


# -- delivery --------------------------------------------------------------------------------

def test_pending_is_oldest_first_with_limit_and_after_seq(box: Outbox) -> None:
    kinds = ["heartbeat", "event", "report", "event", "heartbeat", "report"]
    for k in kinds:
        box.put(k, f"p/{k}", sized(20))
    assert [(m.seq, m.kind) for m in box.pending(100)] == list(enumerate(kinds, 1))
    assert [m.seq for m in box.pending(2)] == [1, 2]
    assert [m.seq for m in box.pending(2, after_seq=2)] == [3, 4]
    assert [m.seq for m in box.pending(10, after_seq=5)] == [6]
    assert box.pending(10, after_seq=6) == []
    assert box.pending(0) == []
    box.ack(3)
    assert [m.seq for m in box.pending(2, after_seq=2)] == [4, 5]


def test_ack_deletes_once_and_updates_health(box: Outbox) -> None:
    box.put("report", TOPIC, sized(100))
    box.put("event", TOPIC, sized(40))
    assert box.health().depth == 2
    assert box.health().bytes == 140
    assert box.ack(1) is True
    assert box.ack(1) is False
    assert box.ack(999) is False
    h = box.health()
    assert (h.depth, h.bytes, h.denied) == (1, 40, 0)
    assert seqs(box) == [2]


def test_reject_deletes_and_counts_denied_once(path: Path) -> None:
    with Outbox(path, 1 << 20) as box:
        box.put("report", TOPIC, sized(100))
        box.put("report", TOPIC, sized(100))
        assert box.reject(1, 0x87) is True
        assert box.reject(1, 0x87) is False
        with pytest.raises(ValueError, match="not a failure"):
            box.reject(2, 0x00)
        assert seqs(box) == [2]
        assert box.health().denied == 1
    with Outbox(path, 1 << 20) as box:
        assert box.health().denied == 1
        assert box.health().depth == 1


def test_health_ages_the_oldest_message_with_the_injected_clock(path: Path) -> None:
    now = [1000.0]
    with Outbox(path, 1 << 20, clock=lambda: now[0]) as box:
        assert box.health().oldest_age_s is None
        box.put("report", TOPIC, sized(10))
        now[0] = 1030.0
        box.put("report", TOPIC, sized(10))
        now[0] = 1045.5
        assert box.health().oldest_age_s == pytest.approx(45.5)
        box.ack(1)
        assert box.health().oldest_age_s == pytest.approx(15.5)
        now[0] = 500.0  # the wall clock stepped back (NTP after a boot without RTC)
        assert box.health().oldest_age_s == 0.0
        assert box.health().to_dict()["oldest_age_s"] == 0.0


# -- the cap ---------------------------------------------------------------------------------

def test_cap_drops_oldest_of_lowest_class_first(path: Path) -> None:
    with Outbox(path, 1 << 20, message_cap=1000) as box:
        def put(kind: str, size: int = 100) -> int:
            return box.put(kind, TOPIC, sized(size))

        # 1h 2r 3e 4h 5r 6e 7h 8r 9e 10h: exactly full, nothing dropped yet.
        for k in "hreh" "reh" "reh":
            put({"h": "heartbeat", "r": "report", "e": "event"}[k])
        assert seqs(box) == list(range(1, 11))
        assert box.health().bytes == 1000

        assert put("report") == 11  # drops heartbeat 1
        assert put("event") == 12  # drops heartbeat 4 (an event outranks them all)
        assert put("event") == 13  # drops heartbeat 7
        assert put("report") == 14  # drops heartbeat 10: no heartbeat left
        assert seqs(box) == [2, 3, 5, 6, 8, 9, 11, 12, 13, 14]
        with pytest.raises(MessageRefused) as refused:
            put("heartbeat")  # only reports and events could make room: refused itself
        assert (refused.value.seq, refused.value.kind) == (15, "heartbeat")
        assert seqs(box) == [2, 3, 5, 6, 8, 9, 11, 12, 13, 14]

        assert put("event") == 16  # drops report 2
        assert put("report") == 17  # drops report 5: oldest of its own class
        assert put("event", 250) == 18  # needs three slots: reports 8, 11, 14
        assert seqs(box) == [3, 6, 9, 12, 13, 16, 17, 18]
        assert put("report") == 19  # drops report 17
        assert put("event") == 20  # drops report 19
        assert put("event") == 21  # only events left: drops the oldest, 3
        assert seqs(box) == [6, 9, 12, 13, 16, 18, 20, 21]
        h = box.health()
        assert (h.dropped_heartbeat, h.dropped_report, h.dropped_event) == (5, 7, 1)
        assert h.bytes == 950 and h.depth == 8
    with Outbox(path, 1 << 20, message_cap=1000) as box:  # the counters are persistent
        h = box.health()
        assert (h.dropped_heartbeat, h.dropped_report, h.dropped_event) == (5, 7, 1)


def test_message_larger_than_cap_is_refused_not_emptying_the_box(box: Outbox,
                                                                  path: Path) -> None:
    box.close()
    with Outbox(path, 1 << 20, message_cap=1000) as small:
        for _ in range(5):
            small.put("heartbeat", TOPIC, sized(100))
        with pytest.raises(MessageRefused, match="larger than the whole cap") as refused:
            small.put("event", TOPIC, sized(1001))
        assert isinstance(refused.value, OutboxError)
        assert isinstance(refused.value, PosdiagError)
        assert str(path) in str(refused.value)
        assert refused.value.size == 1001
        assert seqs(small) == [1, 2, 3, 4, 5]
        h = small.health()
        assert (h.dropped_event, h.dropped_heartbeat, h.depth) == (1, 0, 5)
        # The refused message used up its seq: the backend's gap matches dropped_event.
        assert small.put("event", TOPIC, sized(1000)) == 7
        assert seqs(small) == [7]
        assert small.health().dropped_heartbeat == 5


def test_lowered_cap_applies_on_reopen(path: Path) -> None:
    with Outbox(path, 1 << 20, message_cap=10_000) as box:
        for k in ("event", "heartbeat", "report", "heartbeat", "event"):
            box.put(k, TOPIC, sized(100))
    with Outbox(path, 1 << 20, message_cap=250) as box:
        assert seqs(box) == [1, 5]
        h = box.health()
        assert (h.bytes, h.dropped_heartbeat, h.dropped_report, h.dropped_event) == (200, 2, 1, 0)
        assert box.put("event", TOPIC, sized(10)) == 6


# -- files -----------------------------------------------------------------------------------

def test_parent_0700_file_0600_wal_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = tmp_path / "new" / "outbox.sqlite"
        with Outbox(p, 1 << 20) as box:
            box.put("report", TOPIC, sized(100))
            assert stat.S_IMODE(p.parent.stat().st_mode) == 0o700
            assert stat.S_IMODE(p.stat().st_mode) == 0o600
            wal = Path(f"{p}-wal")
            assert wal.exists()
            assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_world_readable_file_is_tightened(path: Path) -> None:
    with Outbox(path, 1 << 20) as box:
        box.put("report", TOPIC, sized(100))
    os.chmod(path, 0o644)
    with Outbox(path, 1 << 20) as box:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert seqs(box) == [1]


def test_database_is_wal_with_synchronous_full(box: Outbox, path: Path) -> None:
    box.put("report", TOPIC, sized(100))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert box._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_closed_outbox_says_so(path: Path) -> None:
    box = Outbox(path, 1 << 20)
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.put("report", TOPIC, sized(10))
    with pytest.raises(OutboxError, match="closed"):
        box.health()


# -- corruption and recovery -----------------------------------------------------------------

def test_garbage_file_is_corrupt_and_recover_moves_it_aside(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    garbage = b"this is not an sqlite database, it is a text file\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(OutboxCorrupt) as corrupt:
        Outbox(path, 1 << 20)
    assert str(path) in str(corrupt.value)
    assert corrupt.value.path == path

    clock = lambda: 1_767_225_600.0  # 2026-01-01T00:00:00Z  # noqa: E731
    with Outbox.recover(path, 1 << 20, clock=clock) as box:
        aside = path.with_name("outbox.sqlite.corrupt-20260101T000000Z")
        assert aside.read_bytes() == garbage
        assert box.put("event", TOPIC, sized(10)) == 1
        assert seqs(box) == [1]
    # A second recovery in the same second does not overwrite the first one's evidence.
    path.write_bytes(garbage[:500])
    with Outbox.recover(path, 1 << 20, clock=clock) as box:
        assert aside.read_bytes() == garbage
        second = path.with_name("outbox.sqlite.corrupt-20260101T000000Z-2")
        assert second.read_bytes() == garbage[:500]
        assert box.health().depth == 0


def test_damaged_page_is_corrupt(path: Path) -> None:
    with Outbox(path, 1 << 20) as box:
        for _ in range(60):
            box.put("report", TOPIC, sized(1500))
    data = bytearray(path.read_bytes())
    assert len(data) > 12 * 4096  # closing checkpointed the WAL into the file
    data[10 * 4096: 11 * 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    with pytest.raises(OutboxCorrupt, match="malformed"):
        Outbox(path, 1 << 20)


def test_recover_carries_the_seq_counter_over_when_it_can(path: Path) -> None:
    with Outbox(path, 1 << 20) as box:
        for _ in range(7):
            box.put("report", TOPIC, sized(50))
        box.ack(7)
    with Outbox.recover(path, 1 << 20) as box:
        assert box.health().depth == 0
        assert box.put("report", TOPIC, sized(50)) == 8
    assert len(list(path.parent.glob("outbox.sqlite.corrupt-*"))) == 1


def test_someone_elses_sqlite_database_is_not_ours(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, text TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxCorrupt, match="not a posdiag outbox"):
        Outbox(path, 1 << 20)


def test_newer_schema_is_an_error_not_corruption(path: Path) -> None:
    with Outbox(path, 1 << 20):
        pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="newer posdiag") as err:
        Outbox(path, 1 << 20)
    assert not isinstance(err.value, OutboxCorrupt)


# -- crashes and full disks ------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    from posdiag.service.outbox import Outbox
    box = Outbox(sys.argv[1], 1 << 30)
    kinds = ("report", "heartbeat", "event")
    for i in range(1_000_000):
        seq = box.put(kinds[i % 3], "p/T-1/x", lambda s: b'{"seq":%d}' % s + b"x" * 1000)
        print(seq, flush=True)
""")


def test_sigkill_loses_nothing_that_was_committed(path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                             stdout=subprocess.PIPE, text=True)
    printed: list[int] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            printed.append(int(line))
            if len(printed) == 150:
                os.kill(child.pid, signal.SIGKILL)
                break
        printed.extend(int(line) for line in child.stdout)  # lines already in the pipe
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert printed == list(range(1, len(printed) + 1))
    with Outbox(path, 1 << 30) as box:
        stored = seqs(box)
        # Every printed seq is there; at most one more committed before its print.
        assert stored[: len(printed)] == printed
        assert stored == list(range(1, len(stored) + 1))
        assert len(stored) - len(printed) in (0, 1)
        assert all(m.payload.startswith(b'{"seq":%d}' % m.seq) for m in box.pending(10**6))
        assert box.health().depth == len(stored)
        assert box.put("event", TOPIC, sized(10)) == len(stored) + 1


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "256k") -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_disk_full_raises_outbox_full_and_keeps_what_was_committed(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "fs") as fs:
        p = fs / "outbox.sqlite"
        committed: list[int] = []
        box = Outbox(p, 10 << 20)
        try:
            with pytest.raises(OutboxFull) as full:
                for _ in range(1000):
                    committed.append(box.put("report", TOPIC, sized(1000)))
            assert "full" in str(full.value) and str(p) in str(full.value)
            assert isinstance(full.value, OutboxError)
            assert len(committed) > 3
            # Nothing half-written: exactly the committed messages, and the totals agree.
            assert seqs(box) == committed
            assert box.health().depth == len(committed)
            assert box.health().bytes == 1000 * len(committed)
        finally:
            box.close()
        with Outbox(p, 10 << 20) as again:  # the disk is still full
            assert seqs(again) == committed
            assert all(len(m.payload) == 999 for m in again.pending(1000))


def test_outbox_works_again_once_space_is_freed(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "fs", "512k") as fs, Outbox(fs / "outbox.sqlite", 10 << 20) as box:
        assert box.put("event", TOPIC, sized(500)) == 1
        filler = fs / "filler"
        fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        stored = [1]
        with pytest.raises(OutboxFull):
            for _ in range(1000):
                stored.append(box.put("report", TOPIC, sized(1000)))
        filler.unlink()
        seq = box.put("heartbeat", TOPIC, sized(200))
        assert seq == stored[-1] + 2  # the failed put used its seq: the gap is counted
        assert box.health().store_failed_report == 1
        assert seqs(box) == [*stored, seq]
        assert box.ack(1) is True


# -- threads ---------------------------------------------------------------------------------

def test_concurrent_put_and_ack(box: Outbox) -> None:
    producers, per_producer = 3, 120
    total = producers * per_producer
    returned: list[int] = []
    acked: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def produce() -> None:
        try:
            for i in range(per_producer):
                seq = box.put(KINDS[i % 3], TOPIC, sized(200))
                with lock:
                    returned.append(seq)
        except BaseException as exc:
            errors.append(exc)

    def consume() -> None:
        deadline = time.monotonic() + 30
        try:
            while len(acked) < total and time.monotonic() < deadline:
                for m in box.pending(50):
                    assert box.ack(m.seq) is True
                    acked.append(m.seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    threads.append(threading.Thread(target=consume))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(returned) == list(range(1, total + 1))
    assert sorted(acked) == list(range(1, total + 1))
    assert box.health() == OutboxHealth(outbox_id=box.outbox_id)


# -- the model -------------------------------------------------------------------------------

CAP = 1000
PRIO = {"heartbeat": 0, "report": 1, "event": 2}


class OutboxModel(RuleBasedStateMachine):
    """The outbox against a list of (seq, kind, size): put/ack/reject/reopen under a small cap."""

    stored_seqs = Bundle("stored_seqs")

    def __init__(self) -> None:
        super().__init__()
        # tmpfs: the model checks logic, not fsync; thousands of steps stay fast.
        self.dir = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.path = self.dir / "outbox.sqlite"
        self.box = Outbox(self.path, 1 << 20, message_cap=CAP)
        self.messages: list[tuple[int, str, int]] = []
        self.next_seq = 1
        self.dropped = dict.fromkeys(KINDS, 0)
        self.denied = 0

    def teardown(self) -> None:
        self.box.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize()
    def start(self) -> None:
        assert self.box.health() == OutboxHealth(outbox_id=self.box.outbox_id)

    def _model_put(self, kind: str, size: int) -> bool:
        seq = self.next_seq
        self.next_seq += 1
        total = sum(s for _, _, s in self.messages)
        higher = sum(s for _, k, s in self.messages if PRIO[k] > PRIO[kind])
        if size > CAP or higher + size > CAP:
            self.dropped[kind] += 1
            return False
        while total + size > CAP:
            victim = min((m for m in self.messages if PRIO[m[1]] <= PRIO[kind]),
                         key=lambda m: (PRIO[m[1]], m[0]))
            self.messages.remove(victim)
            self.dropped[victim[1]] += 1
            total -= victim[2]
        self.messages.append((seq, kind, size))
        return True

    @rule(target=stored_seqs, kind=st.sampled_from(KINDS),
          size=st.one_of(st.integers(1, 400), st.integers(900, 1100)))
    def put(self, kind: str, size: int):
        expected_seq = self.next_seq
        if self._model_put(kind, size):
            assert self.box.put(kind, TOPIC, sized(size)) == expected_seq
            return expected_seq
        with pytest.raises(MessageRefused) as refused:
            self.box.put(kind, TOPIC, sized(size))
        assert refused.value.seq == expected_seq
        return multiple()

    @rule(seq=consumes(stored_seqs))
    def ack(self, seq: int) -> None:
        present = any(m[0] == seq for m in self.messages)
        assert self.box.ack(seq) is present
        self.messages = [m for m in self.messages if m[0] != seq]

    @rule(seq=consumes(stored_seqs), code=st.sampled_from([0x80, 0x87, 0x97, 0xFF]))
    def reject(self, seq: int, code: int) -> None:
        present = any(m[0] == seq for m in self.messages)
        assert self.box.reject(seq, code) is present
        self.messages = [m for m in self.messages if m[0] != seq]
        self.denied += present

    @rule(seq=st.integers(-5, 500))
    def ack_anything(self, seq: int) -> None:
        present = any(m[0] == seq for m in self.messages)
        assert self.box.ack(seq) is present
        self.messages = [m for m in self.messages if m[0] != seq]

    @rule()
    def reopen(self) -> None:
        self.box.close()
        self.box = Outbox(self.path, 1 << 20, message_cap=CAP)

    @invariant()
    def same_messages(self) -> None:
        got = [(m.seq, m.kind, m.size) for m in self.box.pending(10_000)]
        assert got == self.messages

    @invariant()
    def same_health(self) -> None:
        h = self.box.health()
        assert h.depth == len(self.messages)
        assert h.bytes == sum(s for _, _, s in self.messages) <= CAP
        assert (h.oldest_age_s is None) == (not self.messages)
        assert (h.dropped_event, h.dropped_report, h.dropped_heartbeat) == (
            self.dropped["event"], self.dropped["report"], self.dropped["heartbeat"])
        assert h.denied == self.denied


OutboxModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                         deadline=None)
TestOutboxModel = OutboxModel.TestCase
