"""Self-test benchmark: cold start and full selftest wall time, as medians of several runs.

Prints a table. Targets (issue #3): ``posdiag --version`` cold start ≤ 2× bare Python; selftest
of a healthy host ≤ 1 s; with one payment-host target black-holed, total ≤ its connect timeout
+ 0.3 s (targets are probed concurrently, so timeouts do not add up).

Runs as on a terminal, with byte-compiled modules (one warm-up run writes them). The black hole
is an nftables rule dropping SYNs to one loopback port (needs root and nft);
without them that row says why it was not measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "hardware-fixtures"
ROOTS = ["--sysfs", str(FIX / "sysfs/healthy-terminal"),
         "--procfs", str(FIX / "procfs/healthy-terminal"),
         "--rootfs", str(FIX / "rootfs/healthy-terminal")]
POSDIAG = [sys.executable, "-m", "posdiag"]
NFT_TABLE = "posdiag_bench"


# As installed on a terminal: byte-compiled modules are kept (an environment that forbids writing
# them would measure the compiler, not the agent).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], runs: int) -> tuple[float, int]:
    subprocess.run(cmd, capture_output=True, check=False, env=ENV)  # warm-up: writes .pyc
    samples = []
    rc = 0
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, check=False, env=ENV)
        samples.append(time.perf_counter() - t)
        rc = p.returncode
    return statistics.median(samples), rc


class Listener:
    """A plain TCP listener on loopback that accepts and closes: a healthy 'payment host'."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()


def blackhole(port: int) -> str | None:
    """Drop SYNs to 127.0.0.1:port; returns why not when it cannot."""
    if os.geteuid() != 0 or shutil.which("nft") is None:
        return "needs root and nft"
    script = (f"table inet {NFT_TABLE} {{\n chain output {{\n"
              f"  type filter hook output priority 0;\n"
              f"  ip daddr 127.0.0.1 tcp dport {port} tcp flags syn drop\n }}\n}}\n")
    p = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True,
                       check=False)
    return None if p.returncode == 0 else f"nft failed: {p.stderr.strip()}"


def unblackhole() -> None:
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True,
                   check=False)


def config(tmp: Path, targets: list[tuple[str, int]], timeout_s: float) -> str:
    lines = ['[terminal]\nid = "T-BENCH"\n']
    for name, port in targets:
        lines.append(f'[[checks.payment_host.targets]]\nname = "{name}"\nhost = "127.0.0.1"\n'
                     f"port = {port}\ntls = false\nconnect_timeout_s = {timeout_s}\n")
    f = tmp / "bench.toml"
    f.write_text("\n".join(lines))
    return str(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=2.0, help="connect timeout of the targets")
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []

    bare, _ = timed([sys.executable, "-c", "pass"], args.runs)
    ver, _ = timed([*POSDIAG, "--version"], args.runs)
    rows.append(("cold start: python -c pass", f"{bare * 1000:.1f} ms", "", ""))
    rows.append(("cold start: posdiag --version", f"{ver * 1000:.1f} ms",
                 f"≤ {2 * bare * 1000:.1f} ms (2× bare)", "PASS" if ver <= 2 * bare else "MISS"))

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        good = Listener()
        cfg = config(tmp, [("acquirer", good.port)], args.timeout)
        wall, rc = timed([*POSDIAG, "selftest", "--json", "--config", cfg, *ROOTS], args.runs)
        rows.append((f"selftest, healthy host (all host checks; exit {rc})",
                     f"{wall * 1000:.0f} ms", "≤ 1000 ms", "PASS" if wall <= 1.0 else "MISS"))

        holed = socket.create_server(("127.0.0.1", 0))  # a port nobody answers once SYNs drop
        hport = holed.getsockname()[1]
        why = blackhole(hport)
        if why:
            rows.append(("selftest, one target black-holed", "not measured", "", why))
        else:
            try:
                cfg = config(tmp, [("acquirer", good.port), ("backup", hport)], args.timeout)
                wall, rc = timed([*POSDIAG, "selftest", "--json", "--config", cfg, *ROOTS],
                                 max(3, args.runs // 2))
                limit = args.timeout + 0.3
                rows.append((f"selftest, one target black-holed ({args.timeout:g} s; exit {rc})",
                             f"{wall * 1000:.0f} ms", f"≤ {limit * 1000:.0f} ms",
                             "PASS" if wall <= limit else "MISS"))
            finally:
                unblackhole()
                holed.close()

    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'median':>10}  {'target':<22}  verdict")
    print("-" * (w + 46))
    for name, value, target, verdict in rows:
        print(f"{name:<{w}}  {value:>10}  {target:<22}  {verdict}")
    print(f"({args.runs} runs each, {os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
