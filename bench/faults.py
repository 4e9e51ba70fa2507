"""Reliability bench: what a real agent loses, repeats or counts under faults.

Each row is its own demo terminal (``_agent.Terminal``): a TLS Mosquitto on loopback, a real
``posdiag run`` at an accelerated cadence (a heartbeat a second, a report every few seconds), and a
backend subscriber on ``<prefix>/T-0001/#``. One fault is applied, held, cleared, and then the
agent is given time to catch up. From what the backend received:

- produced   the highest seq any message carried (every message the agent meant to send has one,
             stored or not: a failed store uses up its seq and is counted, see docs/asyncapi.yaml)
- delivered  distinct seqs received;  dup  deliveries of a seq already received
- counted    what the agent itself counted as not kept (dropped, denied, store_failed in the last
             heartbeat's ``outbox``)
- lost       produced - delivered - counted: messages gone without a trace (must be 0)
- recovery   from the fault's end to the first new message at the backend

Run by ``make bench``; prints one table, exits 1 if any row lost a message silently.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agent import TERMINAL_ID, Options, Terminal, cleanup_on_signals
from broker import Received

PREFIX = f"posdiag/v1/{TERMINAL_ID}"
CADENCE = {"heartbeat_s": 1, "report_s": 4, "check_interval_s": 2, "jitter_percent": 0.0,
           "event_holdoff_s": 1}
HOLD_S = 8.0  # how long each fault lasts
SETTLE_S = 12.0  # time to catch up after it


@dataclass
class Row:
    fault: str
    produced: int
    delivered: int
    duplicated: int
    counted: int
    recovery_s: float | None
    note: str = ""

    @property
    def lost(self) -> int:
        return max(0, self.produced - self.delivered - self.counted)

    def line(self) -> str:
        rec = f"{self.recovery_s:.1f}" if self.recovery_s is not None else "-"
        return (f"| {self.fault:<34} | {self.produced:>8} | {self.delivered:>9} |"
                f" {self.duplicated:>4} | {self.counted:>7} | {self.lost:>4} | {rec:>10} |"
                f" {self.note}")


def _seq(m: Received) -> int | None:
    if not m.topic.endswith(("/report", "/heartbeat", "/event")):
        return None
    try:
        value = json.loads(m.payload).get("seq")
    except ValueError:
        return None
    return value if isinstance(value, int) else None


def _counted(messages: list[Received]) -> int:
    for m in reversed(messages):
        if m.topic.endswith("/heartbeat"):
            box = json.loads(m.payload).get("outbox", {})
            total = int(box.get("denied", 0))
            for key in ("dropped", "store_failed"):
                total += sum(int(v) for v in (box.get(key) or {}).values())
            return total
    return 0


def _tally(fault: str, messages: list[Received], cleared_at: float | None,
           arrivals: list[tuple[float, int]], note: str = "") -> Row:
    seqs = [s for s in (_seq(m) for m in messages) if s is not None]
    distinct = set(seqs)
    recovery = None
    if cleared_at is not None:
        later = [t for t, _ in arrivals if t >= cleared_at]
        recovery = (min(later) - cleared_at) if later else None
    return Row(fault, max(distinct, default=0), len(distinct), len(seqs) - len(distinct),
               _counted(messages), recovery, note)


class Run:
    """One terminal with a backend subscriber that timestamps every message's arrival."""

    def __init__(self, state_tmpfs: str | None = None) -> None:
        self.term = Terminal(Options(daemon=CADENCE, devices=False))
        self.state_tmpfs = state_tmpfs
        self.arrivals: list[tuple[float, int]] = []

    def __enter__(self) -> Run:
        self.term.start_broker()
        state = self.term.tmp / "state"
        state.mkdir()
        if self.state_tmpfs:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.state_tmpfs}",
                            "posdiag-bench", str(state)], check=True)
            self.term.defer(lambda: subprocess.run(["umount", "-l", str(state)], check=False))
        self.sub = self.term.subscriber(f"{PREFIX}/#")
        original = self.sub._on_message

        def stamped(client: object, userdata: object, msg: object) -> None:
            original(client, userdata, msg)  # type: ignore[arg-type]
            self.arrivals.append((time.monotonic(), 0))
        self.sub.client.on_message = stamped
        self.agent = self.term.start_agent()
        self.agent.notify.wait_for("READY=1", timeout_s=60)
        time.sleep(3)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.agent.terminate()
        self.term.close()

    def messages(self) -> list[Received]:
        return list(self.sub.received())


