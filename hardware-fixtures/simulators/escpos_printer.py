"""An Epson TM-T20-class ESC/POS receipt printer answering DLE EOT n on a real pty.

Follows protocols.md §5.1: ``10 04 n`` (n = 1..4) gets exactly one status byte of the form
``0xx1xx10``, with the bit meanings and typical values listed there; everything else (print data,
other commands, DLE EOT with another n) is swallowed without a reply, as a printer does. Requests
split across writes are recognised.

Faults (``faults=``, combinable):

- ``silent`` / ``slow``: the base class faults (``slow`` defaults to a 0.2 s delay per reply);
- ``paper_out``: offline, n=2 0x32 (paper-end stop), n=4 0x72;
- ``paper_near_end``: still online, n=4 0x1E;
- ``cover_open``: offline, n=2 0x16;
- ``offline``: n=1 0x1A with no cause reported;
- ``cutter_error`` / ``unrecoverable_error`` / ``auto_recoverable_error``: offline, n=2 error
  bit (0x52), n=3 0x1A / 0x32 / 0x52;
- ``corrupted``: every reply has its fixed bits broken (bit0 and bit7 flipped);
- ``unplug``: the ``unplug_at``-th request (default the 2nd, i.e. mid-probe) gets no reply and the
  device disappears.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulators.pty_device import PtyDevice

FAULTS = frozenset({
    "silent", "slow", "paper_out", "paper_near_end", "cover_open", "offline", "cutter_error",
    "unrecoverable_error", "auto_recoverable_error", "corrupted", "unplug",
})

_ERRORS = frozenset({"cutter_error", "unrecoverable_error", "auto_recoverable_error"})
_OFFLINE = _ERRORS | {"paper_out", "cover_open", "offline"}
BASE = 0x12  # the fixed bits: bit4 and bit1 set, bit7 and bit0 clear


class EscPosPrinterSimulator(PtyDevice):
    """TM-T20-class printer status. Attributes may be changed before ``start()``."""

    def __init__(self, *, faults: Iterable[str] = (), drawer_pin_high: bool = False,
                 unplug_at: int = 2, slow_delay_s: float | None = None) -> None:
        self.faults = frozenset(faults)
        unknown = self.faults - FAULTS
        if unknown:
            raise ValueError(f"unknown printer faults: {sorted(unknown)}")
        if unplug_at < 1:
            raise ValueError("unplug_at counts requests from 1")
        if slow_delay_s is None:
            slow_delay_s = 0.2 if "slow" in self.faults else 0.0
        super().__init__(silent="silent" in self.faults, slow_delay_s=slow_delay_s)
        self.drawer_pin_high = drawer_pin_high
        self.unplug_at = unplug_at
        self.requests = 0
        self._pending = bytearray()

    def status_byte(self, n: int) -> int:
        """The correct reply to DLE EOT n for the configured state (before any corruption)."""
        faults = self.faults
        if n == 1:
            return (BASE | (0x04 if self.drawer_pin_high else 0)
                    | (0x08 if faults & _OFFLINE else 0))
        if n == 2:
            return (BASE | (0x04 if "cover_open" in faults else 0)
                    | (0x20 if "paper_out" in faults else 0)
                    | (0x40 if faults & _ERRORS else 0))
        if n == 3:
            return (BASE | (0x08 if "cutter_error" in faults else 0)
                    | (0x20 if "unrecoverable_error" in faults else 0)
                    | (0x40 if "auto_recoverable_error" in faults else 0))
        if n == 4:
            return (BASE | (0x0C if "paper_near_end" in faults else 0)
                    | (0x60 if "paper_out" in faults else 0))
        raise ValueError(f"DLE EOT {n} is not a status request")

    def on_bytes(self, data: bytes) -> None:
        self._pending += data
        while True:
            start = self._pending.find(b"\x10\x04")
            if start < 0:
                # Keep a trailing DLE: its EOT may come in the next write.
                keep = 1 if self._pending.endswith(b"\x10") else 0
                del self._pending[:len(self._pending) - keep]
                return
            if len(self._pending) < start + 3:
                del self._pending[:start]
                return
            n = self._pending[start + 2]
            del self._pending[:start + 3]
            if 1 <= n <= 4:
                self._reply(n)

    def _reply(self, n: int) -> None:
        self.requests += 1
        if "unplug" in self.faults and self.requests >= self.unplug_at:
            self.unplug()
            return
        value = self.status_byte(n)
        if "corrupted" in self.faults:
            value ^= 0x81
        self.send(bytes([value]))
