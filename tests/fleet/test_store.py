"""The fleet store without a broker: seq bookkeeping, presence, health, retention, bad files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from posdiag.fleet import Outcome, Retention, StorageError, Store
from posdiag.report import rfc3339
from posdiag.results import CheckResult, Status
from posdiag.service import payloads

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = T0.timestamp()


def heartbeat(seq: int, *, tid: str = "T-0001", at: datetime | None = None,
              failing: tuple[CheckResult, ...] = (), valid_for_s: float = 900) -> dict:
    ok = CheckResult("power", Status.OK, "ok", "mains")
    return payloads.heartbeat(tid, seq, [ok, *failing], valid_for_s=valid_for_s,
                              outbox=payloads.OutboxHealth(),
                              at=at or T0 + timedelta(seconds=seq))


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "fleet.sqlite") as s:
        yield s


def record(store: Store, seq: int, **kw) -> Outcome:
    return store.record("heartbeat", "T-0001", heartbeat(seq, **kw), received_at=NOW + seq).outcome


def test_in_order_messages_are_stored_without_gaps(store):
    assert [record(store, s) for s in (1, 2, 3)] == [Outcome.STORED] * 3
    assert store.gaps() == []
    (t,) = store.terminals(now=NOW)
    assert (t.last_seq, t.gaps, t.pending_gaps, t.duplicates) == (3, 0, 0, 0)
    assert [h["seq"] for h in store.history("T-0001")] == [1, 2, 3]


def test_skipped_seqs_become_a_gap_that_late_arrivals_split_and_fill(store):
    for s in (1, 2, 7):
        record(store, s)
    rec = store.record("heartbeat", "T-0001", heartbeat(8), received_at=NOW)
    assert rec.gap is None
    assert [(g.from_seq, g.to_seq) for g in store.gaps()] == [(3, 6)]
    assert record(store, 5) is Outcome.FILLED
    assert [(g.from_seq, g.to_seq) for g in store.gaps()] == [(3, 4), (6, 6)]
    for s in (3, 4, 6):
        assert record(store, s) is Outcome.FILLED
    assert store.gaps() == []
    # A late arrival does not roll the terminal's state back.
    (t,) = store.terminals(now=NOW)
    assert t.last_seq == 8
    assert store.latest("T-0001", "heartbeat")["seq"] == 8


def test_gap_is_pending_inside_the_reorder_window_and_counted_after(store):
    record(store, 1)
    rec = store.record("heartbeat", "T-0001", heartbeat(4), received_at=NOW)
    assert rec.outcome is Outcome.STORED and rec.gap == (2, 3)
    (t,) = store.terminals(now=NOW + 10, reorder_window_s=60)
    assert (t.gaps, t.missing, t.pending_gaps) == (0, 0, 1)
    (t,) = store.terminals(now=NOW + 61, reorder_window_s=60)
    assert (t.gaps, t.missing, t.pending_gaps) == (1, 2, 0)


def test_duplicates_are_counted_and_not_stored_twice(store):
    for s in (1, 2, 3):
        record(store, s)
    assert record(store, 2) is Outcome.DUPLICATE
    assert record(store, 3) is Outcome.DUPLICATE
    (t,) = store.terminals(now=NOW)
    assert t.duplicates == 2
    assert [h["seq"] for h in store.history("T-0001")] == [1, 2, 3]


def test_a_counter_that_starts_again_opens_a_new_epoch(store):
    for s in (1, 2, 3, 4, 5):
        record(store, s)
    later = T0 + timedelta(hours=1)
    # The outbox database was lost: seq 2 (1 was dropped) with a newer timestamp.
    rec = store.record("heartbeat", "T-0001", heartbeat(2, at=later), received_at=NOW + 3600)
    assert rec.outcome is Outcome.RESTARTED and rec.gap == (1, 1)
    assert record(store, 3, at=later + timedelta(seconds=1)) is Outcome.STORED
    (t,) = store.terminals(now=NOW + 9999, reorder_window_s=0)
    assert (t.epoch, t.restarts, t.last_seq, t.gaps, t.missing) == (1, 1, 3, 1, 1)
    # A redelivered copy from the new epoch is a duplicate, not another restart.
    assert record(store, 3, at=later + timedelta(seconds=1)) is Outcome.DUPLICATE
    # Copies of old-epoch messages (old timestamps) are too, even one that would fit the gap.
    assert record(store, 2) is Outcome.DUPLICATE
    assert record(store, 1) is Outcome.DUPLICATE
    assert [(g.epoch, g.from_seq, g.to_seq) for g in store.gaps()] == [(1, 1, 1)]
    assert [(h["epoch"], h["seq"]) for h in store.history("T-0001")][-3:] == [(0, 5), (1, 2),
                                                                              (1, 3)]


def test_messages_from_before_the_first_one_seen_are_kept_without_a_gap(store):
    record(store, 10)
    assert record(store, 9) is Outcome.EARLIER
    assert record(store, 9) is Outcome.DUPLICATE
    assert store.gaps() == []
    (t,) = store.terminals(now=NOW)
    assert t.last_seq == 10


def test_report_and_heartbeat_set_health_and_valid_until_events_refine_it(store):
    paper = CheckResult("printer", Status.FAIL, "paper_out", "no paper")
    doc = heartbeat(1, failing=(paper,))
    store.record("heartbeat", "T-0001", doc, received_at=NOW)
    (t,) = store.terminals(now=NOW)
    assert t.health == "fail"
    assert [(f.name, f.reason) for f in t.failing] == [("printer", "paper_out")]
    assert t.valid_until == doc["valid_until"]

    fixed = CheckResult("printer", Status.OK, "ok", "paper loaded")
    ev = payloads.status_changed("T-0001", 2, Status.FAIL, fixed, at=T0 + timedelta(seconds=2))
    assert store.record("event", "T-0001", ev, received_at=NOW).outcome is Outcome.STORED
    (t,) = store.terminals(now=NOW)
    assert (t.health, t.failing) == ("ok", ())

    link = CheckResult("network", Status.WARN, "weak_wifi_signal", "weak")
    ev = payloads.status_changed("T-0001", 3, Status.OK, link, at=T0 + timedelta(seconds=3))
    store.record("event", "T-0001", ev, received_at=NOW)
    (t,) = store.terminals(now=NOW)
    assert t.health == "warn"
    assert [f.name for f in t.failing] == ["network"]
    assert store.history("T-0001")[-1]["detail"] == "status_changed:network:weak_wifi_signal"


def test_stale_once_valid_until_has_passed(store):
    store.record("heartbeat", "T-0001", heartbeat(1, valid_for_s=60), received_at=NOW)
    valid_until = (T0 + timedelta(seconds=61)).timestamp()
    assert store.terminals(now=valid_until - 1)[0].stale is False
    assert store.terminals(now=valid_until + 1)[0].stale is True


def test_presence_follows_arrival_order_and_ignores_a_repeated_retained_copy(store):
    online = payloads.status("T-0001", "online", "b", at=T0 + timedelta(seconds=5))
    lost = payloads.status("T-0001", "lost", "b", at=T0)  # a Will carries the connect time
    assert store.record("status", "T-0001", online, received_at=NOW,
                        retained=True).outcome is Outcome.PRESENCE
    assert store.record("status", "T-0001", online, received_at=NOW + 1,
                        retained=True).outcome is Outcome.UNCHANGED
    (t,) = store.terminals(now=NOW)
    assert (t.presence, t.last_seen) == ("online", None)  # retained: old news, not a sign of life
    assert store.record("status", "T-0001", lost, received_at=NOW + 2).outcome is \
        Outcome.PRESENCE
    (t,) = store.terminals(now=NOW)
    assert (t.presence, t.last_seen) == ("lost", None)  # the broker speaking, not the agent
    assert [h["status"] for h in store.history("T-0001")] == ["online", "lost"]


def test_history_is_bounded_per_terminal_and_by_age(tmp_path):
    with Store(tmp_path / "f.sqlite", retention=Retention(history_rows_per_terminal=5,
                                                          history_max_age_s=3600)) as s:
        for seq in range(1, 9):
            s.record("heartbeat", "T-0001", heartbeat(seq), received_at=NOW + seq)
        s.record("heartbeat", "T-0002", heartbeat(1, tid="T-0002"), received_at=NOW)
        assert [h["seq"] for h in s.history("T-0001")] == [4, 5, 6, 7, 8]
        # Its history row is gone, but seq 2 is still known as received: a duplicate.
        assert s.record("heartbeat", "T-0001", heartbeat(2), received_at=NOW).outcome is \
            Outcome.DUPLICATE
        assert s.prune(now=NOW + 3600 + 6) == 3  # T-0001's seq 4, 5 and T-0002's seq 1
        assert [h["seq"] for h in s.history("T-0001")] == [6, 7, 8]
        assert s.history("T-0002") == []
        for seq in range(9, 14):
            s.record("heartbeat", "T-0001", heartbeat(seq), received_at=NOW + 3600 + seq)
        assert [h["seq"] for h in s.history("T-0001")] == [9, 10, 11, 12, 13]


def test_invalid_payloads_are_bounded(tmp_path):
    with Store(tmp_path / "f.sqlite", retention=Retention(invalid_rows=3)) as s:
        for i in range(5):
            s.record_invalid(f"p/T-1/report/{i}", "T-1", b"x" * 10_000, f"error {i}",
                             received_at=NOW)
        rows = s.invalid()
        assert [r["error"] for r in rows] == ["error 2", "error 3", "error 4"]
        assert all(len(r["payload"]) <= 2048 for r in rows)


def test_several_store_objects_share_one_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    with Store(path) as a, Store(path) as b:
        a.record("heartbeat", "T-0001", heartbeat(1), received_at=NOW)
        b.record("heartbeat", "T-0001", heartbeat(3), received_at=NOW)
        assert a.record("heartbeat", "T-0001", heartbeat(2),
                        received_at=NOW).outcome is Outcome.FILLED
        assert b.gaps() == []


def test_a_file_that_is_not_a_fleet_database_is_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(StorageError, match="not a posdiag fleet database"):
        Store(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError):
        Store(junk)
    with pytest.raises(StorageError, match="no fleet database"):
        Store(tmp_path / "missing.sqlite", create=False)


def test_view_to_dict_is_json_ready(store):
    record(store, 1)
    d = store.terminals(now=NOW)[0].to_dict()
    assert d["last_seen"] == rfc3339(datetime.fromtimestamp(NOW + 1, UTC))
    assert d["failing"] == [] and d["stale"] is False and d["health"] == "ok"