def no_fault(run: Run) -> tuple[float, str]:
    time.sleep(HOLD_S)
    return time.monotonic(), ""


def broker_restart(run: Run) -> tuple[float, str]:
    run.term.broker.stop()
    time.sleep(HOLD_S)
    run.term.broker.start()
    return time.monotonic(), "broker stopped, then started on the same port"


def broker_black_hole(run: Run) -> tuple[float, str]:
    run.term.broker.freeze()  # SIGSTOP: connections stay open, nothing is read or answered
    time.sleep(HOLD_S)
    import os

    os.kill(run.term.broker._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    return time.monotonic(), "broker frozen (no FIN, no answers)"


def agent_sigkill(run: Run) -> tuple[float, str]:
    run.agent.kill()
    time.sleep(1.0)
    run.agent = run.term.start_agent()
    run.agent.notify.wait_for("READY=1", timeout_s=60)
    return time.monotonic(), "SIGKILL mid-run, restarted on the same outbox"


def state_disk_full(run: Run) -> tuple[float, str]:
    filler = run.term.tmp / "state" / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
    time.sleep(HOLD_S)
    filler.unlink()
    return time.monotonic(), "state tmpfs filled by another file, then freed"


def command_flood(run: Run) -> tuple[float, str]:
    topic = f"{PREFIX}/reply/flood"
    replies = run.term.subscriber(topic)
    sent = 300
    for i in range(sent):
        replies.publish(f"{PREFIX}/cmd/ping", b"{}", response_topic=topic,
                        correlation=str(i).encode())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(replies.received(topic)) < sent:
        time.sleep(0.2)
    got = replies.received(topic)
    busy = sum(1 for m in got if b'"busy"' in m.payload)
    return time.monotonic(), f"{sent} pings: {len(got)} replies ({busy} busy), " \
                             f"{sent - len(got)} unanswered"


SCENARIOS: list[tuple[str, Callable[[Run], tuple[float, str]], str | None]] = [
    ("none (baseline)", no_fault, None),
    ("broker down 8 s", broker_restart, None),
    ("broker black hole 8 s", broker_black_hole, None),
    ("agent SIGKILL + restart", agent_sigkill, None),
    ("state fs full 8 s (1 MiB tmpfs)", state_disk_full, "1m"),
    ("state fs full 8 s (512 KiB tmpfs)", state_disk_full, "512k"),
    ("command flood (300 pings)", command_flood, None),
]


def main() -> int:
    rows: list[Row] = []
    with cleanup_on_signals():
        for name, fault, tmpfs in SCENARIOS:
            try:
                with Run(tmpfs) as run:
                    cleared, note = fault(run)
                    time.sleep(SETTLE_S)
                    rows.append(_tally(name, run.messages(), cleared, run.arrivals, note))
            except Exception as e:  # a broken row is reported, the others still run
                rows.append(Row(name, 0, 0, 0, 0, None, f"bench error: {type(e).__name__}: {e}"))
            print(rows[-1].line(), file=sys.stderr, flush=True)
    print("\nposdiag reliability under faults (real agent, real Mosquitto, accelerated cadence)")
    print("| fault                              | produced | delivered |  dup | counted | lost |"
          " recovery s | note")
    print("|" + "-" * 36 + "|" + "-" * 10 + "|" + "-" * 11 + "|" + "-" * 6 + "|" + "-" * 9 + "|"
          + "-" * 6 + "|" + "-" * 12 + "|------")
    for r in rows:
        print(r.line())
    silent = [r for r in rows if r.lost or r.note.startswith("bench error")]
    print(f"\n{len(rows) - len(silent)} of {len(rows)} rows: every message delivered or counted")
    return 1 if silent else 0


if __name__ == "__main__":
    if shutil.which("mosquitto") is None:
        sys.exit("mosquitto not found: make debs")
    sys.exit(main())
