"""Flight recorder benchmark: bytes on disk per day and per 72 h, write cost, window read cost,
and the cost of one whole sample (sysfs/procfs reads from the healthy fixture tree, no probe).

The file is preallocated, so "bytes per day" is the share of the fixed file one day occupies and
never grows: the row that matters is the 72 h file size, which is the whole disk cost. Targets:
72 h file ≤ 128 KiB, a write ≤ 200 µs median, a 180-minute window read ≤ 5 ms median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from posdiag.flightlog import MINUTES_72H, RECORD_SIZE, FlightLog, Sample, file_size

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "hardware-fixtures"
M0 = 29_000_000


def timed(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    """Median and p99 in µs of ``n`` calls."""
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - t) / 1000)
    out.sort()
    return statistics.median(out), out[min(len(out) - 1, int(len(out) * 0.99))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/var/tmp", help="where the file is made (a real disk)")
    ap.add_argument("-n", type=int, default=5000, help="calls per row")
    ns = ap.parse_args()
    per_day = 1440 * RECORD_SIZE
    size_72h = file_size(MINUTES_72H)
    failed = False
    with tempfile.TemporaryDirectory(dir=ns.dir, prefix="posdiag-bench-") as d:
        fl = FlightLog.create(Path(d) / "flightlog.bin")
        on_disk = (Path(d) / "flightlog.bin").stat().st_blocks * 512
        sample = Sample(minute=M0, link_up=True, link_changes=0, iface="cellular", cell_stat=1,
                        rssi_dbm=-81, rsrp_dbm=-103, rtt="ok", rtt_ms=48, dns_ms=12,
                        power="mains", battery_pct=97)

        def write(i: int) -> None:
            fl.write(Sample(**{**sample.to_dict(), "minute": M0 + i}))

        w_med, w_p99 = timed(write, ns.n)
        r_med, r_p99 = timed(lambda i: fl.window((M0 + i % 3000) * 60,
                                                 (M0 + i % 3000 + 179) * 60), ns.n // 10)
        full_med, _ = timed(lambda i: fl.window(M0 * 60, (M0 + MINUTES_72H) * 60), 20)

        from posdiag.config import RecorderConfig
        from posdiag.paths import Roots
        from posdiag.service.recorder import Recorder

        roots = Roots(FIX / "sysfs/healthy-terminal", FIX / "procfs/healthy-terminal",
                      FIX / "rootfs/healthy-terminal")
        rec = Recorder(fl, roots, RecorderConfig(), None)
        s_med, s_p99 = timed(lambda i: rec.tick(float((M0 + i) * 60)), 200)
        fl.close()

    rows = [
        ("record size", f"{RECORD_SIZE} B", ""),
        ("bytes per day (1,440 records)", f"{per_day:,} B", ""),
        ("file for 72 h (header + 4,320 records)", f"{size_72h:,} B",
         "ok" if size_72h <= 128 * 1024 else "MISSED (≤ 128 KiB)"),
        ("  blocks allocated on disk", f"{on_disk:,} B", ""),
        ("write one sample (pwrite, no fsync)", f"{w_med:.1f} µs (p99 {w_p99:.1f})",
         "ok" if w_med <= 200 else "MISSED (≤ 200 µs)"),
        ("read a 180-minute window", f"{r_med:.1f} µs (p99 {r_p99:.1f})",
         "ok" if r_med <= 5000 else "MISSED (≤ 5 ms)"),
        ("read the whole 72 h", f"{full_med / 1000:.2f} ms", ""),
        ("one whole sample (sysfs, procfs, write)", f"{s_med:.0f} µs (p99 {s_p99:.0f})", ""),
    ]
    failed = any(r[2].startswith("MISSED") for r in rows)
    width = max(len(r[0]) for r in rows)
    print("flight recorder")
    for name, value, verdict in rows:
        print(f"  {name:<{width}}  {value:<28} {verdict}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
