"""Outbox throughput benchmark: the real ``service.outbox.Outbox`` (WAL, ``synchronous=FULL``)
on a real disk, one fsync per committed transaction, as the daemon uses it.

Prints a table: messages/s and per-call latency (median, p99) for
- put of a typical 1 KB report and of a 200 B heartbeat,
- put + ack cycles (the steady state with a connected broker),
- put into a full outbox (every put evicts under the byte cap),
- draining a backlog (pending(100) + one ack per message: delivery after an outage),
- health() with a backlog (called for every heartbeat),
and for each row the peak bytes on disk (database + WAL + shm, sampled after every call) and
what that is against the box's ``max_bytes``: the whole outbox must stay within it.

The database lives in ``--dir`` (default: a temporary directory in /var/tmp); the file system
type is printed, because a tmpfs would make fsync free and the figures meaningless.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from posdiag.service.outbox import Outbox

TOPIC_REPORT = "posdiag/v1/T-0001/report"
TOPIC_HEARTBEAT = "posdiag/v1/T-0001/heartbeat"


def payload(size: int) -> Callable[[int], bytes]:
    def build(seq: int) -> bytes:
        head = b'{"seq":%d,"x":"' % seq
        return head + b"a" * (size - len(head) - 2) + b'"}'
    return build


def filesystem_of(path: Path) -> str:
    """The mount point and type holding ``path``, from /proc/self/mounts."""
    best = ("?", "?")
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1]
        if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) \
                and len(mount) >= len(best[0]):
            best = (mount, fields[2])
    return f"{best[1]} on {best[0]}"


def disk_bytes(db: Path) -> int:
    """The database with its -wal and -shm files, as the file system holds them."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            total += Path(f"{db}{suffix}").stat().st_size
    return total


class Peak:
    """The largest footprint seen of one database."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.bytes = 0

    def sample(self) -> None:
        self.bytes = max(self.bytes, disk_bytes(self.db))


class Row:
    def __init__(self, name: str, samples: list[float], messages: int, peak: Peak,
                 max_bytes: int) -> None:
        self.name = name
        self.messages = messages
        self.peak = peak.bytes
        self.max_bytes = max_bytes
        self.total = sum(samples)
        ordered = sorted(samples)
        self.median = statistics.median(ordered)
        self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def line(self) -> str:
        rate = self.messages / self.total if self.total else float("inf")
        share = f"{self.peak / self.max_bytes:.0%}" if self.max_bytes < 1 << 30 else "-"
        return (f"| {self.name:<42} | {self.messages:>7} | {rate:>10,.0f} |"
                f" {self.median * 1e6:>9,.0f} | {self.p99 * 1e6:>9,.0f} |"
                f" {self.peak / 1024:>9,.0f} | {share:>9} |")


def timed(calls: int, fn: Callable[[], object], peak: Peak) -> list[float]:
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
        peak.sample()  # outside the timing
    return samples


def putter(box: Outbox, kind: str, topic: str, size: int, *,
           ack: bool = False) -> Callable[[], object]:
    build = payload(size)

    def put() -> None:
        seq = box.put(kind, topic, build)
        if ack:
            box.ack(seq)
    return put


def run(directory: Path, count: int) -> list[Row]:
    rows: list[Row] = []
    big = 1 << 30
    default = 8 << 20  # [outbox] max_bytes default

    def box_at(name: str, max_bytes: int) -> tuple[Outbox, Peak]:
        db = directory / f"{name}.sqlite"
        return Outbox(db, max_bytes), Peak(db)

    for name, max_bytes in (("put report (1 KB)", big),
                            ("put report (1 KB), max_bytes 8 MiB", default)):
        box, peak = box_at(f"put-report-{max_bytes}", max_bytes)
        with box:
            rows.append(Row(name, timed(count, putter(box, "report", TOPIC_REPORT, 1024), peak),
                            count, peak, max_bytes))

    box, peak = box_at("put-heartbeat", big)
    with box:
        rows.append(Row("put heartbeat (200 B)", timed(
            count, putter(box, "heartbeat", TOPIC_HEARTBEAT, 200), peak), count, peak, big))

    for name, max_bytes in (("put + ack cycle (1 KB)", big),
                            ("put + ack cycle (1 KB), max_bytes 8 MiB", default)):
        box, peak = box_at(f"cycle-{max_bytes}", max_bytes)
        with box:
            cycle = putter(box, "report", TOPIC_REPORT, 1024, ack=True)
            rows.append(Row(name, timed(count, cycle, peak), count, peak, max_bytes))

    for max_bytes in (256 * 1024, default):
        box, peak = box_at(f"full-{max_bytes}", max_bytes)
        with box:
            # What the messages may hold: all of max_bytes before the disk bound, less after.
            cap = getattr(box, "message_cap", max_bytes)
            put = putter(box, "report", TOPIC_REPORT, 1024)
            while box.health().bytes + 1024 + len(TOPIC_REPORT) <= cap:
                put()
            before = box.health().dropped_report
            rows.append(Row(f"put into a full box (evicts), {max_bytes >> 10} KiB",
                            timed(count, put, peak), count, peak, max_bytes))
            assert box.health().dropped_report - before == count

    box, peak = box_at("drain", big)
    with box:
        build = payload(1024)
        backlog = max(count, 1000)
        for _ in range(backlog):
            box.put("report", TOPIC_REPORT, build)

        samples: list[float] = []
        health_samples = timed(max(count, 1000), box.health, peak)
        while True:
            t = time.perf_counter()
            batch = box.pending(100)
            for m in batch:
                box.ack(m.seq)
            samples.append(time.perf_counter() - t)
            peak.sample()
            if not batch:
                break
        rows.append(Row("drain backlog: pending(100) + acks", samples, backlog, peak, big))
        rows.append(Row(f"health() with {backlog} queued", health_samples,
                        len(health_samples), peak, big))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None,
                    help="where to create the databases (default: a temp dir in /var/tmp)")
    ap.add_argument("--count", type=int, default=1000, help="operations per row (default 1000)")
    args = ap.parse_args(argv)
    base = args.dir or Path("/var/tmp")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="posdiag-outbox-bench-", dir=base) as tmp:
        directory = Path(tmp)
        print(f"outbox bench: {filesystem_of(directory)} ({directory}),"
              f" WAL, synchronous=FULL, {args.count} operations per row, Python"
              f" {sys.version.split()[0]}")
        rows = run(directory, args.count)
    print()
    print(f"| {'operation':<42} | {'msgs':>7} | {'msgs/s':>10} | {'median µs':>9} |"
          f" {'p99 µs':>9} | {'disk KiB':>9} | {'of max':>9} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 12}|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
    for row in rows:
        print(row.line())
    print()
    print("median/p99: per call (per batch of 100 for the drain row); msgs/s: messages over"
          " total time;")
    print("disk KiB: peak database + WAL + shm after any call; of max: that against max_bytes"
          " (- for 1 GiB).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
