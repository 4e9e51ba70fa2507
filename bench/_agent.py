"""A whole demo terminal for the benches: a TLS Mosquitto, the device simulators, a payment host
and a real ``posdiag run`` process, all on loopback, all stopped again by ``Terminal.close``.

It reuses the integration-test fixtures rather than copying them: ``tests/broker.py`` (Mosquitto
on an ephemeral port), ``tests/tlsfixtures.py`` (certificates, a TLS server) and
``tests/daemon/agent_process.py`` (the daemon process with its sd_notify socket). What it adds is
the config a bench needs: TLS on, the device checks' ports pinned to the simulators' ptys, and a
``[daemon]``/``[mqtt]`` cadence the bench chooses (the defaults, or an accelerated one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO / "tests", REPO / "tests/daemon", REPO / "hardware-fixtures"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from agent_process import Agent  # noqa: E402
from broker import Broker, ClientCA, Subscriber  # noqa: E402
from tlsfixtures import LOOPBACK, LocalServer  # noqa: E402

from simulators.escpos_printer import EscPosPrinterSimulator  # noqa: E402
from simulators.idtech_msr import IdTechMsrSimulator  # noqa: E402
from simulators.modem import ModemSimulator  # noqa: E402
from simulators.pn532 import Pn532Simulator  # noqa: E402
from simulators.pty_device import PtyDevice  # noqa: E402

TERMINAL_ID = "T-0001"
# WatchdogSec=60 in systemd/posdiag.service: the daemon pings every 30 s, as in production.
WATCHDOG_USEC = 60_000_000


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def smallest_accepted(cls: type, name: str, wanted: int) -> int:
    """``wanted``, or the smallest integer above it that the config field's rule accepts
    (config bounds are read from ``posdiag.config``, not repeated here)."""
    rule = {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("rule")
    value = max(1, wanted)
    while rule is not None and rule(value) is not None:
        value += 1
    return value


class Interrupted(Exception):
    """SIGTERM or SIGHUP reached the bench: unwind and clean up as for Ctrl-C."""


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception so every ``finally`` runs, and make Ctrl-C raise
    KeyboardInterrupt even when SIGINT came in ignored (a job started with ``&``)."""
    def raise_(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, raise_) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclasses.dataclass
class Options:
    """What the terminal looks like. ``daemon``/``mqtt`` are extra keys of those sections
    (absent keys keep posdiag's defaults)."""

    daemon: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mqtt: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    devices: bool = True
    client_cert: bool = False
    # Where the agent connects (a relay's port); None: straight to the broker.
    connect_port: Callable[[int], int] | None = None
    watchdog_usec: int = WATCHDOG_USEC


class Terminal:
    """Broker, simulators, payment host and agent; ``close`` stops all of them, in any state."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.tmp = Path(tempfile.mkdtemp(prefix="posdiag-bench-"))
        self._stack = contextlib.ExitStack()
        self._stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        self.agent: Agent | None = None
        self.sims: dict[str, PtyDevice] = {}
        self.payment_host: LocalServer | None = None
        self.ca = ClientCA("posdiag bench CA")
        self.client_cert: tuple[Path, Path] | None = None
        self.backend_cert: tuple[Path, Path] | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def defer(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` at ``close`` (before what was started earlier is stopped)."""
        self._stack.callback(fn)

    def start_broker(self) -> Broker:
        self.broker = Broker(self.tmp, tls=self.ca,
                             require_certificate=self.options.client_cert)
        self._stack.enter_context(self.broker)
        if self.options.client_cert:
            self.client_cert = self.ca.issue_client(TERMINAL_ID, self.tmp / "pki")
            self.backend_cert = self.ca.issue_client("backend", self.tmp / "pki")
        return self.broker

    def subscriber(self, *topics: str) -> Subscriber:
        sub = Subscriber(self.broker, *topics, cert=self.backend_cert)
        self._stack.callback(sub.close)
        return sub

    def start_devices(self) -> None:
        if not self.options.devices:
            return
        sims: dict[str, PtyDevice] = {
            "card_reader": IdTechMsrSimulator(),
            "contactless": Pn532Simulator(),
            "printer": EscPosPrinterSimulator(),
            "cellular": ModemSimulator(),
        }
        for name, sim in sims.items():
            self._stack.enter_context(sim)
            self.sims[name] = sim
        # A payment host on loopback, so the report carries a real target's DNS/TCP/TLS metrics.
        pay_cert = self.ca.issue(LOOPBACK)
        self.payment_host = self._stack.enter_context(LocalServer("tls", pay_cert))

    def start_agent(self) -> Agent:
        port = self.broker.port
        if self.options.connect_port is not None:
            port = self.options.connect_port(port)
        cfg = self.write_config(port)
        agent = Agent(self.tmp, cfg, watchdog_usec=self.options.watchdog_usec)
        self.agent = agent
        self._stack.callback(stop_agent, agent)
        return agent

    # -- config ---------------------------------------------------------------------------------
    def write_config(self, port: int) -> Path:
        state = self.tmp / "state"
        state.mkdir(exist_ok=True)
        mqtt: dict[str, Any] = {"host": LOOPBACK, "port": port, "tls": True,
                                "ca_file": str(self.broker.ca_file)}
        if self.client_cert is not None:
            mqtt.update(cert_file=str(self.client_cert[0]), key_file=str(self.client_cert[1]))
        mqtt.update(self.options.mqtt)
        sections: dict[str, Mapping[str, Any]] = {
            "terminal": {"id": TERMINAL_ID},
            "paths": {"state_dir": str(state)},
            "mqtt": mqtt,
            "outbox": {"path": str(state / "outbox.sqlite")},
            "daemon": dict(self.options.daemon),
        }
        for name, sim in self.sims.items():
            pinned: dict[str, Any] = {"port": sim.port, "required": True}
            if name == "printer":
                pinned["transport"] = "serial"
            sections[f"checks.{name}"] = pinned
        lines: list[str] = []
        for name, values in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        if self.payment_host is not None:
            ca = self.ca.write(self.tmp / "pki", "payment-ca.pem")
            target = {"name": "acquirer", "host": LOOPBACK, "port": self.payment_host.port,
                      "tls": True, "ca_file": str(ca)}
            lines.append("[[checks.payment_host.targets]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in target.items()]
        cfg = self.tmp / "posdiag.toml"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg


def stop_agent(agent: Agent, timeout_s: float = 10.0) -> None:
    """SIGTERM (the agent may already be gone after a Ctrl-C: it stops on SIGINT too), then
    SIGKILL if it lingers."""
    if agent.proc.poll() is None:
        agent.proc.send_signal(signal.SIGTERM)
    try:
        agent.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        agent.proc.kill()
        agent.proc.wait(5)
    with contextlib.suppress(OSError):
        agent.close()


def table(rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """A plain-text table; the first row is the header, columns in ``right`` are right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            out.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return "\n".join(out)
