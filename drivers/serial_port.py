"""Port I/O for the serial device drivers: pyserial failures become driver errors.

The drivers take an already open pyserial-like port (``serial.serial_for_url(...)``, a tty, a pty,
``rfc2217://``). ``PortIO`` wraps each call on it: a port that died (USB pulled, pty closed) is
``DeviceNotFound``, a write the port could not finish within its write timeout is
``DeviceTimeout``. Opening ports and spying on them is ``transport.py``'s job, not this module's.

Two message styles exist, and callers rely on both: without ``step`` the device is named
(``"modem disconnected: I/O on the port failed (...)"``); with ``step`` the failed step is
(``"read failed, port gone (unplugged?): ..."``).
"""

from __future__ import annotations

import termios
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import serial

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout

__all__ = ["PORT_ERRORS", "PortIO", "SerialPort", "port_device"]

# A dead pty/USB port fails as SerialException (an OSError) on read/write and termios.error on
# flush (tcdrain); either means the device is gone.
PORT_ERRORS = (OSError, termios.error)


class SerialPort(Protocol):
    """The part of pyserial's ``Serial`` the drivers use."""

    timeout: float | None
    write_timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def reset_input_buffer(self) -> None: ...


def port_device(port: object, device: str | None) -> str | None:
    """``device`` if given, else the name the port was opened with."""
    return device or next(
        (getattr(port, a) for a in ("port", "url", "name") if getattr(port, a, None)), None)


class PortIO:
    """Calls on one open port, each turning port failures into driver errors.

    ``what`` names the device in step-less messages ("modem", "printer"); ``timeout_s`` is the
    write timeout a ``DeviceTimeout`` reports.
    """

    def __init__(self, port: SerialPort, *, device: str | None, what: str,
                 timeout_s: float) -> None:
        self.port = port
        self.device = device
        self.what = what
        self.timeout_s = timeout_s

    def configure(self, read_timeout_s: float, *, keep_write_timeout: bool = False,
                  step: str | None = None) -> None:
        """Short blocking reads (the driver keeps its own deadlines); writes bounded by
        ``timeout_s``, unless ``keep_write_timeout`` and the port already has one."""
        def apply() -> None:
            self.port.timeout = read_timeout_s
            # Some port-likes have no write timeout at all.
            if hasattr(self.port, "write_timeout") and not (
                    keep_write_timeout and self.port.write_timeout is not None):
                self.port.write_timeout = self.timeout_s
        self.call(apply, step=step)

    def read(self, n: int, *, step: str | None = None) -> bytes:
        """Up to ``n`` bytes, waiting at most the port's read timeout."""
        with self._guard(step):
            return self.port.read(n)

    def read_available(self, *, step: str | None = None) -> bytes:
        """What is buffered, or else the next byte within the port's read timeout."""
        with self._guard(step):
            return self.port.read(max(1, self.port.in_waiting))

    def write(self, data: bytes, *, step: str | None = None, flush: bool = False) -> None:
        """Write ``data`` in one call; ``flush`` waits until it has left the port."""
        with self._guard(step, data):
            self.port.write(data)
            if flush:
                self.port.flush()

    def call(self, operation: Callable[[], object], *, step: str | None = None) -> None:
        with self._guard(step):
            operation()

    def gone(self, exc: BaseException, *, step: str | None = None) -> DeviceNotFound:
        if step is not None:
            return DeviceNotFound(f"{step} failed, port gone (unplugged?): {exc}",
                                  device=self.device)
        return DeviceNotFound(f"{self.what} disconnected: I/O on the port failed ({exc})",
                              device=self.device)

    @contextmanager
    def _guard(self, step: str | None, data: bytes | None = None) -> Iterator[None]:
        try:
            yield
        except serial.SerialTimeoutException as exc:
            # Only writes time out this way; a step-less read or call keeps it as a port failure.
            if step is not None:
                raise DeviceTimeout(f"{step}: port write timed out", device=self.device,
                                    timeout_s=self.timeout_s) from exc
            if data is not None:
                raise DeviceTimeout(f"write of {data!r} did not complete", device=self.device,
                                    timeout_s=self.timeout_s) from exc
            raise self.gone(exc) from exc
        except PORT_ERRORS as exc:
            raise self.gone(exc, step=step) from exc
