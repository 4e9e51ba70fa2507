"""Footprint benchmark: steady-state memory and CPU of ``posdiag run`` beside Debian's
``prometheus-node-exporter``, measured the same way in the same run.

The agent runs at its default cadence with every check live: the device simulators on ptys
(card reader, PN532, printer, modem; ports pinned in the config), a TLS payment host on
loopback, the host checks on the fixture trees, and a TLS Mosquitto it stays connected to.
node_exporter (``/usr/bin/prometheus-node-exporter``, started here on a free loopback port; the
package's own service is never used) is scraped every ``--scrape-interval`` seconds, as
Prometheus would, so that it does its work too.

After the agent is ready and a warm-up has passed, both processes are sampled once a second
over ``--window`` seconds: RSS (``VmRSS`` in /proc/<pid>/status, median), PSS (smaps_rollup,
median) and CPU (utime + stime, children included, from /proc/<pid>/stat) as a share of one
core. Checks run every ``check_interval_s`` (300 s by default), so the window is mostly idle; the
cost of one full check cycle is measured apart (a ``selftest`` command, which runs every check
and replies with the report) and added pro rata to give the average at the default cadence.

The agent runs with ``PYTHONPROFILEIMPORTTIME=1``, so its log lists every module it imports,
at start and later; the bench prints what it found (jsonschema must not be among them) and where
the RSS goes: layers of those imports measured one on top of the other in fresh interpreters,
then the run-time state. ``--agent-env KEY=VALUE`` tries a remedy (e.g. MALLOC_ARENA_MAX=2).

Targets (issue #5): RSS no larger than node_exporter's; idle CPU below 0.5 % of a core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from posdiag.config import DaemonConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agent import (
    LOOPBACK,
    TERMINAL_ID,
    Interrupted,
    Options,
    Terminal,
    cleanup_on_signals,
    table,
)
from tlsfixtures import free_port

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PREFIX = f"posdiag/v1/{TERMINAL_ID}"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_IDLE_CPU = 0.5  # % of one core
# Layers of the daemon's RSS, each imported on top of the ones before it in a fresh interpreter.
LAYERS = (
    ("CPython interpreter (bare)", ("sys",)),
    ("+ ssl (OpenSSL)", ("ssl",)),
    ("+ paho.mqtt.client (with urllib.request, http, email)", ("paho.mqtt.client",)),
    ("+ sqlite3", ("sqlite3",)),
    ("+ pyudev, pyserial, ctypes", ("pyudev", "serial", "ctypes")),
)
NOT_WANTED = ("psutil", "jsonschema")  # what each would add, for the record
FORBIDDEN = ("jsonschema",)  # the daemon validates nothing at run time (issue #5, item 11)


# --------------------------------------------------------------------------------------------
# /proc readings
# --------------------------------------------------------------------------------------------
@dataclass
class Watched:
    name: str
    pid: int
    rss_kb: list[int] = field(default_factory=list)
    pss_kb: list[int] = field(default_factory=list)
    ticks: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, CPU ticks)

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def cpu_ticks(self) -> int:
        """utime + stime + cutime + cstime (children that were waited for)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15])

    def threads(self) -> int:
        return self._status("Threads")

    def rss_now(self) -> int:
        return self._status("VmRSS")

    def sample(self) -> None:
        self.rss_kb.append(self._status("VmRSS"))
        rollup = Path(f"/proc/{self.pid}/smaps_rollup").read_text()
        match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        if match:
            self.pss_kb.append(int(match.group(1)))
        self.ticks.append((time.monotonic(), self.cpu_ticks()))

    def cpu_percent(self) -> float:
        (t0, c0), (t1, c1) = self.ticks[0], self.ticks[-1]
        return (c1 - c0) / CLK_TCK / (t1 - t0) * 100

    def cpu_seconds(self) -> float:
        return self.cpu_ticks() / CLK_TCK


