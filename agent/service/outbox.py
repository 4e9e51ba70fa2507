"""The on-disk outbox: every report, heartbeat and event is stored here before it is published
and deleted only after the broker's PUBACK.

Why our own (DESIGN §7): paho keeps QoS 1 messages in memory only, and disk buffers elsewhere
grew without bound, sent duplicates or stopped flushing. So this is SQLite in WAL mode with
``synchronous=FULL`` (terminals lose power), a hard byte cap with priorities, and counters for
everything it drops.

- ``max_bytes`` bounds the whole outbox on disk: database, write-ahead log (WAL) and its index
  (-shm). ``DiskBudget`` splits it: the database may not grow past ``db_pages``
  (``max_page_count``), the WAL is checkpointed every ``wal_autocheckpoint`` pages and can hold at
  most that plus one transaction, and the messages themselves may use ``message_bytes`` (about a
  quarter of ``max_bytes``: a page can be half empty, and the WAL needs room for a copy).
- ``seq`` is one counter per terminal, taken in the same transaction that stores the message, so
  it survives restarts and is never reused. A gap seen by the backend is always a counted drop:
  a message refused by the cap, evicted by it, refused by the broker (``denied``) or one that
  could not be stored at all (``store_failed``: the file system was full or failing). A failed
  store uses up its seq too: the counter and the skipped seq are written together by the next
  transaction that succeeds, so the gap and its count reach the backend together.
- The cap counts each message as ``len(topic) + len(payload)`` (UTF-8 bytes, what a PUBLISH
  carries). When a new message does not fit, the oldest message of the lowest priority class
  (heartbeat < report < event) goes first, but never one that outranks the new message: if only
  higher classes could make room, the new message itself is refused (``MessageRefused``). A full
  file system is treated the same way: the WAL is checkpointed so it is reused from its start,
  then lower-or-equal messages are evicted until the new one fits in the space already held.
- ``outbox_id`` is random, created with the database and kept in it: a backend that sees seq
  start again also sees a new id (the kernel's boot id does not change when only the agent
  restarts, nor when a damaged outbox is replaced).
- Thread-safety: one SQLite connection guarded by one re-entrant lock. The daemon calls ``put``
  from its main loop and ``ack`` from paho's network thread; the lock serialises them (each call
  is one short transaction). Re-entrant so that ``build`` may call ``health()`` (a heartbeat
  carries the outbox health and is built inside ``put``).
- Running totals (depth, bytes per class, drop counters) live in the ``meta`` table and change
  in the same transactions as the messages, so ``health()`` is a few indexed reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from posdiag.errors import PosdiagError
from posdiag.service.payloads import KINDS, OutboxHealth

log = logging.getLogger(__name__)

APPLICATION_ID = 0x706F7344  # "posD" in the SQLite header: this file is a posdiag outbox
SCHEMA_VERSION = 2  # 2: outbox_id, store_failed counters
BUSY_TIMEOUT_S = 5.0

PAGE_SIZE = 4096
FRAME_BYTES = PAGE_SIZE + 24  # a WAL frame: header + page
WAL_HEADER_BYTES = 32
SHM_REGION_BYTES = 32768  # the WAL index grows in regions of this size ...
FRAMES_PER_SHM_REGION = 4062  # ... each indexing about this many frames
FIXED_PAGES = 8  # page 1, the roots of two tables, an index and ``about``, interior pages
MIN_MAX_BYTES = 256 * 1024  # the smallest outbox that still holds a few reports
FULL_RETRIES = 4  # on SQLITE_FULL: one checkpoint, then evictions at the page budget

# Higher number = more important; KINDS lists the highest first.
PRIORITY = {kind: len(KINDS) - 1 - i for i, kind in enumerate(KINDS)}

_SCHEMA = """
CREATE TABLE messages (
    seq      INTEGER PRIMARY KEY,
    kind     TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    created  REAL    NOT NULL,
    size     INTEGER NOT NULL
);
CREATE INDEX messages_by_priority ON messages (priority, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
_ABOUT = "CREATE TABLE about (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"

_COUNTERS_V1 = ("next_seq", "denied",
                *(f"dropped_{k}" for k in KINDS), *(f"depth_{k}" for k in KINDS),
                *(f"bytes_{k}" for k in KINDS))
_COUNTERS = (*_COUNTERS_V1, *(f"failed_{k}" for k in KINDS))


class OutboxError(PosdiagError):
    """The outbox cannot do what was asked; ``path`` names the database file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"outbox {path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class OutboxCorrupt(OutboxError):
    """Not an SQLite file, a damaged one (also: empty, or its WAL damaged), or another program's
    database. ``Outbox.recover`` moves it aside and starts a fresh outbox."""


class OutboxFull(OutboxError):
    """The file system holding the outbox is full; the failed call wrote nothing.

    From ``put``: the message is counted in ``store_failed`` and its seq was used up.
    """


class StoreFailed(OutboxError):
    """``put`` could not store the message (I/O error, not a full disk); counted like
    ``OutboxFull``: in ``store_failed``, and its seq was used up."""


class MessageRefused(OutboxError):
    """A message was not stored because of the byte cap; it is counted as dropped in its class.

    Either it is larger than the whole cap, or only messages of a higher class could make room.
    Its ``seq`` was used up, so the backend's gap matches the drop counter.
    """

    def __init__(self, path: Path | str, problem: str, *, seq: int, kind: str,
                 size: int) -> None:
        super().__init__(path, problem)
        self.seq = seq
        self.kind = kind
        self.size = size


@dataclass(frozen=True)
class Message:
    """One stored message, ready to publish at QoS 1."""

    seq: int
    kind: str
    topic: str
    payload: bytes
    created: float

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"seq must be >= 1, got {self.seq}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.payload, bytes):
            raise TypeError("payload must be bytes")

    @property
    def size(self) -> int:
        return message_size(self.topic, self.payload)


@dataclass(frozen=True)
class DiskBudget:
    """How ``max_bytes`` on disk is shared between the database, its WAL and the WAL index.

    database ``db_pages`` pages + WAL header + (``wal_autocheckpoint`` + ``db_pages``) frames
    (a checkpoint runs after the commit that passes the threshold, and one transaction writes
    each page at most once) + the -shm regions indexing those frames <= ``max_bytes``.
    """

    max_bytes: int
    db_pages: int
    wal_autocheckpoint: int
    shm_bytes: int
    message_bytes: int

    @classmethod
    def of(cls, max_bytes: int) -> DiskBudget:
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be >= {MIN_MAX_BYTES} (database, WAL and its"
                             f" index together), got {max_bytes}")
        frames = max_bytes // FRAME_BYTES
        regions = 1 + max(0, -(-(frames - FRAMES_PER_SHM_REGION) // 4096))
        shm = regions * SHM_REGION_BYTES
        rest = max_bytes - shm - WAL_HEADER_BYTES
        # Checkpoint often on a small box (the WAL is the cost), at most every 1000 pages.
        ckpt = min(1000, max(8, rest // 32 // FRAME_BYTES))
        pages = (rest - ckpt * FRAME_BYTES) // (PAGE_SIZE + FRAME_BYTES)
        # A row a little over half a page fills a page alone: count messages at half a page.
        return cls(max_bytes, pages, ckpt, shm, (pages - FIXED_PAGES) * PAGE_SIZE // 2)

    @property
    def wal_bytes(self) -> int:
        return WAL_HEADER_BYTES + (self.wal_autocheckpoint + self.db_pages) * FRAME_BYTES

    @property
    def wal_usual_bytes(self) -> int:
        """The WAL between checkpoints: the threshold and a transaction or two."""
        return WAL_HEADER_BYTES + 2 * self.wal_autocheckpoint * FRAME_BYTES

    @property
    def total_bytes(self) -> int:
        return self.db_pages * PAGE_SIZE + self.wal_bytes + self.shm_bytes


def message_size(topic: str, payload: bytes) -> int:
    """What one message counts against the cap."""
    return len(topic.encode("utf-8")) + len(payload)


def disk_bytes(path: Path | str) -> int:
    """Bytes the outbox at ``path`` holds on disk: the database, its -wal and -shm."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(f"{path}{suffix}").st_size
    return total


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic:
        raise ValueError("topic must be a non-empty string")
    if any(c in topic for c in "+#\x00"):
        raise ValueError(f"topic must not contain '+', '#' or NUL: {topic!r}")


def _is_full(exc: BaseException) -> bool:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    return code == sqlite3.SQLITE_FULL


class Outbox:
    """A bounded, persistent FIFO of MQTT messages with one terminal-wide ``seq``."""

    def __init__(self, path: Path | str, max_bytes: int, *,
                 clock: Callable[[], float] = time.time,
                 message_cap: int | None = None) -> None:
        """``max_bytes`` bounds the files on disk; ``message_cap`` (tests) overrides the share
        of it the messages may use (never more than the budget gives)."""
        self.budget = DiskBudget.of(max_bytes)
        if message_cap is not None and not 1 <= message_cap <= self.budget.message_bytes:
            raise ValueError(f"message_cap must be 1-{self.budget.message_bytes}, got"
                             f" {message_cap}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.message_cap = message_cap or self.budget.message_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self._building = False
        # Stores that failed since the last commit: their seqs are skipped and they are counted
        # in ``failed_<kind>`` by the next transaction that gets through.
        self._unsaved_failed = dict.fromkeys(KINDS, 0)
        self._failing: str | None = None  # what is wrong while stores fail (said once)
        self._failed_meanwhile = dict.fromkeys(KINDS, 0)
        self.outbox_id = ""
        self._max_pages = 0
        self._trying_size = 0
        created = self._prepare_file()
        damage = None if created else _damage_before_open(self.path)
        if damage:
            raise OutboxCorrupt(self.path, damage)
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from exc
        try:
            self._setup(conn, created)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "opening") from exc
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    # -- opening ---------------------------------------------------------------------------

    def _prepare_file(self) -> bool:
        """Create the parent (0700) and the file (0600) ourselves: SQLite would use the umask,
        and it gives its -wal and -shm files the mode of the database file. True when the file
        is new (so an empty file found here is damage, not a fresh start)."""
        parent = self.path.parent
        try:
            if not parent.exists():
                parent.mkdir(parents=True, mode=0o700)
                os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW,
                             0o600)
            except FileExistsError:
                mode = stat.S_IMODE(self.path.stat().st_mode)
                if mode & 0o077:
                    log.warning("outbox %s was mode %o; setting 0600", self.path, mode)
                    os.chmod(self.path, 0o600)
                return False
            os.close(fd)
            # A WAL left beside a file we just created belongs to a database that is gone.
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            return True
        except OSError as exc:
            raise OutboxError(self.path, f"cannot create: {exc.strerror or exc}") from exc

    def _setup(self, conn: sqlite3.Connection, created: bool) -> None:
        if created:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(self.path, f"cannot use WAL journal mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute(f"PRAGMA wal_autocheckpoint={self.budget.wal_autocheckpoint}")
        # After a checkpoint the WAL is cut back to its usual size (a burst may have grown it).
        conn.execute(f"PRAGMA journal_size_limit={self.budget.wal_usual_bytes}")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if app_id == 0 and tables == 0:
                if not created:
                    # We create the schema in the transaction that creates the file: an existing
                    # file without it lost its contents (a 0-byte file, a WAL that was damaged).
                    raise OutboxCorrupt(self.path, "the file holds no outbox any more (empty or"
                                                   " its write-ahead log lost)")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [(k, 1 if k == "next_seq" else 0) for k in _COUNTERS])
                self._create_about(conn)
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif app_id != APPLICATION_ID:
                raise OutboxCorrupt(self.path, "an SQLite database, but not a posdiag outbox")
            else:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise OutboxError(self.path, f"written by a newer posdiag (schema {version},"
                                                 f" this one reads {SCHEMA_VERSION})")
                if version < 2:
                    conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, 0)",
                                     [(k,) for k in _COUNTERS if k not in _COUNTERS_V1])
                    self._create_about(conn)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            row = conn.execute("SELECT value FROM about WHERE key = 'outbox_id'").fetchone()
            if row is None:
                raise OutboxCorrupt(self.path, "its outbox id is missing")
            self.outbox_id = str(row[0])
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        # Cheap at the outbox's size, and a bad eMMC is better found now than mid-delivery.
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise OutboxCorrupt(self.path, f"integrity check failed: {check[0][0]}")
        self._reconcile(conn)
        pages = self.budget.db_pages * PAGE_SIZE // page_size
        if conn.execute("PRAGMA page_count").fetchone()[0] > pages:
            self._shrink(conn)  # written under a larger cap (or by an older posdiag)
        self._max_pages = conn.execute(f"PRAGMA max_page_count={pages}").fetchone()[0]
        # A WAL left by an older posdiag may be large; one within budget is kept: its space
        # is what the next write can reuse on a full file system.
        self._keep_wal_small(conn)

    @staticmethod
    def _create_about(conn: sqlite3.Connection) -> None:
        conn.execute(_ABOUT)
        conn.execute("INSERT INTO about (key, value) VALUES ('outbox_id', ?)",
                     (secrets.token_hex(8),))

    def _shrink(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("outbox %s: larger on disk than max_bytes %d and cannot be compacted"
                        " now (%s); it shrinks when it can", self.path, self.max_bytes, exc)

    def _reconcile(self, conn: sqlite3.Connection) -> None:
        """Make the running totals agree with the rows and apply a cap lowered since last run."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            meta = self._read_meta(conn)
            if set(meta) != set(_COUNTERS):
                raise OutboxCorrupt(self.path, "the meta table is incomplete")
            fixed = dict(meta)
            for kind in KINDS:
                fixed[f"depth_{kind}"], fixed[f"bytes_{kind}"] = conn.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE priority = ?",
                    (PRIORITY[kind],)).fetchone()
            top = conn.execute("SELECT max(seq) FROM messages").fetchone()[0]
            if top is not None and fixed["next_seq"] <= top:
                fixed["next_seq"] = top + 1
            if fixed != meta:
                log.warning("outbox %s: running totals did not match the stored messages; fixed",
                            self.path)
            total = sum(fixed[f"bytes_{k}"] for k in KINDS)
            while total > self.message_cap:
                seq, kind, size = conn.execute(
                    "SELECT seq, kind, size FROM messages ORDER BY priority, seq LIMIT 1"
                ).fetchone()
                self._drop_stored(conn, fixed, seq, kind, size)
                total -= size
            self._write_meta(conn, meta, fixed)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # -- the public operations -------------------------------------------------------------

    def put(self, kind: str, topic: str, build: Callable[[int], bytes]) -> int:
        """Store one message built with the next ``seq``; return that seq.

        ``build(seq)`` runs inside the write transaction (keep it quick: serialise, nothing
        more); if it raises, nothing is stored and the seq is not used up. It may run more than
        once (with the same seq) when the file system is full and room has to be made.
        Raises ``MessageRefused`` (cap), ``OutboxFull`` (disk), ``StoreFailed`` (I/O) — all
        three counted, with their seq used up — or ``OutboxError``.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        _check_topic(topic)
        priority = PRIORITY[kind]
        with self._lock:
            conn = self._connection()
            if self._building:
                raise OutboxError(self.path, "put() called from inside a build callback")
            attempt = 0
            while True:
                try:
                    stored, seq, size = self._put_once(conn, kind, priority, topic, build)
                    break
                except _BuildFailed as failed:
                    raise failed.__cause__ from None  # type: ignore[misc]
                except sqlite3.Error as exc:
                    if _is_full(exc) and attempt < FULL_RETRIES:
                        attempt += 1
                        if attempt == 1:
                            # A full file system: reuse the WAL's space from its start.
                            self._checkpoint(conn, "RESTART")
                            continue
                        if self._free_pages_for(conn, priority):
                            continue
                    raise self._store_failed(kind, exc) from exc
            self._stored()
            if not stored:
                why = ("larger than the whole cap" if size > self.message_cap
                       else "only higher-priority messages could make room")
                raise MessageRefused(self.path, f"{kind} seq {seq} ({size} bytes) dropped: {why}"
                                     f" (max_bytes {self.max_bytes} holds {self.message_cap}"
                                     " bytes of messages)", seq=seq, kind=kind, size=size)
            self._keep_wal_small(conn)
        return seq

    def pending(self, limit: int, *, after_seq: int = 0) -> list[Message]:
        """Up to ``limit`` stored messages with seq > ``after_seq``, oldest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        with self._lock:
            conn = self._connection()
            try:
                rows = conn.execute(
                    "SELECT seq, kind, topic, payload, created FROM messages WHERE seq > ?"
                    " ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "reading pending messages") from exc
        return [Message(seq, kind, topic, bytes(payload), created)
                for seq, kind, topic, payload, created in rows]

    def ack(self, seq: int) -> bool:
        """Delete a delivered message; False when it was already gone (acks are idempotent)."""
        return self._delete(seq, denied=False)

    def reject(self, seq: int, reason_code: int) -> bool:
        """Delete a message the broker refused (PUBACK reason >= 0x80) and count it as denied,
        so it is not retried forever; False when it was already gone (counted once)."""
        if not 0x80 <= reason_code <= 0xFF:
            raise ValueError(f"reason_code {reason_code:#x} is not a failure (0x80-0xFF)")
        return self._delete(seq, denied=True)

    def health(self) -> OutboxHealth:
        """Depth, bytes, age of the oldest message and the counters, for every heartbeat.

        Stores that failed and are not yet written down are included: a heartbeat built in the
        transaction that writes them shows them, and one built before does too.
        """
        with self._lock:
            conn = self._connection()
            own = not conn.in_transaction  # inside put's build() we read its transaction
            try:
                if own:
                    conn.execute("BEGIN")
                try:
                    meta = self._read_meta(conn)
                    row = conn.execute(
                        "SELECT created FROM messages ORDER BY seq LIMIT 1").fetchone()
                finally:
                    if own:
                        conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc, "reading its health") from exc
            now = float(self._clock())
            failed = self._with_unsaved(meta)
        return OutboxHealth(
            depth=sum(meta[f"depth_{k}"] for k in KINDS),
            bytes=sum(meta[f"bytes_{k}"] for k in KINDS),
            # Clamped: the wall clock of a terminal without RTC can step backwards at NTP sync.
            oldest_age_s=None if row is None else max(0.0, now - row[0]),
            dropped_event=meta["dropped_event"],
            dropped_report=meta["dropped_report"],
            dropped_heartbeat=meta["dropped_heartbeat"],
            denied=meta["denied"],
            store_failed_event=failed["failed_event"],
            store_failed_report=failed["failed_report"],
            store_failed_heartbeat=failed["failed_heartbeat"],
            outbox_id=self.outbox_id,
        )

    def disk_bytes(self) -> int:
        """What the database, its WAL and WAL index hold on disk now."""
        return disk_bytes(self.path)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                if any(self._unsaved_failed.values()):
                    with contextlib.suppress(sqlite3.Error):
                        self._write_unsaved(self._conn)
                if any(self._unsaved_failed.values()):
                    log.warning("outbox %s: %d message(s) that could not be stored are not"
                                " counted on disk either (it is still failing)", self.path,
                                sum(self._unsaved_failed.values()))
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @classmethod
    def recover(cls, path: Path | str, max_bytes: int, *,
                clock: Callable[[], float] = time.time) -> Outbox:
        """Move a corrupt outbox (and its -wal/-shm) aside as ``<name>.corrupt-<UTC time>`` and
        return a fresh one. Call it after ``OutboxCorrupt``: it does not look before moving.

        The seq counter is carried over when the damaged file still yields it; otherwise the
        fresh outbox starts again at 1. Either way it has a new ``outbox_id``, which tells the
        backend that the messages before it are gone.
        """
        path = Path(path)
        stamp = datetime.fromtimestamp(clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while any(Path(f"{aside}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("", "-wal", "-shm"):
                # The WAL goes too: SQLite would replay a stale one into the fresh file.
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
        except OSError as exc:
            raise OutboxError(path, f"cannot move the damaged file aside: {exc}") from exc
        next_seq = _salvage_next_seq(aside)
        box = cls(path, max_bytes, clock=clock)
        if next_seq is not None:
            box._start_seq_at(next_seq)
        log.warning("outbox %s was damaged; moved to %s, starting a fresh one (outbox id %s)"
                    " at seq %d; messages not yet delivered are in the moved file", path, aside,
                    box.outbox_id, next_seq or 1)
        return box

    # -- internals -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(self.path, "closed")
        return self._conn

    def _put_once(self, conn: sqlite3.Connection, kind: str, priority: int, topic: str,
                  build: Callable[[int], bytes]) -> tuple[bool, int, int]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            meta = self._read_meta(conn)
            new = self._with_unsaved(meta)
            seq = new["next_seq"]
            self._building = True
            try:
                payload = build(seq)
                if not isinstance(payload, bytes | bytearray | memoryview):
                    raise TypeError(f"build() must return bytes, not {type(payload).__name__}")
            except Exception as exc:
                raise _BuildFailed() from exc
            finally:
                self._building = False
            payload = bytes(payload)
            size = self._trying_size = message_size(topic, payload)
            new["next_seq"] = seq + 1
            stored = self._make_room(conn, new, size, priority)
            if stored:
                conn.execute("INSERT INTO messages (seq, kind, priority, topic, payload,"
                             " created, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (seq, kind, priority, topic, payload, float(self._clock()), size))
                new[f"depth_{kind}"] += 1
                new[f"bytes_{kind}"] += size
            else:
                new[f"dropped_{kind}"] += 1
            self._write_meta(conn, meta, new)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return stored, seq, size

    def _with_unsaved(self, meta: dict[str, int]) -> dict[str, int]:
        """``meta`` plus the failed stores not yet on disk: their seqs and their counts, written
        by whichever transaction commits next (``_unsaved_written`` after its COMMIT)."""
        new = dict(meta)
        for kind, n in self._unsaved_failed.items():
            new["next_seq"] += n
            new[f"failed_{kind}"] += n
        return new

    def _write_unsaved(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            meta = self._read_meta(conn)
            self._write_meta(conn, meta, self._with_unsaved(meta))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._unsaved_written()

    def _unsaved_written(self) -> None:
        self._unsaved_failed = dict.fromkeys(KINDS, 0)

    def _stored(self) -> None:
        """A message went in: the failed stores are on disk now; say so if it was failing."""
        self._unsaved_written()
        if self._failing is not None:
            counts = self._failed_meanwhile
            log.warning("outbox %s: storing works again; %d message(s) could not be stored"
                        " meanwhile (event %d, report %d, heartbeat %d), counted as"
                        " store_failed", self.path, sum(counts.values()), counts["event"],
                        counts["report"], counts["heartbeat"])
            self._failing = None
            self._failed_meanwhile = dict.fromkeys(KINDS, 0)

    def _store_failed(self, kind: str, exc: sqlite3.Error) -> OutboxError:
        """Count a message that could not be stored (its seq is skipped) and log only the first
        of a run of failures: a full disk fails every store until it clears."""
        self._unsaved_failed[kind] += 1
        self._failed_meanwhile[kind] += 1
        err = self._error(exc, f"storing a {kind}")
        if isinstance(err, OutboxFull):
            problem = ("the file system is full" if self._fs_free() < 4 * FRAME_BYTES
                       else f"max_bytes {self.max_bytes} is used up")
        else:
            problem = err.problem
        if self._failing is None:
            self._failing = problem
            log.error("outbox %s: cannot store messages (%s); each one is counted as"
                      " store_failed until storing works again", self.path, problem)
        return err if isinstance(err, OutboxFull) else StoreFailed(self.path, err.problem)

    def _fs_free(self) -> int:
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    def _checkpoint(self, conn: sqlite3.Connection, how: str) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.execute(f"PRAGMA wal_checkpoint({how})").fetchall()

    def _keep_wal_small(self, conn: sqlite3.Connection) -> None:
        """The WAL normally stays within its budget (auto-checkpoint); when a checkpoint could
        not run (a full file system) or an older posdiag left a large one, cut it back now."""
        try:
            wal = os.stat(f"{self.path}-wal").st_size
        except OSError:
            return
        if wal > self.budget.wal_bytes:
            self._checkpoint(conn, "TRUNCATE")

    def _free_pages_for(self, conn: sqlite3.Connection, priority: int) -> bool:
        """The database is at its page budget (``max_page_count``) although the messages are
        within ``message_cap`` (pages half empty): evict what the new message may displace,
        oldest first, until it has free pages to go into. False when that is not the problem
        (the file system itself is full: evicting would lose messages and gain no space) or
        nothing can be evicted."""
        try:
            if conn.execute("PRAGMA page_count").fetchone()[0] < self._max_pages:
                return False
            needed = self._trying_size // PAGE_SIZE + 3
            conn.execute("BEGIN IMMEDIATE")
            try:
                meta = self._read_meta(conn)
                new = self._with_unsaved(meta)
                evicted = 0
                while conn.execute("PRAGMA freelist_count").fetchone()[0] < needed:
                    row = conn.execute("SELECT seq, kind, size FROM messages WHERE priority <= ?"
                                       " ORDER BY priority, seq LIMIT 1", (priority,)).fetchone()
                    if row is None:
                        break
                    self._drop_stored(conn, new, *row)
                    evicted += 1
                self._write_meta(conn, meta, new)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            return False
        self._unsaved_written()
        return evicted > 0

    def _delete(self, seq: int, *, denied: bool) -> bool:
        with self._lock:
            conn = self._connection()
            for attempt in range(2):
                try:
                    found = self._delete_once(conn, seq, denied)
                    break
                except sqlite3.Error as exc:
                    if attempt == 0 and _is_full(exc):
                        self._checkpoint(conn, "RESTART")  # reuse the WAL from its start
                        continue
                    raise self._error(exc, f"deleting seq {seq}") from exc
            self._keep_wal_small(conn)
        return found

    def _delete_once(self, conn: sqlite3.Connection, seq: int, denied: bool) -> bool:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("DELETE FROM messages WHERE seq = ? RETURNING kind, size",
                               (seq,)).fetchone()
            meta = self._read_meta(conn)
            new = self._with_unsaved(meta)
            if row is not None:
                new[f"depth_{row[0]}"] -= 1
                new[f"bytes_{row[0]}"] -= row[1]
                if denied:
                    new["denied"] += 1
            self._write_meta(conn, meta, new)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._unsaved_written()
        return row is not None

    def _make_room(self, conn: sqlite3.Connection, meta: dict[str, int], size: int,
                   priority: int) -> bool:
        """Evict until ``size`` more bytes fit; False (nothing evicted) when they cannot."""
        cap = self.message_cap
        total = sum(meta[f"bytes_{k}"] for k in KINDS)
        if total + size <= cap:
            return True
        evictable = sum(meta[f"bytes_{k}"] for k in KINDS if PRIORITY[k] <= priority)
        if size > cap or total - evictable + size > cap:
            return False
        while total + size > cap:
            seq, kind, victim = conn.execute(
                "SELECT seq, kind, size FROM messages WHERE priority <= ?"
                " ORDER BY priority, seq LIMIT 1", (priority,)).fetchone()
            self._drop_stored(conn, meta, seq, kind, victim)
            total -= victim
        return True

    def _drop_stored(self, conn: sqlite3.Connection, meta: dict[str, int], seq: int, kind: str,
                     size: int) -> None:
        conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
        meta[f"depth_{kind}"] -= 1
        meta[f"bytes_{kind}"] -= size
        meta[f"dropped_{kind}"] += 1
        log.debug("outbox full: dropped %s seq %d (%d bytes)", kind, seq, size)

    def _start_seq_at(self, next_seq: int) -> None:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'next_seq'",
                             (next_seq,))
            except sqlite3.Error as exc:
                raise self._error(exc, "setting the seq counter") from exc

    @staticmethod
    def _read_meta(conn: sqlite3.Connection) -> dict[str, int]:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    @staticmethod
    def _write_meta(conn: sqlite3.Connection, old: dict[str, int], new: dict[str, int]) -> None:
        changed = [(v, k) for k, v in new.items() if old.get(k) != v]
        if changed:
            conn.executemany("UPDATE meta SET value = ? WHERE key = ?", changed)

    def _error(self, exc: sqlite3.Error, doing: str) -> OutboxError:
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code == sqlite3.SQLITE_FULL:
            return OutboxFull(self.path, f"{doing}: the file system is full or max_bytes is"
                                         f" used up ({exc}); nothing was written")
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return OutboxCorrupt(self.path, f"{doing}: {exc}")
        return OutboxError(self.path, f"{doing}: {exc}")


class _BuildFailed(Exception):
    """Carries an exception of the caller's ``build`` past the SQLite error handling."""


_WAL_MAGIC = (0x377F0682, 0x377F0683)  # checksums little- / big-endian
_WAL_VERSION = 3007000


def _wal_checksum(data: bytes, big_endian: bool, s0: int = 0, s1: int = 0) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _damage_before_open(path: Path) -> str | None:
    """What is wrong with an existing outbox that SQLite would quietly accept, or None.

    SQLite takes a 0-byte file for a new database and ignores a WAL whose header is damaged
    (with it every message committed since the last checkpoint): both would come up as an
    empty outbox, or an old state of it, with seq going back.
    """
    try:
        if path.stat().st_size == 0:
            wal = Path(f"{path}-wal")
            if not wal.exists() or wal.stat().st_size == 0:
                return "the file is empty (0 bytes)"
        with open(f"{path}-wal", "rb") as f:
            header = f.read(WAL_HEADER_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not header:
        return None  # an empty WAL (checkpointed and truncated) is normal
    if len(header) < WAL_HEADER_BYTES:
        return f"its write-ahead log is damaged (a {len(header)}-byte header)"
    magic, version = struct.unpack(">II", header[:8])
    if magic not in _WAL_MAGIC or version != _WAL_VERSION:
        return "its write-ahead log is damaged (not a WAL header)"
    if _wal_checksum(header[:24], magic & 1 == 1) != struct.unpack(">II", header[24:]):
        return "its write-ahead log is damaged (header checksum)"
    return None


def _salvage_next_seq(path: Path) -> int | None:
    """Best effort: the seq counter of a damaged outbox, or None."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(str(path), timeout=0, isolation_level=None)
    except sqlite3.Error:
        return None
    found: list[int] = []
    try:
        with contextlib.suppress(sqlite3.Error):
            if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                return None
        for query in ("SELECT value FROM meta WHERE key = 'next_seq'",
                      "SELECT max(seq) + 1 FROM messages"):
            with contextlib.suppress(sqlite3.Error, TypeError):
                value = conn.execute(query).fetchone()[0]
                if isinstance(value, int) and 1 <= value < 1 << 62:
                    found.append(value)
    finally:
        conn.close()
    return max(found) if found else None
