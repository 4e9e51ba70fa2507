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

import time

from posdiag.drivers.errors import DeviceTimeout, ProtocolError
from posdiag.drivers.escpos.status import (
    PrinterStatus,
    StatusByte,
    StatusKind,
    check_fixed_bits,
    decode,
    request,
)
from posdiag.drivers.serial_port import PortIO, SerialPort, port_device

DEFAULT_TIMEOUT_S = 1.0
POLL_S = 0.05

class EscPosPrinter:
    """An ESC/POS printer on an open port. Not thread-safe: one request at a time."""

    def __init__(self, port: SerialPort, *, device: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = POLL_S) -> None:
        if timeout_s <= 0 or poll_s <= 0:
            raise ValueError("timeout_s and poll_s must be positive")
        self._port = port
        self.device = port_device(port, device)
        self.timeout_s = timeout_s
        self._io = PortIO(port, device=self.device, what="printer", timeout_s=timeout_s)
        # Short reads under our own deadline: a port opened with timeout=None would block.
        self._io.configure(min(poll_s, timeout_s))

    def query(self, kind: StatusKind | int) -> StatusByte:
        """Send ``DLE EOT kind`` and decode the one-byte reply."""
        return decode(kind, self._reply(StatusKind(kind)))

    def probe(self) -> PrinterStatus:
        """Query n = 1..4 in turn; the first missing or malformed reply ends the probe."""
        return PrinterStatus.from_replies(b"".join(self._reply(kind) for kind in StatusKind))

    def _reply(self, kind: StatusKind) -> bytes:
        # A byte left over from an earlier timed-out request would pass for this reply.
        self._io.call(self._port.reset_input_buffer)
        self._io.write(request(kind))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            reply = self._io.read(1)
            if reply:
                try:
                    check_fixed_bits(kind, reply[0])
                except ProtocolError as exc:
                    exc.device = self.device
                    raise
                return reply
        raise DeviceTimeout(f"no reply to DLE EOT {int(kind)} within {self.timeout_s:g} s",
                            device=self.device, timeout_s=self.timeout_s)