# --------------------------------------------------------------------------------------------
# node_exporter and its scraper
# --------------------------------------------------------------------------------------------
class NodeExporter:
    def __init__(self, log: Path) -> None:
        if not Path(NODE_EXPORTER).exists():
            raise SystemExit(f"{NODE_EXPORTER} not found: apt-get install -y "
                             "prometheus-node-exporter")
        self.port = free_port(LOOPBACK)
        self.url = f"http://{LOOPBACK}:{self.port}/metrics"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address={LOOPBACK}:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # Ctrl-C is ours to handle; stop() ends it
        self.scrapes = 0
        self.scrape_bytes = 0
        self._stop = threading.Event()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.scrape()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"node_exporter did not come up:\n"
                                     f"{log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.1)

    def scrape(self) -> None:
        with urllib.request.urlopen(self.url, timeout=5) as r:
            self.scrape_bytes += len(r.read())
        self.scrapes += 1

    def scrape_every(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                with contextlib.suppress(OSError):
                    self.scrape()

        threading.Thread(target=loop, name="scraper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --------------------------------------------------------------------------------------------
# What the agent imports, and what imports cost
# --------------------------------------------------------------------------------------------
def imported_modules(log: str) -> list[str]:
    """Module names from ``PYTHONPROFILEIMPORTTIME`` lines in the agent's log."""
    out = []
    for line in log.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                out.append(name)
    return out


def import_rss_kb(*modules: str) -> int | None:
    """RSS of a fresh interpreter after importing ``modules`` in order (None when the first
    is not installed; later ones that fail, such as optional imports that failed in the
    daemon too, are skipped)."""
    code = ("import re\n"
            f"mods = {list(modules)!r}\n"
            "for i, m in enumerate(mods):\n"
            "    try:\n"
            "        __import__(m)\n"
            "    except Exception:\n"
            "        if i == 0:\n"
            "            raise\n"
            "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=False)
    return int(p.stdout.strip()) if p.returncode == 0 else None


def rss_layers(modules: list[str], agent_rss_kb: float) -> list[list[str]]:
    """Where the daemon's RSS goes: each layer of imports measured on top of the previous ones
    (fresh interpreters), then the daemon's own modules, then its run-time state."""
    rows = [["layer", "RSS so far", "layer adds"]]
    so_far: list[str] = []
    prev: int | None = None

    def add(label: str, kb: int | None) -> None:
        nonlocal prev
        if kb is None:
            rows.append([label, "not measured", ""])
            return
        rows.append([label, f"{kb / 1024:.1f} MiB",
                     "" if prev is None else f"{(kb - prev) / 1024:+.1f} MiB"])
        prev = kb

    for label, mods in LAYERS:
        so_far += mods
        add(label, import_rss_kb(*so_far))
    stdlib_and_deps = [m for m in modules if not m.startswith(("posdiag", "__editable__"))]
    add("+ the rest of the standard library it imports", import_rss_kb(*so_far,
                                                                        *stdlib_and_deps))
    own = sum(1 for m in modules if m.startswith("posdiag"))
    add(f"+ posdiag's own {own} modules (= all the daemon imports)",
        import_rss_kb(*so_far, *modules))
    if prev is not None:
        rows.append(["+ run-time state (heap, threads, SQLite, TLS, malloc arenas)",
                     f"{agent_rss_kb / 1024:.1f} MiB", f"{(agent_rss_kb - prev) / 1024:+.1f} MiB"])
    base = import_rss_kb("sys")
    for mod in NOT_WANTED:
        kb = import_rss_kb(mod)
        if kb is not None and base is not None and mod not in modules:
            rows.append([f"(not imported: {mod} alone would add)", "",
                         f"{(kb - base) / 1024:+.1f} MiB"])
    return rows


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def selftest_cpu(term: Terminal, watched: Watched, runs: int) -> list[float]:
    """CPU seconds the agent spends on one full check cycle (the ``selftest`` command)."""
    sub = term.subscriber(f"{PREFIX}/reply/#")
    out = []
    for i in range(runs):
        time.sleep(2.0)
        before = watched.cpu_seconds()
        corr = f"fp-{i}".encode()
        sub.publish(f"{PREFIX}/cmd/selftest", b"", response_topic=f"{PREFIX}/reply/bench",
                    correlation=corr)
        reply = sub.wait_for(lambda m, c=corr: m.correlation == c, timeout_s=60)
        time.sleep(0.3)  # the PUBACK and the last log line
        out.append(watched.cpu_seconds() - before)
        if not json.loads(reply.payload).get("ok"):
            raise RuntimeError(f"selftest failed: {reply.payload[:300]!r}")
    return out


@dataclass
class Result:
    agent: Watched
    node: Watched
    cycle_cpu_s: list[float]
    rss_after_cycles_kb: tuple[int, int]
    scrapes: int
    scrape_bytes: int
    agent_threads: int
    node_threads: int
    modules: list[str]
    log_tail: str


def measure(args: argparse.Namespace) -> Result:
    with Terminal(Options()) as term:
        term.start_broker()
        term.start_devices()
        # The agent inherits the environment: these reach it and nothing else.
        extra = {"PYTHONPROFILEIMPORTTIME": "1", **dict(args.agent_env)}
        saved = {k: os.environ.get(k) for k in extra}
        os.environ.update(extra)
        try:
            agent = term.start_agent()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        node = NodeExporter(term.tmp / "node_exporter.log")
        term.defer(node.stop)
        node.scrape_every(args.scrape_interval)
        agent.notify.wait_for("READY=1", timeout_s=60)
        print(f"agent ready; warming up {args.warmup:g} s, then sampling {args.window:g} s ...",
              file=sys.stderr)
        time.sleep(args.warmup)
        a, n = Watched("posdiag run", agent.proc.pid), Watched("node_exporter", node.proc.pid)
        start = time.monotonic()
        for i in range(int(args.window) + 1):  # once a second, on a fixed grid
            time.sleep(max(0.0, start + i - time.monotonic()))
            for proc, what in ((agent.proc, "the agent"), (node.proc, "node_exporter")):
                if proc.poll() is not None:
                    raise RuntimeError(f"{what} exited (status {proc.returncode}) during the "
                                       f"window; agent log:\n{agent.log_text()[-1500:]}")
            for w in (a, n):
                w.sample()
        threads = (a.threads(), n.threads())
        print("measuring one full check cycle ...", file=sys.stderr)
        cycles = selftest_cpu(term, a, args.cycles)
        after = (a.rss_now(), n.rss_now())
        log = agent.log_text()
        return Result(a, n, cycles, after, node.scrapes, node.scrape_bytes, *threads,
                      imported_modules(log),
                      "\n".join(x for x in log.splitlines()
                                if not x.startswith("import time:"))[-1500:])


def print_tables(args: argparse.Namespace, r: Result) -> int:
    d0 = DaemonConfig()
    a, n = r.agent, r.node
    a_rss, n_rss = statistics.median(a.rss_kb), statistics.median(n.rss_kb)
    a_pss, n_pss = statistics.median(a.pss_kb), statistics.median(n.pss_kb)
    a_cpu, n_cpu = a.cpu_percent(), n.cpu_percent()
    cycle = statistics.median(r.cycle_cpu_s)
    a_avg = a_cpu + cycle / d0.check_interval_s * 100

    def mib(kb: float) -> str:
        return f"{kb / 1024:.1f} MiB"

    rows = [["measure", "posdiag run", "node_exporter", "ratio", "target", "verdict"],
            ["RSS, median (VmRSS)", mib(a_rss), mib(n_rss), f"{a_rss / n_rss:.2f}",
             "ratio ≤ 1", "PASS" if a_rss <= n_rss else "MISS"],
            ["RSS, max over the window", mib(max(a.rss_kb)), mib(max(n.rss_kb)),
             f"{max(a.rss_kb) / max(n.rss_kb):.2f}", "", ""],
            ["RSS after the check cycles", mib(r.rss_after_cycles_kb[0]),
             mib(r.rss_after_cycles_kb[1]),
             f"{r.rss_after_cycles_kb[0] / r.rss_after_cycles_kb[1]:.2f}", "", ""],
            ["PSS, median (smaps_rollup)", mib(a_pss), mib(n_pss), f"{a_pss / n_pss:.2f}", "",
             ""],
            ["CPU, idle window (% of one core)", f"{a_cpu:.3f} %", f"{n_cpu:.3f} %",
             f"{a_cpu / n_cpu:.2f}" if n_cpu else "—", f"< {TARGET_IDLE_CPU:g} %",
             "PASS" if a_cpu < TARGET_IDLE_CPU else "MISS"],
            ["one full check cycle (selftest), CPU", f"{cycle * 1000:.0f} ms", "", "", "", ""],
            [f"CPU, average with checks every {d0.check_interval_s} s", f"{a_avg:.3f} %",
             f"{n_cpu:.3f} %", f"{a_avg / n_cpu:.2f}" if n_cpu else "—", "", ""],
            ["threads", str(r.agent_threads), str(r.node_threads), "", "", ""]]
    print(f"\nSteady state over {args.window:g} s after {args.warmup:g} s of warm-up; "
          f"node_exporter scraped every {args.scrape_interval:g} s ({r.scrapes} scrapes, "
          f"{r.scrape_bytes / max(1, r.scrapes) / 1024:.0f} KiB each); check cycle: median "
          f"of {len(r.cycle_cpu_s)} ({', '.join(f'{c * 1000:.0f}' for c in r.cycle_cpu_s)} ms)")
    print(table(rows, right=frozenset({1, 2, 3})))

    # What the daemon imported, and where its RSS goes.
    mods = set(r.modules)
    tops = sorted({m.split(".")[0] for m in mods})
    found = [f for f in FORBIDDEN if f in tops]
    print(f"\nThe daemon imported {len(mods)} modules ({len(tops)} top-level names); "
          f"jsonschema: {'IMPORTED (must not be)' if 'jsonschema' in tops else 'not imported'}; "
          f"psutil: {'imported' if 'psutil' in tops else 'not imported'}")
    print(table(rss_layers(r.modules, a_rss), right=frozenset({1, 2})))
    if found:
        print(f"MISS: the daemon imports {', '.join(found)}")
    return 0 if a_rss <= n_rss and a_cpu < TARGET_IDLE_CPU and not found else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=120.0,
                    help="seconds of steady-state sampling (default 120)")
    ap.add_argument("--warmup", type=float, default=30.0,
                    help="seconds after READY=1 before sampling (default 30)")
    ap.add_argument("--scrape-interval", type=float, default=5.0,
                    help="seconds between node_exporter scrapes (default 5)")
    ap.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE",
                    type=lambda kv: tuple(kv.split("=", 1)) if "=" in kv else (kv, ""),
                    help="extra environment for the agent, e.g. MALLOC_ARENA_MAX=2 "
                         "(repeatable; to try a remedy)")
    ap.add_argument("--cycles", type=int, default=3,
                    help="selftest commands to time one check cycle (default 3)")
    args = ap.parse_args()
    if args.window < 10 or args.scrape_interval <= 0 or args.cycles < 1:
        ap.error("--window ≥ 10 s, --scrape-interval > 0 and --cycles ≥ 1")
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        ap.error("mosquitto not found: apt-get install -y mosquitto")
    with cleanup_on_signals():
        try:
            result = measure(args)
        except (KeyboardInterrupt, Interrupted) as e:
            print(f"interrupted ({type(e).__name__}); everything started was stopped",
                  file=sys.stderr)
            return 130
    return print_tables(args, result)


if __name__ == "__main__":
    raise SystemExit(main())
