"""A simulated serial device on a real pseudo-terminal.

The driver under test opens ``sim.port`` (``/dev/pts/N``) exactly as it would open ``/dev/ttyUSB0``;
the simulator sits on the master side, receives what the driver writes and answers through
``send``. Subclasses implement ``on_bytes``; faults common to every device live here:

- ``silent``: swallow everything, answer nothing (a dead device on a live port);
- ``slow``: delay every answer by ``slow_delay_s``;
- ``unplug()``: close the master side, as a USB adapter pulled out mid-command does;
- "absent" is simply not starting a simulator: tests then use a path that does not exist.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import select
import threading
import time
import tty


class PtyDevice(abc.ABC):
    """Base class: owns the pty pair and a reader thread that feeds ``on_bytes``."""

    def __init__(self, *, silent: bool = False, slow_delay_s: float = 0.0) -> None:
        self.silent = silent
        self.slow_delay_s = slow_delay_s
        self._master, self._slave = os.openpty()
        # Raw mode on both ends: no echo, no CR/LF translation, bytes pass unchanged.
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.received = bytearray()  # everything the driver wrote, for assertions

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> PtyDevice:
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._close_fds()

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def release_slave(self) -> None:
        """Close this process's handle on the slave side, so that a driver in another process
        finds the port free (posdiag reports a tty open elsewhere as busy). Until a driver
        opens it, reads on the master fail with EIO: the loop waits instead of ending."""
        with self._lock:
            if self._slave >= 0:
                os.close(self._slave)
                self._slave = -1

    def unplug(self) -> None:
        """Close the master side: the driver's next read or write fails like a pulled cable."""
        self._stop.set()
        self._close_fds()

    def _close_fds(self) -> None:
        with self._lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = -1

    # -- I/O ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            fd = self._master
            if fd < 0:
                return
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(fd, 4096)
            except OSError as e:
                if e.errno == errno.EIO and self._slave < 0 and self._master >= 0:
                    time.sleep(0.05)  # released and no driver has the port open right now
                    continue
                return
            if not data:
                continue
            self.received += data
            if self.silent:
                continue
            try:
                self.on_bytes(data)
            except OSError:
                return

    def send(self, data: bytes) -> None:
        """Write ``data`` to the driver, after the configured slow delay."""
        if self.slow_delay_s:
            time.sleep(self.slow_delay_s)
        with self._lock:
            if self._master >= 0 and not self._stop.is_set():
                os.write(self._master, data)

    @abc.abstractmethod
    def on_bytes(self, data: bytes) -> None:
        """Handle bytes written by the driver; subclasses answer through ``send``."""
