"""The fleet database (SQLite): what the backend knows about each terminal.

Tables:

- ``terminals``: one row per terminal: presence (online/offline/lost and when), the latest report
  and heartbeat, health and failing checks, the seq bookkeeping, the receive time of the last
  message and the latest ``valid_until``.
- ``history``: one row per message kept (bounded by rows per terminal and by age).
- ``gaps``: seq ranges that never arrived (``from_seq``..``to_seq``, inclusive).
- ``invalid``: rejected payloads with the reason (bounded by rows).

Sequence numbers (one counter per terminal across report, heartbeat and event, gap-free at the
source) are interpreted per message, in this order:

1. already in ``history`` with the same timestamp → a duplicate from at-least-once delivery:
   counted, otherwise ignored;
2. above the highest seen → stored; any skipped numbers become a gap;
3. inside a gap → arrived late (delay, not loss): stored, and the gap shrinks or splits;
4. below the highest seen, not in a gap, and stamped later than the newest message → the
   terminal's counter started again (its outbox database was lost): a new *epoch* begins, and
   from then on a message stamped no later than the old epoch's last one is a late duplicate;
5. below the first seq this database ever saw → sent before we were listening: stored;
6. anything else → a duplicate whose history row has been pruned.

A gap younger than the reorder window is *pending*: several consumers sharing the load (or a
redelivery) can put messages out of order, and the late one fills the gap. Only gaps older than
the window are reported as loss.

Several consumer processes may share one database file (WAL mode): every message is handled in
one ``BEGIN IMMEDIATE`` transaction, so the seq bookkeeping stays consistent between them.
Times the consumer measures (``received_at``, ``detected_at``) are Unix seconds; times a terminal
wrote (``at``, ``valid_until``) are kept as the RFC 3339 text it sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from posdiag.fleet.errors import StorageError
from posdiag.report import rfc3339
from posdiag.results import Status

log = logging.getLogger(__name__)

APPLICATION_ID = 0x706F7346  # "posF" in the SQLite header: this file is a posdiag fleet database
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
INVALID_PAYLOAD_CHARS = 2048
PROBLEM_STATUSES = ("warn", "fail", "unknown")

_SCHEMA = """
CREATE TABLE terminals (
    terminal           TEXT PRIMARY KEY,
    presence           TEXT,
    presence_at        TEXT,
    presence_received  REAL,
    agent_version      TEXT,
    health             TEXT,
    failing            TEXT,
    health_seq         INTEGER,
    last_report        TEXT,
    last_heartbeat     TEXT,
    epoch              INTEGER NOT NULL DEFAULT 0,
    first_seq          INTEGER,
    last_seq           INTEGER,
    last_at            TEXT,
    last_message_at    REAL,
    valid_until        TEXT,
    duplicates         INTEGER NOT NULL DEFAULT 0,
    restarts           INTEGER NOT NULL DEFAULT 0,
    history_rows       INTEGER NOT NULL DEFAULT 0,
    epoch_floor_at     TEXT
);
CREATE TABLE history (
    id           INTEGER PRIMARY KEY,
    terminal     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    epoch        INTEGER NOT NULL,
    seq          INTEGER,
    at           TEXT    NOT NULL,
    received_at  REAL    NOT NULL,
    status       TEXT,
    detail       TEXT,
    consumer     TEXT    NOT NULL
);
CREATE INDEX history_by_terminal ON history (terminal, id);
CREATE INDEX history_by_age ON history (received_at);
CREATE UNIQUE INDEX history_by_seq ON history (terminal, epoch, seq) WHERE seq IS NOT NULL;
CREATE TABLE gaps (
    id           INTEGER PRIMARY KEY,
    terminal     TEXT    NOT NULL,
    epoch        INTEGER NOT NULL,
    from_seq     INTEGER NOT NULL,
    to_seq       INTEGER NOT NULL,
    detected_at  REAL    NOT NULL
);
CREATE INDEX gaps_by_terminal ON gaps (terminal, epoch, from_seq);
CREATE TABLE invalid (
    id           INTEGER PRIMARY KEY,
    received_at  REAL    NOT NULL,
    topic        TEXT    NOT NULL,
    terminal     TEXT,
    error        TEXT    NOT NULL,
    payload      TEXT    NOT NULL
);
"""


class Outcome(StrEnum):
    STORED = "stored"  # the newest message of its terminal so far
    FILLED = "filled"  # arrived late and filled (part of) a gap
    EARLIER = "earlier"  # older than the first message this database saw
    RESTARTED = "restarted"  # the terminal's seq started again: a new epoch
    DUPLICATE = "duplicate"  # seen before (at-least-once delivery); ignored
    PRESENCE = "presence"  # presence changed
    UNCHANGED = "unchanged"  # the same presence again (a retained copy at subscribe)
    INVALID = "invalid"  # rejected: kept in the invalid table
    IGNORED = "ignored"  # not ours to judge (an empty retained status: cleared by an operator)


@dataclass(frozen=True)
class Recorded:
    outcome: Outcome
    gap: tuple[int, int] | None = None  # a gap this message revealed


@dataclass(frozen=True)
class Retention:
    history_rows_per_terminal: int = 10_000
    history_max_age_s: float = 30 * 86400.0
    invalid_rows: int = 1_000
    prune_every: int = 500  # messages between two age prunes (row limits hold at every insert)

    def __post_init__(self) -> None:
        if self.history_rows_per_terminal < 1 or self.invalid_rows < 1 or self.prune_every < 1:
            raise ValueError("retention row limits must be at least 1")
        if not self.history_max_age_s > 0:
            raise ValueError("history_max_age_s must be greater than 0")


@dataclass(frozen=True)
class Failing:
    name: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class Gap:
    terminal: str
    epoch: int
    from_seq: int
    to_seq: int
    detected_at: float

    def __post_init__(self) -> None:
        if not 0 <= self.from_seq <= self.to_seq:
            raise ValueError(f"bad gap {self.from_seq}..{self.to_seq}")

    @property
    def size(self) -> int:
        return self.to_seq - self.from_seq + 1

    def to_dict(self) -> dict[str, Any]:
        return {"terminal": self.terminal, "epoch": self.epoch, "from_seq": self.from_seq,
                "to_seq": self.to_seq, "missing": self.size,
                "detected_at": rfc3339(_utc(self.detected_at))}


@dataclass(frozen=True)
class TerminalView:
    """One row of ``posdiag fleet status``."""

    terminal_id: str
    presence: str | None  # online | offline | lost | None (never seen)
    presence_at: str | None
    agent_version: str | None
    health: str | None  # worst check status from the latest report/heartbeat/event
    failing: tuple[Failing, ...]
    last_seen: float | None  # receive time of the last message proving the agent was alive
    valid_until: str | None
    stale: bool
    gaps: int  # confirmed gaps (older than the reorder window)
    missing: int  # messages in those gaps
    pending_gaps: int  # gaps still inside the reorder window
    last_seq: int | None
    epoch: int
    duplicates: int
    restarts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal_id, "presence": self.presence,
            "presence_at": self.presence_at, "agent_version": self.agent_version,
            "health": self.health, "failing": [f.to_dict() for f in self.failing],
            "last_seen": None if self.last_seen is None else rfc3339(_utc(self.last_seen)),
            "valid_until": self.valid_until, "stale": self.stale, "gaps": self.gaps,
            "missing": self.missing, "pending_gaps": self.pending_gaps,
            "last_seq": self.last_seq, "epoch": self.epoch, "duplicates": self.duplicates,
            "restarts": self.restarts,
        }


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def message_time(kind: str, doc: Mapping[str, Any]) -> str:
    """When the terminal wrote the message (a report says ``generated_at``, the others ``at``)."""
    return str(doc["generated_at"] if kind == "report" else doc["at"])


def failing_of(kind: str, doc: Mapping[str, Any]) -> list[Failing]:
    if kind == "heartbeat":
        return [Failing(f["name"], f["status"], f["reason"]) for f in doc["failing"]]
    return [Failing(c["name"], c["status"], c["reason"]) for c in doc["checks"]
            if c["status"] in PROBLEM_STATUSES]


class Store:
    def __init__(self, path: str | Path, *, retention: Retention | None = None,
                 create: bool = True) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        if not create and not self.path.exists():
            raise StorageError(f"{self.path}: no fleet database here (run 'posdiag fleet listen' "
                               "to create one)")
        self._lock = threading.Lock()
        self._since_prune = 0
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so that two consumer
            # processes never interleave inside one message's bookkeeping.
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                       isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._setup()
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: {e}") from e

    # ---------------------------------------------------------------------------------------
    def _setup(self) -> None:
        db = self._db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version and app_id != APPLICATION_ID:
            raise StorageError(f"{self.path}: not a posdiag fleet database")
        if version > SCHEMA_VERSION:
            raise StorageError(f"{self.path}: schema version {version} is newer than this "
                               f"posdiag understands ({SCHEMA_VERSION})")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        if version == 0:
            with self._tx():
                # Re-read inside the lock: another consumer may have created it meanwhile.
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                        raise StorageError(f"{self.path}: not a posdiag fleet database")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as e:
                raise StorageError(f"{self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------
    # Writing
    # ---------------------------------------------------------------------------------------
    def record(self, kind: str, terminal: str, doc: Mapping[str, Any], *,
               received_at: float | None = None, consumer: str = "",
               retained: bool = False) -> Recorded:
        """Store one valid message (already checked against its schema and its topic)."""
        t = time.time() if received_at is None else received_at
        with self._guard():
            if kind == "status":
                result = self._record_status(terminal, doc, t, consumer, retained)
            elif kind in ("report", "heartbeat", "event"):
                result = self._record_seq(kind, terminal, doc, t, consumer)
            else:
                raise ValueError(f"unknown message kind {kind!r}")
            self._since_prune += 1
            if self._since_prune >= self.retention.prune_every:
                self._prune(t)
        return result

    def record_invalid(self, topic: str, terminal: str | None, payload: bytes, error: str, *,
                       received_at: float | None = None) -> None:
        t = time.time() if received_at is None else received_at
        text = payload[:INVALID_PAYLOAD_CHARS * 4].decode("utf-8", "replace")
        with self._guard(), self._tx() as db:
            db.execute("INSERT INTO invalid (received_at, topic, terminal, error, payload) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (t, topic, terminal, error[:1000], text[:INVALID_PAYLOAD_CHARS]))
            db.execute("DELETE FROM invalid WHERE id <= (SELECT id FROM invalid ORDER BY id DESC "
                       "LIMIT 1 OFFSET ?)", (self.retention.invalid_rows,))

    def _terminal(self, db: sqlite3.Connection, terminal: str) -> sqlite3.Row:
        db.execute("INSERT OR IGNORE INTO terminals (terminal) VALUES (?)", (terminal,))
        row: sqlite3.Row = db.execute("SELECT * FROM terminals WHERE terminal = ?",
                                      (terminal,)).fetchone()
        return row

    def _record_status(self, terminal: str, doc: Mapping[str, Any], received_at: float,
                       consumer: str, retained: bool) -> Recorded:
        state, at = doc["state"], doc["at"]
        with self._tx() as db:
            row = self._terminal(db, terminal)
            if row["presence"] == state and row["presence_at"] == at:
                return Recorded(Outcome.UNCHANGED)
            # Presence is applied in arrival order: the broker keeps the order of one topic, and
            # a Last Will carries the *connect* time, older than the birth message it replaces.
            seen = row["last_message_at"]
            if not retained and state != "lost":  # the Will is the broker speaking, not the agent
                seen = received_at if seen is None else max(seen, received_at)
            db.execute("UPDATE terminals SET presence = ?, presence_at = ?, presence_received = ?, "
                       "agent_version = ?, last_message_at = ? WHERE terminal = ?",
                       (state, at, received_at, doc["agent"]["version"], seen, terminal))
            self._add_history(db, row, "status", row["epoch"], None, at, received_at, state,
                              doc["agent"]["version"], consumer)
        return Recorded(Outcome.PRESENCE)

    def _record_seq(self, kind: str, terminal: str, doc: Mapping[str, Any],
                    received_at: float, consumer: str) -> Recorded:
        seq = int(doc["seq"])
        at = message_time(kind, doc)
        with self._tx() as db:
            row = self._terminal(db, terminal)
            epoch, last, first = row["epoch"], row["last_seq"], row["first_seq"]
            # A redelivered copy is byte-identical, so it has the same timestamp; the same seq
            # stamped differently is a counter that started again (handled below).
            if db.execute("SELECT 1 FROM history WHERE terminal = ? AND epoch = ? AND seq = ? "
                          "AND at = ?", (terminal, epoch, seq, at)).fetchone():
                return self._duplicate(db, terminal)
            floor = row["epoch_floor_at"]
            if floor is not None and at <= floor:
                # Stamped before the counter started again: a late copy from the old epoch.
                return self._duplicate(db, terminal)
            gap: tuple[int, int] | None = None
            newest = True  # does this message become the terminal's current state?
            if last is None:
                outcome, first = Outcome.STORED, seq
            elif seq > last:
                outcome = Outcome.STORED
                if seq > last + 1:
                    gap = (last + 1, seq - 1)
            elif self._fill(db, terminal, epoch, seq):
                outcome, newest = Outcome.FILLED, False
            elif at > row["last_at"]:  # same fixed RFC 3339 format: text order is time order
                outcome, epoch, first = Outcome.RESTARTED, epoch + 1, seq
                if seq > 1:  # the outbox counts from 1: what came before was lost
                    gap = (1, seq - 1)
                db.execute("UPDATE terminals SET restarts = restarts + 1, epoch_floor_at = ? "
                           "WHERE terminal = ?", (row["last_at"], terminal))
            elif seq < first:
                outcome, newest = Outcome.EARLIER, False
            else:
                return self._duplicate(db, terminal)
            if gap is not None:
                db.execute("INSERT INTO gaps (terminal, epoch, from_seq, to_seq, detected_at) "
                           "VALUES (?, ?, ?, ?, ?)", (terminal, epoch, gap[0], gap[1],
                                                      received_at))
            status, detail = self._summary(kind, doc)
            self._add_history(db, row, kind, epoch, seq, at, received_at, status, detail,
                              consumer)
            seen = row["last_message_at"]
            seen = received_at if seen is None else max(seen, received_at)
            db.execute("UPDATE terminals SET last_message_at = ? WHERE terminal = ?",
                       (seen, terminal))
            if newest:
                db.execute("UPDATE terminals SET epoch = ?, first_seq = ?, last_seq = ?, "
                           "last_at = ? WHERE terminal = ?", (epoch, first, seq, at, terminal))
                self._apply(db, row, kind, doc, seq)
        return Recorded(outcome, gap)

    def _add_history(self, db: sqlite3.Connection, row: sqlite3.Row, kind: str, epoch: int,
                     seq: int | None, at: str, received_at: float, status: str | None,
                     detail: str | None, consumer: str) -> None:
        terminal = row["terminal"]
        db.execute("INSERT INTO history (terminal, kind, epoch, seq, at, received_at, status, "
                   "detail, consumer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (terminal, kind, epoch, seq, at, received_at, status, detail, consumer))
        # The row count per terminal is kept in ``terminals`` so that the bound costs one
        # indexed delete per insert, not a count over a history of millions of rows.
        rows = row["history_rows"] + 1
        excess = rows - self.retention.history_rows_per_terminal
        if excess > 0:
            db.execute("DELETE FROM history WHERE id IN (SELECT id FROM history WHERE "
                       "terminal = ? ORDER BY id LIMIT ?)", (terminal, excess))
            rows -= excess
        db.execute("UPDATE terminals SET history_rows = ? WHERE terminal = ?", (rows, terminal))

    @staticmethod
    def _duplicate(db: sqlite3.Connection, terminal: str) -> Recorded:
        # Not a sign of life: the broker may be redelivering from its session queue.
        db.execute("UPDATE terminals SET duplicates = duplicates + 1 WHERE terminal = ?",
                   (terminal,))
        return Recorded(Outcome.DUPLICATE)

    @staticmethod
    def _fill(db: sqlite3.Connection, terminal: str, epoch: int, seq: int) -> bool:
        g = db.execute("SELECT id, from_seq, to_seq, detected_at FROM gaps WHERE terminal = ? "
                       "AND epoch = ? AND from_seq <= ? AND to_seq >= ?",
                       (terminal, epoch, seq, seq)).fetchone()
        if g is None:
            return False
        db.execute("DELETE FROM gaps WHERE id = ?", (g["id"],))
        for lo, hi in ((g["from_seq"], seq - 1), (seq + 1, g["to_seq"])):
            if lo <= hi:  # what is still missing keeps the time it was first noticed
                db.execute("INSERT INTO gaps (terminal, epoch, from_seq, to_seq, detected_at) "
                           "VALUES (?, ?, ?, ?, ?)", (terminal, epoch, lo, hi, g["detected_at"]))
        return True

    @staticmethod
    def _summary(kind: str, doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
        if kind in ("report", "heartbeat"):
            names = ",".join(f.name for f in failing_of(kind, doc))
            return doc["status"], names or None
        if doc["type"] == "status_changed":
            return doc["to"], f"status_changed:{doc['check']}:{doc['reason']}"
        if doc["type"] in ("device_added", "device_removed"):
            device = doc["device"]
            return None, f"{doc['type']}:{device.get('kind') or device.get('devnode') or '?'}"
        return None, str(doc["type"])

    @staticmethod
    def _apply(db: sqlite3.Connection, row: sqlite3.Row, kind: str, doc: Mapping[str, Any],
               seq: int) -> None:
        """Make the newest message the terminal's current state."""
        terminal = row["terminal"]
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        if kind in ("report", "heartbeat"):
            failing = json.dumps([f.to_dict() for f in failing_of(kind, doc)])
            db.execute(f"UPDATE terminals SET last_{kind} = ?, health = ?, failing = ?, "
                       "health_seq = ?, valid_until = ? WHERE terminal = ?",
                       (text, doc["status"], failing, seq, doc["valid_until"], terminal))
        elif doc["type"] == "status_changed" and row["health"] is not None:
            # A status change is the freshest news about one check: fold it into what the last
            # report or heartbeat said, until the next one replaces it all.
            current = [f for f in json.loads(row["failing"] or "[]") if f["name"] != doc["check"]]
            if doc["to"] in PROBLEM_STATUSES:
                current.append(Failing(doc["check"], doc["to"], doc["reason"]).to_dict())
            health = Status.worst(Status(f["status"]) for f in current)
            db.execute("UPDATE terminals SET health = ?, failing = ?, health_seq = ? "
                       "WHERE terminal = ?", (str(health), json.dumps(current), seq, terminal))

    # ---------------------------------------------------------------------------------------
    # Retention
    # ---------------------------------------------------------------------------------------
    def prune(self, *, now: float | None = None) -> int:
        """Drop what is older than the age limit now (the row limits hold at every insert);
        returns how many history rows went."""
        with self._guard():
            return self._prune(time.time() if now is None else now)

    def _prune(self, now: float) -> int:
        self._since_prune = 0
        r = self.retention
        cutoff = now - r.history_max_age_s
        gone = 0
        with self._tx() as db:
            old = db.execute("SELECT terminal, count(*) FROM history WHERE received_at < ? "
                             "GROUP BY terminal", (cutoff,)).fetchall()
            for terminal, n in old:
                db.execute("UPDATE terminals SET history_rows = max(0, history_rows - ?) "
                           "WHERE terminal = ?", (n, terminal))
                gone += n
            db.execute("DELETE FROM history WHERE received_at < ?", (cutoff,))
            db.execute("DELETE FROM gaps WHERE detected_at < ?", (cutoff,))
            db.execute("DELETE FROM invalid WHERE received_at < ?", (cutoff,))
        return gone

    # ---------------------------------------------------------------------------------------
    # Reading
    # ---------------------------------------------------------------------------------------
    def terminals(self, *, now: float | None = None,
                  reorder_window_s: float = 60.0) -> list[TerminalView]:
        t = time.time() if now is None else now
        with self._guard():
            rows = self._db.execute("SELECT * FROM terminals ORDER BY terminal").fetchall()
            gap_rows = self._db.execute("SELECT terminal, from_seq, to_seq, detected_at "
                                        "FROM gaps").fetchall()
        confirmed: dict[str, list[int]] = {}
        pending: dict[str, int] = {}
        for g in gap_rows:
            if g["detected_at"] <= t - reorder_window_s:
                confirmed.setdefault(g["terminal"], []).append(g["to_seq"] - g["from_seq"] + 1)
            else:
                pending[g["terminal"]] = pending.get(g["terminal"], 0) + 1
        out = []
        for r in rows:
            valid_until = r["valid_until"]
            # No health message yet, or its validity has run out without a newer one: stale.
            stale = valid_until is None or _parse(valid_until) < _utc(t)
            sizes = confirmed.get(r["terminal"], [])
            out.append(TerminalView(
                terminal_id=r["terminal"], presence=r["presence"], presence_at=r["presence_at"],
                agent_version=r["agent_version"], health=r["health"],
                failing=tuple(Failing(**f) for f in json.loads(r["failing"] or "[]")),
                last_seen=r["last_message_at"], valid_until=valid_until, stale=stale,
                gaps=len(sizes), missing=sum(sizes), pending_gaps=pending.get(r["terminal"], 0),
                last_seq=r["last_seq"], epoch=r["epoch"], duplicates=r["duplicates"],
                restarts=r["restarts"]))
        return out

    def gaps(self, terminal: str | None = None) -> list[Gap]:
        sql = "SELECT terminal, epoch, from_seq, to_seq, detected_at FROM gaps"
        args: tuple[str, ...] = ()
        if terminal is not None:
            sql, args = sql + " WHERE terminal = ?", (terminal,)
        with self._guard():
            rows = self._db.execute(sql + " ORDER BY terminal, epoch, from_seq", args).fetchall()
        return [Gap(**dict(r)) for r in rows]

    def history(self, terminal: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` history rows of a terminal, oldest first."""
        with self._guard():
            rows = self._db.execute("SELECT * FROM history WHERE terminal = ? ORDER BY id DESC "
                                    "LIMIT ?", (terminal, limit)).fetchall()
        return [dict(r) for r in reversed(rows)]

    def invalid(self, *, limit: int = 100) -> list[dict[str, Any]]:
        with self._guard():
            rows = self._db.execute("SELECT * FROM invalid ORDER BY id DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [dict(r) for r in reversed(rows)]

    def latest(self, terminal: str, kind: str) -> dict[str, Any] | None:
        """The terminal's newest ``report`` or ``heartbeat`` document."""
        if kind not in ("report", "heartbeat"):
            raise ValueError(f"no latest {kind!r} is kept")
        with self._guard():
            row = self._db.execute(f"SELECT last_{kind} FROM terminals WHERE terminal = ?",
                                   (terminal,)).fetchone()
        if row is None or row[0] is None:
            return None
        doc: dict[str, Any] = json.loads(row[0])
        return doc


# --------------------------------------------------------------------------------------------
# Where the database is: ``--db`` takes a file path or a URL that names the backend. Each URL
# scheme has one parser below; a backend (PostgreSQL, say) plugs in by adding its scheme to
# ``_SCHEMES`` and its opener to ``open_store``. Anything else is refused before anything is
# created: ``postgresql://…`` read as a path once made a folder named ``postgresql:``.
# --------------------------------------------------------------------------------------------
SUPPORTED_LOCATIONS = "a file path or sqlite:///ABSOLUTE/PATH"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class Location:
    """A parsed ``--db``: the backend's scheme and what it needs to open the database."""

    scheme: str
    path: Path  # the SQLite file
    shown: str  # the text as given, any password hidden: safe to print and log

    def __str__(self) -> str:
        return self.shown


def _hide_password(text: str) -> str:
    parts = urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlite(text: str) -> Location:
    parts = urlsplit(text)
    if not text.lower().startswith("sqlite://"):
        raise ValueError(f"{text}: write a SQLite URL as sqlite:///ABSOLUTE/PATH")
    if parts.netloc:
        raise ValueError(f"{text}: a SQLite URL names no host ({parts.netloc!r}); write "
                         "sqlite:///ABSOLUTE/PATH (three slashes)")
    if parts.query or parts.fragment:
        raise ValueError(f"{text}: a SQLite URL takes no '?' options or '#' fragment")
    path = unquote(parts.path)
    if path in ("", "/") or path.endswith("/"):
        raise ValueError(f"{text}: the URL names no database file")
    return Location("sqlite", Path(path), text)


_SCHEMES: dict[str, Callable[[str], Location]] = {"sqlite": _sqlite}


def parse_location(text: str) -> Location:
    """``--db``'s value as a ``Location``; ``ValueError`` (a one-line, printable message) for
    a scheme no backend here serves or a malformed URL."""
    if not text.strip():
        raise ValueError("the database location is empty")
    match = _SCHEME.match(text)
    if match is None:
        return Location("sqlite", Path(text), text)
    scheme = match.group(1).lower()
    parser = _SCHEMES.get(scheme)
    if parser is None:
        shown = _hide_password(text)
        raise ValueError(f"{shown}: the fleet store does not serve {scheme!r} URLs; give "
                         f"{SUPPORTED_LOCATIONS} (a path with a colon in its first part: "
                         "start it with ./)")
    return parser(text)


def open_store(location: Location | str, *, retention: Retention | None = None,
               create: bool = True) -> Store:
    """The store behind ``location`` (a ``Location`` or a ``--db`` text)."""
    loc = parse_location(location) if isinstance(location, str) else location
    if loc.scheme == "sqlite":
        return Store(loc.path, retention=retention, create=create)
    raise ValueError(f"{loc}: no store for {loc.scheme!r}")  # a parser without an opener
