"""A real ``posdiag run`` process for integration tests: its config, its sd_notify socket.

The daemon runs exactly as under systemd: ``NOTIFY_SOCKET`` points at a datagram socket the test
binds, ``WATCHDOG_USEC`` asks for watchdog pings. The sysfs tree is a copy the test may change
while the agent runs (to make a check change status).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "hardware-fixtures"


class NotifySocket:
    """A bound AF_UNIX datagram socket recording every sd_notify message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._cond = threading.Condition()
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.extend(data.decode().splitlines())
                self._cond.notify_all()

    def wait_for(self, prefix: str, timeout_s: float = 20.0, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [m for m in self.messages if m.startswith(prefix)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {count}x {prefix!r} within {timeout_s} s; "
                                       f"got {self.messages[-10:]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def write_config(tmp: Path, port: int, *, terminal_id: str = "T-0001", extra: str = "",
                 heartbeat_s: int = 2, report_s: int = 4) -> Path:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    cfg = tmp / "posdiag.toml"
    cfg.write_text(f"""
[terminal]
id = "{terminal_id}"
[paths]
state_dir = "{state}"
[mqtt]
host = "127.0.0.1"
port = {port}
tls = false
keepalive_s = 10
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[outbox]
path = "{state}/outbox.sqlite"
[daemon]
heartbeat_s = {heartbeat_s}
report_s = {report_s}
check_interval_s = 1
jitter_percent = 0
event_holdoff_s = 0
publish_rate_per_s = 200
{extra}
""")
    return cfg


def sysfs_copy(tmp: Path) -> Path:
    dest = tmp / "sysfs"
    if not dest.exists():
        shutil.copytree(FIX / "sysfs/healthy-terminal", dest, symlinks=True)
    return dest


class Agent:
    def __init__(self, tmp: Path, config: Path, *, watchdog_usec: int = 1_000_000) -> None:
        self.tmp = tmp
        self.notify = NotifySocket(tmp / f"notify-{time.monotonic_ns()}.sock")
        env = dict(os.environ)
        env.update(NOTIFY_SOCKET=str(self.notify.path), WATCHDOG_USEC=str(watchdog_usec),
                   PYTHONUNBUFFERED="1")
        env.pop("WATCHDOG_PID", None)
        self.log = open(tmp / "agent.log", "ab")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "posdiag", "run", "--config", str(config),
             "--sysfs", str(sysfs_copy(tmp)), "--procfs", str(FIX / "procfs/healthy-terminal"),
             "--rootfs", str(FIX / "rootfs/healthy-terminal")],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.tmp / "agent.log").read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.close()

    def terminate(self, timeout_s: float = 10.0) -> tuple[int, float]:
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout_s)
        self.close()
        return rc, time.monotonic() - t

    def close(self) -> None:
        self.notify.close()
        self.log.close()
