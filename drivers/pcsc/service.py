"""Is pcscd there to talk to? Three different answers need three different remedies:

- not installed: no ``pcscd`` binary under the root (install the package);
- not running: no pcscd process and nothing accepts on its socket (start it);
- socket refused: the socket file is there but connecting is refused or denied (a stale socket
  left by a crash, or a daemon that no longer answers: restart it).

And who else talks to it: processes that have libpcsclite mapped are PC/SC clients, the payment
application among them. Best effort, from ``/proc``; nothing here opens a reader.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = "/run/pcscd/pcscd.comm"
BINARIES = ("usr/sbin/pcscd", "usr/bin/pcscd", "sbin/pcscd")


@dataclass(frozen=True)
class Process:
    pid: int
    name: str

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


@dataclass(frozen=True)
class ServiceState:
    installed: bool
    binary: str | None
    processes: tuple[Process, ...]
    socket_path: str
    socket: str  # "ok", "missing", "refused", "denied", "timeout", "not_a_socket"
    socket_error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.socket == "ok"

    @property
    def problem(self) -> str | None:
        """None, or ``not_installed`` / ``not_running`` / ``refused``."""
        if self.reachable:
            return None
        if not self.installed:
            return "not_installed"
        if not self.processes:
            return "not_running"
        return "refused"


def service_state(*, rootfs: str | Path = "/", procfs: str | Path = "/proc",
                  socket_path: str = DEFAULT_SOCKET, timeout_s: float = 0.5) -> ServiceState:
    root = Path(rootfs)
    binary = next((f"/{b}" for b in BINARIES if (root / b).is_file()), None)
    state, error = probe_socket(socket_path, timeout_s)
    return ServiceState(binary is not None, binary, processes_named("pcscd", procfs),
                        socket_path, state, error)


def probe_socket(path: str, timeout_s: float) -> tuple[str, str | None]:
    """Connect to pcscd's Unix socket and hang up again: does anything accept there?"""
    if not os.path.lexists(path):
        return "missing", None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(path)
    except TimeoutError:
        return "timeout", f"no answer within {timeout_s:g} s"
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            return "refused", e.strerror
        if e.errno in (errno.EACCES, errno.EPERM):
            return "denied", e.strerror
        if e.errno == errno.ENOENT:
            return "missing", None
        return "not_a_socket", e.strerror
    finally:
        s.close()
    return "ok", None


def processes_named(name: str, procfs: str | Path = "/proc") -> tuple[Process, ...]:
    """Live processes called ``name``; a zombie (exited, not yet reaped) does not count."""
    found = []
    for pid, comm in _processes(procfs):
        if comm == name and not _zombie(procfs, pid):
            found.append(Process(pid, comm))
    return tuple(found)


def _zombie(procfs: str | Path, pid: int) -> bool:
    try:
        stat = (Path(procfs) / str(pid) / "stat").read_text("utf-8", "replace")
    except OSError:
        return False  # no stat (a fixture tree with only comm): take it as running
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def pcsc_clients(procfs: str | Path = "/proc", *, exclude: tuple[int, ...] = ()) -> tuple[
        Process, ...]:
    """Processes that have libpcsclite loaded (PC/SC applications), except ``exclude``."""
    found = []
    for pid, comm in _processes(procfs):
        if pid in exclude or comm == "pcscd":
            continue
        try:
            with open(Path(procfs) / str(pid) / "maps", encoding="utf-8", errors="replace") as f:
                if "libpcsclite" in f.read():
                    found.append(Process(pid, comm))
        except OSError:
            continue
    return tuple(found)


def _processes(procfs: str | Path) -> list[tuple[int, str]]:
    try:
        entries = os.listdir(procfs)
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            comm = (Path(procfs) / entry / "comm").read_text("utf-8", "replace").strip()
        except OSError:
            continue
        out.append((int(entry), comm))
    return sorted(out)
