"""Run the ``posdiag`` command as a real subprocess while a test drives a simulator.

The simulator runs in the test process and keeps its pty's slave side open, which the port
holder scan would report as "held by another process" (port_busy). The command therefore gets
an empty ``--procfs``: only the holder scan reads /proc for these commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def write_config(tmp: Path, **card_reader: object) -> Path:
    """A config whose state lives under ``tmp/state``; ``card_reader`` keys go to its table."""
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    lines = ['[terminal]', 'id = "T-SWIPE"', '[paths]', f'state_dir = "{state}"',
             '[outbox]', f'path = "{state / "outbox.sqlite"}"', '[checks.card_reader]']
    for key, value in card_reader.items():
        shown = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {shown}")
    path = tmp / "posdiag.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def empty_procfs(tmp: Path) -> Path:
    proc = tmp / "proc"
    proc.mkdir(exist_ok=True)
    return proc


class PosdiagProcess:
    """``python -m posdiag <args>``; stderr is collected as it comes so a test can wait for a
    line (the swipe prompt) before acting."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen([sys.executable, "-m", "posdiag", *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env)
        self._out: list[str] = []
        self._err: list[str] = []
        self._lock = threading.Lock()
        self._readers = [threading.Thread(target=self._collect, args=(pipe, into), daemon=True)
                         for pipe, into in ((self._proc.stdout, self._out),
                                            (self._proc.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    def _collect(self, pipe: IO[str], into: list[str]) -> None:
        for line in pipe:
            with self._lock:
                into.append(line)

    def stderr_so_far(self) -> str:
        with self._lock:
            return "".join(self._err)

    def wait_for_stderr(self, text: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.stderr_so_far():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.finish(timeout_s=2)
                raise AssertionError(f"{text!r} never appeared on stderr:\n"
                                     f"{self.stderr_so_far()}")
            time.sleep(0.01)

    def finish(self, timeout_s: float = 20.0) -> Finished:
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise AssertionError("posdiag did not finish in time") from None
        for reader in self._readers:
            reader.join(timeout=5)
        with self._lock:
            return Finished(self._proc.returncode, "".join(self._out), "".join(self._err))
