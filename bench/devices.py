"""Device probe benchmark: how long each device check takes with its device healthy and silent.

Runs the real checks (card reader, contactless, printer over a tty and over a usblp-style node,
cellular modem) through the runner against the simulators on real ptys, several times each, and
prints the medians beside the configured timeout. The point: a dead device costs one bounded
timeout (the modem: two AT attempts, since the first AT after idle may be lost), never a hang,
and never the check's whole deadline.

Timeouts are the checks' production defaults unless ``--fast`` is given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hardware-fixtures"))

from posdiag.checks import card_reader, cellular, contactless, printer  # noqa: E402
from posdiag.checks.base import AnySpec  # noqa: E402
from posdiag.config import CheckConfig, build  # noqa: E402
from posdiag.paths import Roots  # noqa: E402
from posdiag.results import CheckResult  # noqa: E402
from posdiag.runner import run_checks  # noqa: E402
from simulators.escpos_printer import EscPosPrinterSimulator  # noqa: E402
from simulators.idtech_msr import IdTechMsrSimulator  # noqa: E402
from simulators.modem import ModemSimulator  # noqa: E402
from simulators.pn532 import Pn532Simulator  # noqa: E402
from simulators.pty_device import PtyDevice  # noqa: E402

# Short timeouts for a quick run (--fast); the defaults are what a terminal runs with.
FAST = {"card_reader": {"reply_timeout_s": 0.2}, "contactless": {"ack_timeout_s": 0.1},
        "printer": {"reply_timeout_s": 0.2},
        "cellular": {"command_timeout_s": 0.2, "sim_timeout_s": 0.5}}
# A silent device may take this much longer than its bound (opening the port, scheduling).
SLACK_S = 0.3
# Pause between runs: the MiniMag ignores a command that comes within 80 ms of the previous
# one, and a new check run does not know when the last one ended (terminals run checks minutes
# apart, not back to back).
PAUSE_S = 0.15


@dataclass(frozen=True)
class Device:
    label: str
    spec: AnySpec
    make: Callable[[bool], PtyDevice]  # silent -> simulator
    bound: Callable[[Any], float]  # config -> seconds a silent device may cost
    bound_text: Callable[[Any], str]
    extra: dict[str, Any]


DEVICES = (
    Device("card reader (ID TECH)", card_reader.SPEC,
           lambda silent: IdTechMsrSimulator(silent=silent),
           lambda c: c.reply_timeout_s, lambda c: f"reply {c.reply_timeout_s:g} s", {}),
    Device("contactless (PN532)", contactless.SPEC,
           lambda silent: Pn532Simulator(silent=silent),
           lambda c: c.ack_timeout_s, lambda c: f"ACK {c.ack_timeout_s:g} s", {}),
    Device("printer (tty)", printer.SPEC,
           lambda silent: EscPosPrinterSimulator(faults=["silent"] if silent else []),
           lambda c: c.reply_timeout_s, lambda c: f"reply {c.reply_timeout_s:g} s",
           {"transport": "serial"}),
    Device("printer (usblp node)", printer.SPEC,
           lambda silent: EscPosPrinterSimulator(faults=["silent"] if silent else []),
           lambda c: c.reply_timeout_s, lambda c: f"reply {c.reply_timeout_s:g} s",
           {"transport": "usblp"}),
    Device("cellular modem (EC25)", cellular.SPEC,
           lambda silent: ModemSimulator(faults=["silent"] if silent else []),
           lambda c: 2 * c.command_timeout_s,
           lambda c: f"2 × AT {c.command_timeout_s:g} s", {}),
)


def probe_once(spec: AnySpec, table: dict[str, Any]) -> tuple[float, CheckResult]:
    cfg = build({"checks": {spec.name: table}}, {spec.name: spec.config_type})
    start = time.perf_counter()
    (result,) = run_checks([spec], cfg, Roots(), only=[spec.name])
    return time.perf_counter() - start, result


def measure(device: Device, silent: bool, runs: int, fast: bool) -> tuple[list[str], bool]:
    table: dict[str, Any] = {"required": True, **device.extra}
    if fast:
        table.update(FAST[device.spec.name])
    cfg: CheckConfig = build({"checks": {device.spec.name: table}},
                             {device.spec.name: device.spec.config_type}).check(device.spec.name)
    samples: list[float] = []
    outcomes: set[str] = set()
    with device.make(silent) as sim:
        table["port"] = sim.port
        for _ in range(runs):
            time.sleep(PAUSE_S)
            wall, result = probe_once(device.spec, table)
            samples.append(wall)
            outcomes.add(f"{result.status}/{result.reason}")
    median = statistics.median(samples)
    bound = device.bound(cfg)
    deadline = device.spec.timeout(cfg)
    if silent:
        good = median <= bound + SLACK_S and outcomes == {"fail/timeout"}
        verdict = "one bounded timeout" if good else "MISS"
    else:
        good = outcomes == {"ok/ok"}
        verdict = "ok" if good else "MISS"
    row = [device.label, "silent" if silent else "healthy", f"{median * 1000:.0f} ms",
           f"{min(samples) * 1000:.0f}–{max(samples) * 1000:.0f}", ", ".join(sorted(outcomes)),
           device.bound_text(cfg) if silent else "", f"{deadline:g} s", verdict]
    return row, good


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fast", action="store_true", help="short timeouts for a quick run")
    args = ap.parse_args()
    header = ["device", "state", "median", "min–max ms", "result", "timeout (config)",
              "deadline", "verdict"]
    rows = [header]
    all_good = True
    for device in DEVICES:
        for silent in (False, True):
            row, good = measure(device, silent, args.runs, args.fast)
            rows.append(row)
            all_good &= good
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if i != 2 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    print(f"({args.runs} runs each through the runner, {'--fast' if args.fast else 'default'} "
          f"timeouts, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; a silent device "
          f"passes when its median stays within its timeout + {SLACK_S:g} s)")
    return 0 if all_good else 1


if __name__ == "__main__":
    raise SystemExit(main())
