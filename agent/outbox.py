"""The on-disk outbox: every report, heartbeat and event is stored here before it is published
and deleted only after the broker's PUBACK.

Why our own (DESIGN §7): paho keeps QoS 1 messages in memory only, and disk buffers elsewhere
grew without bound, sent duplicates or stopped flushing. So this is SQLite in WAL mode with
``synchronous=FULL`` (terminals lose power), a hard byte cap with priorities, and counters for
everything it drops.

- ``seq`` is one counter per terminal, taken in the same transaction that stores the message, so
  it survives restarts and is never reused. A gap seen by the backend is always a counted drop.
- The cap counts each message as ``len(topic) + len(payload)`` (UTF-8 bytes, what a PUBLISH
  carries). When a new message does not fit, the oldest message of the lowest priority class
  (heartbeat < report < event) goes first, but never one that outranks the new message: if only
  higher classes could make room, the new message itself is refused (``MessageRefused``).
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
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from posdiag.errors import PosdiagError
from posdiag.payloads import KINDS, OutboxHealth

log = logging.getLogger(__name__)

APPLICATION_ID = 0x706F7344  # "posD" in the SQLite header: this file is a posdiag outbox
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 5.0
WAL_SIZE_LIMIT = 4 << 20  # WAL truncated back to this after a checkpoint following a burst

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

_COUNTERS = ("next_seq", "denied",
             *(f"dropped_{k}" for k in KINDS), *(f"depth_{k}" for k in KINDS),
             *(f"bytes_{k}" for k in KINDS))


class OutboxError(PosdiagError):
    """The outbox cannot do what was asked; ``path`` names the database file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"outbox {path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class OutboxCorrupt(OutboxError):
    """Not an SQLite file, a damaged one, or another program's database.

    ``Outbox.recover`` moves it aside and starts a fresh outbox.
    """


class OutboxFull(OutboxError):
    """The file system holding the outbox is full; the failed call wrote nothing."""


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


def message_size(topic: str, payload: bytes) -> int:
    """What one message counts against the cap."""
    return len(topic.encode("utf-8")) + len(payload)


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic:
        raise ValueError("topic must be a non-empty string")
    if any(c in topic for c in "+#\x00"):
        raise ValueError(f"topic must not contain '+', '#' or NUL: {topic!r}")


class Outbox:
    """A bounded, persistent FIFO of MQTT messages with one terminal-wide ``seq``."""

    def __init__(self, path: Path | str, max_bytes: int, *,
                 clock: Callable[[], float] = time.time) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self._building = False
        self._prepare_file()
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from exc
        try:
            self._setup(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "opening") from exc
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    # -- opening ---------------------------------------------------------------------------

    def _prepare_file(self) -> None:
        """Create the parent (0700) and the file (0600) ourselves: SQLite would use the umask,
        and it gives its -wal and -shm files the mode of the database file."""
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
            else:
                os.close(fd)
        except OSError as exc:
            raise OutboxError(self.path, f"cannot create: {exc.strerror or exc}") from exc

    def _setup(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(self.path, f"cannot use WAL journal mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if app_id == 0 and tables == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [(k, 1 if k == "next_seq" else 0) for k in _COUNTERS])
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif app_id != APPLICATION_ID:
                raise OutboxCorrupt(self.path, "an SQLite database, but not a posdiag outbox")
            else:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise OutboxError(self.path, f"written by a newer posdiag (schema {version},"
                                                 f" this one reads {SCHEMA_VERSION})")
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
            while total > self.max_bytes:
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
        more); if it raises, nothing is stored and the seq is not used up.
        Raises ``MessageRefused`` (cap), ``OutboxFull`` (disk), ``OutboxError``.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        _check_topic(topic)
        priority = PRIORITY[kind]
        with self._lock:
            conn = self._connection()
            if self._building:
                raise OutboxError(self.path, "put() called from inside a build callback")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    meta = self._read_meta(conn)
                    new = dict(meta)
                    seq = new["next_seq"]
                    self._building = True
                    try:
                        payload = build(seq)
                    finally:
                        self._building = False
                    if not isinstance(payload, bytes | bytearray | memoryview):
                        raise TypeError(f"build() must return bytes, not {type(payload).__name__}")
                    payload = bytes(payload)
                    size = message_size(topic, payload)
                    new["next_seq"] = seq + 1
                    stored = self._make_room(conn, new, size, priority)
                    if stored:
                        conn.execute("INSERT INTO messages (seq, kind, priority, topic, payload,"
                                     " created, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (seq, kind, priority, topic, payload,
                                      float(self._clock()), size))
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
            except sqlite3.Error as exc:
                raise self._error(exc, f"storing a {kind}") from exc
        if not stored:
            why = ("larger than the whole cap" if size > self.max_bytes
                   else "only higher-priority messages could make room")
            raise MessageRefused(self.path, f"{kind} seq {seq} ({size} bytes) dropped: {why}"
                                 f" (max_bytes {self.max_bytes})", seq=seq, kind=kind, size=size)
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
        """Depth, bytes, age of the oldest message and the counters, for every heartbeat."""
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
        return OutboxHealth(
            depth=sum(meta[f"depth_{k}"] for k in KINDS),
            bytes=sum(meta[f"bytes_{k}"] for k in KINDS),
            # Clamped: the wall clock of a terminal without RTC can step backwards at NTP sync.
            oldest_age_s=None if row is None else max(0.0, now - row[0]),
            dropped_event=meta["dropped_event"],
            dropped_report=meta["dropped_report"],
            dropped_heartbeat=meta["dropped_heartbeat"],
            denied=meta["denied"],
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
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
        fresh outbox starts again at 1 (the backend then sees the seq go back, with a new
        boot id).
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
        log.warning("outbox %s was damaged; moved to %s, starting a fresh one at seq %d",
                    path, aside, next_seq or 1)
        box = cls(path, max_bytes, clock=clock)
        if next_seq is not None:
            box._start_seq_at(next_seq)
        return box

    # -- internals -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(self.path, "closed")
        return self._conn

    def _delete(self, seq: int, *, denied: bool) -> bool:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute("DELETE FROM messages WHERE seq = ? RETURNING kind, size",
                                       (seq,)).fetchone()
                    if row is not None:
                        meta = self._read_meta(conn)
                        new = dict(meta)
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
            except sqlite3.Error as exc:
                raise self._error(exc, f"deleting seq {seq}") from exc
        return row is not None

    def _make_room(self, conn: sqlite3.Connection, meta: dict[str, int], size: int,
                   priority: int) -> bool:
        """Evict until ``size`` more bytes fit; False (nothing evicted) when they cannot."""
        total = sum(meta[f"bytes_{k}"] for k in KINDS)
        if total + size <= self.max_bytes:
            return True
        evictable = sum(meta[f"bytes_{k}"] for k in KINDS if PRIORITY[k] <= priority)
        if size > self.max_bytes or total - evictable + size > self.max_bytes:
            return False
        while total + size > self.max_bytes:
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
            return OutboxFull(self.path, f"{doing}: the file system is full ({exc});"
                                         " nothing was written")
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return OutboxCorrupt(self.path, f"{doing}: {exc}")
        return OutboxError(self.path, f"{doing}: {exc}")


def _salvage_next_seq(path: Path) -> int | None:
    """Best effort: the seq counter of a damaged outbox, or None."""
    if not path.exists():
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
