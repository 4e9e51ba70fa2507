"""Outbox throughput benchmark: the real ``posdiag.outbox.Outbox`` (WAL, ``synchronous=FULL``)
on a real disk, one fsync per committed transaction, as the daemon uses it.

Prints a table: messages/s and per-call latency (median, p99) for
- put of a typical 1 KB report and of a 200 B heartbeat,
- put + ack cycles (the steady state with a connected broker),
- put into a full outbox (every put evicts under the byte cap),
- draining a backlog (pending(100) + one ack per message: delivery after an outage),
- health() with a backlog (called for every heartbeat).

The database lives in ``--dir`` (default: a temporary directory in /var/tmp); the file system
type is printed, because a tmpfs would make fsync free and the figures meaningless.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from posdiag.outbox import Outbox

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


class Row:
    def __init__(self, name: str, samples: list[float], messages: int) -> None:
        self.name = name
        self.messages = messages
        self.total = sum(samples)
        ordered = sorted(samples)
        self.median = statistics.median(ordered)
        self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def line(self) -> str:
        rate = self.messages / self.total if self.total else float("inf")
        return (f"| {self.name:<38} | {self.messages:>7} | {rate:>10,.0f} |"
                f" {self.median * 1e6:>9,.0f} | {self.p99 * 1e6:>9,.0f} |")


def timed(calls: int, fn: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


def run(directory: Path, count: int) -> list[Row]:
    rows: list[Row] = []
    big = 1 << 30

    with Outbox(directory / "put-report.sqlite", big) as box:
        build = payload(1024)
        rows.append(Row("put report (1 KB)", timed(count, lambda: box.put(
            "report", TOPIC_REPORT, build)), count))

    with Outbox(directory / "put-heartbeat.sqlite", big) as box:
        build = payload(200)
        rows.append(Row("put heartbeat (200 B)", timed(count, lambda: box.put(
            "heartbeat", TOPIC_HEARTBEAT, build)), count))

    with Outbox(directory / "cycle.sqlite", big) as box:
        build = payload(1024)

        def cycle() -> None:
            box.ack(box.put("report", TOPIC_REPORT, build))

        rows.append(Row("put + ack cycle (1 KB)", timed(count, cycle), count))

    cap = 256 * 1024
    with Outbox(directory / "full.sqlite", cap) as box:
        build = payload(1024)
        while box.health().bytes + 1024 + len(TOPIC_REPORT) <= cap:
            box.put("report", TOPIC_REPORT, build)
        before = box.health().dropped_report
        rows.append(Row("put into a full box (evicts, 1 KB)", timed(count, lambda: box.put(
            "report", TOPIC_REPORT, build)), count))
        assert box.health().dropped_report - before == count

    with Outbox(directory / "drain.sqlite", big) as box:
        build = payload(1024)
        backlog = max(count, 1000)
        for _ in range(backlog):
            box.put("report", TOPIC_REPORT, build)

        samples: list[float] = []
        health_samples = timed(max(count, 1000), box.health)
        while True:
            t = time.perf_counter()
            batch = box.pending(100)
            for m in batch:
                box.ack(m.seq)
            samples.append(time.perf_counter() - t)
            if not batch:
                break
        rows.append(Row("drain backlog: pending(100) + acks", samples, backlog))
        health = Row(f"health() with {backlog} queued", health_samples, len(health_samples))
        rows.append(health)
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
    print(f"| {'operation':<38} | {'msgs':>7} | {'msgs/s':>10} | {'median µs':>9} |"
          f" {'p99 µs':>9} |")
    print(f"|{'-' * 40}|{'-' * 9}|{'-' * 12}|{'-' * 11}|{'-' * 11}|")
    for row in rows:
        print(row.line())
    print()
    print("median/p99: per call (per batch of 100 for the drain row); msgs/s: messages over"
          " total time.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
