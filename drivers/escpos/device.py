"""An ESC/POS receipt printer on an open serial port: the four DLE EOT real-time statuses.

Real-time commands are answered even when the printer is offline or its buffer is full, so they
are the right probe for "why does the printer not print". One request at a time, each with its
own deadline: the printer answers in milliseconds, and queuing more than 4 (HPRT) or 8 (Epson)
unanswered requests is not allowed anyway.

Errors: ``DeviceTimeout`` (no reply byte in time), ``ProtocolError(kind="framing")`` (a reply
that is not a DLE EOT status byte), ``DeviceNotFound`` (the port died, e.g. the cable was
pulled). Paper out, cover open and the like are values in ``PrinterStatus``.
"""

from __future__ import annotations

import termios
import time
from collections.abc import Callable
from typing import Protocol

import serial

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, ProtocolError
from posdiag.drivers.escpos.status import (
    PrinterStatus,
    StatusByte,
    StatusKind,
    check_fixed_bits,
    decode,
    request,
)

DEFAULT_TIMEOUT_S = 1.0
POLL_S = 0.05

# A dead port fails as SerialException (an OSError) on read/write and termios.error on flush.
_PORT_ERRORS = (OSError, termios.error)


class SerialPort(Protocol):
    """The part of pyserial's ``Serial`` the driver uses."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def reset_input_buffer(self) -> None: ...


class EscPosPrinter:
    """An ESC/POS printer on an open port. Not thread-safe: one request at a time."""

    def __init__(self, port: SerialPort, *, device: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = POLL_S) -> None:
        if timeout_s <= 0 or poll_s <= 0:
            raise ValueError("timeout_s and poll_s must be positive")
        self._port = port
        self.device = device or next(
            (getattr(port, a) for a in ("port", "url", "name") if getattr(port, a, None)), None)
        self.timeout_s = timeout_s
        try:
            # Short reads under our own deadline: a port opened with timeout=None would block.
            port.timeout = min(poll_s, timeout_s)
            if hasattr(port, "write_timeout"):
                port.write_timeout = timeout_s
        except _PORT_ERRORS as exc:
            raise self._gone(exc) from exc

    def query(self, kind: StatusKind | int) -> StatusByte:
        """Send ``DLE EOT kind`` and decode the one-byte reply."""
        return decode(kind, self._reply(StatusKind(kind)))

    def probe(self) -> PrinterStatus:
        """Query n = 1..4 in turn; the first missing or malformed reply ends the probe."""
        return PrinterStatus.from_replies(b"".join(self._reply(kind) for kind in StatusKind))

    def _reply(self, kind: StatusKind) -> bytes:
        # A byte left over from an earlier timed-out request would pass for this reply.
        self._call(self._port.reset_input_buffer)
        self._write(request(kind))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            reply = self._read()
            if reply:
                try:
                    check_fixed_bits(kind, reply[0])
                except ProtocolError as exc:
                    exc.device = self.device
                    raise
                return reply
        raise DeviceTimeout(f"no reply to DLE EOT {int(kind)} within {self.timeout_s:g} s",
                            device=self.device, timeout_s=self.timeout_s)

    # -- port I/O -------------------------------------------------------------------------------
    def _read(self) -> bytes:
        try:
            return self._port.read(1)
        except _PORT_ERRORS as exc:
            raise self._gone(exc) from exc

    def _write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"write of {data!r} did not complete", device=self.device,
                                timeout_s=self.timeout_s) from exc
        except _PORT_ERRORS as exc:
            raise self._gone(exc) from exc

    def _call(self, operation: Callable[[], object]) -> None:
        try:
            operation()
        except _PORT_ERRORS as exc:
            raise self._gone(exc) from exc

    def _gone(self, exc: BaseException) -> DeviceNotFound:
        return DeviceNotFound(f"printer disconnected: I/O on the port failed ({exc})",
                              device=self.device)
