"""ESC/POS real-time status, ``DLE EOT n`` (``10 04 n``, n = 1..4): pure decoding, no I/O.

Each reply is one byte of the form ``0xx1xx10`` (bit0=0, bit1=1, bit4=1, bit7=0) whatever n is;
anything else is not a DLE EOT reply (an Auto Status Back block, print data, line noise) and
raises ``ProtocolError(kind="framing")``. Bit meanings follow Epson (TM-T20/TM-T88 class);
bits 5/6 of n=1 and bit 2 of n=3 are model dependent and reported as such.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from posdiag.drivers.errors import ProtocolError

DLE_EOT = b"\x10\x04"
FIXED_MASK = 0x93  # bits 7, 4, 1, 0
FIXED_VALUE = 0x12  # bit4 = 1, bit1 = 1, bits 7 and 0 = 0


class StatusKind(enum.IntEnum):
    """The ``n`` of ``DLE EOT n``."""

    PRINTER = 1
    OFFLINE_CAUSE = 2
    ERROR_CAUSE = 3
    PAPER_SENSOR = 4


def request(kind: StatusKind | int) -> bytes:
    """The 3-byte request for one status."""
    return DLE_EOT + bytes([StatusKind(kind)])


def check_fixed_bits(kind: StatusKind | int, value: int) -> int:
    """``value`` if it is a well-formed reply byte, else ProtocolError(kind="framing")."""
    if not 0 <= value <= 0xFF:
        raise ProtocolError(f"DLE EOT {int(kind)} reply {value} is not a byte", kind="framing")
    if value & FIXED_MASK != FIXED_VALUE:
        raise ProtocolError(
            f"DLE EOT {int(kind)} reply 0x{value:02X} breaks the fixed bits 0xx1xx10",
            kind="framing")
    return value


def _bit(value: int, n: int) -> bool:
    return bool(value >> n & 1)


@dataclass(frozen=True)
class PrinterByte:
    """n=1, printer status."""

    raw: int

    def __post_init__(self) -> None:
        check_fixed_bits(StatusKind.PRINTER, self.raw)

    @property
    def drawer_pin_high(self) -> bool:
        return _bit(self.raw, 2)

    @property
    def offline(self) -> bool:
        return _bit(self.raw, 3)

    @property
    def waiting_for_recovery(self) -> bool:
        """Bit 5 on TM-T88/HPRT class printers; reserved (0) on others."""
        return _bit(self.raw, 5)

    @property
    def feed_button(self) -> bool:
        """Bit 6 on TM-T88/HPRT class printers: paper fed by the FEED button."""
        return _bit(self.raw, 6)


@dataclass(frozen=True)
class OfflineCauseByte:
    """n=2, why the printer is offline."""

    raw: int

    def __post_init__(self) -> None:
        check_fixed_bits(StatusKind.OFFLINE_CAUSE, self.raw)

    @property
    def cover_open(self) -> bool:
        return _bit(self.raw, 2)

    @property
    def feed_button(self) -> bool:
        return _bit(self.raw, 3)

    @property
    def paper_end_stop(self) -> bool:
        """Printing stopped because the paper ran out."""
        return _bit(self.raw, 5)

    @property
    def error(self) -> bool:
        return _bit(self.raw, 6)


@dataclass(frozen=True)
class ErrorCauseByte:
    """n=3, error cause."""

    raw: int

    def __post_init__(self) -> None:
        check_fixed_bits(StatusKind.ERROR_CAUSE, self.raw)

    @property
    def mechanical_error(self) -> bool:
        """Bit 2: mechanical (TM-U220) or black-mark (Citizen) error; undefined on Bixolon."""
        return _bit(self.raw, 2)

    @property
    def cutter_error(self) -> bool:
        return _bit(self.raw, 3)

    @property
    def unrecoverable_error(self) -> bool:
        return _bit(self.raw, 5)

    @property
    def auto_recoverable_error(self) -> bool:
        """E.g. head overheat; clears by itself."""
        return _bit(self.raw, 6)


@dataclass(frozen=True)
class PaperSensorByte:
    """n=4, roll paper sensors.

    Epson sets bits 2+3 together (near end) and 5+6 together (paper end); Citizen reports one
    sensor per bit (2/3 near-end sensors, 5 paper end, 6 presenter). So near end is "bit 2 or 3"
    and paper end is bit 5, which reads both right.
    """

    raw: int

    def __post_init__(self) -> None:
        check_fixed_bits(StatusKind.PAPER_SENSOR, self.raw)

    @property
    def near_end(self) -> bool:
        return bool(self.raw & 0x0C)

    @property
    def paper_end(self) -> bool:
        return _bit(self.raw, 5)


StatusByte = PrinterByte | OfflineCauseByte | ErrorCauseByte | PaperSensorByte

_BY_KIND: dict[StatusKind, type[StatusByte]] = {
    StatusKind.PRINTER: PrinterByte,
    StatusKind.OFFLINE_CAUSE: OfflineCauseByte,
    StatusKind.ERROR_CAUSE: ErrorCauseByte,
    StatusKind.PAPER_SENSOR: PaperSensorByte,
}


def decode(kind: StatusKind | int, reply: bytes) -> StatusByte:
    """Decode the reply to ``DLE EOT kind``; it must be exactly one well-formed byte."""
    status_kind = StatusKind(kind)
    if len(reply) != 1:
        raise ProtocolError(f"DLE EOT {int(status_kind)} reply must be 1 byte, got {reply!r}",
                            kind="framing")
    return _BY_KIND[status_kind](reply[0])


@dataclass(frozen=True)
class PrinterStatus:
    """All four real-time statuses of one query round, with the answers a check needs."""

    printer: PrinterByte
    offline_cause: OfflineCauseByte
    error_cause: ErrorCauseByte
    paper: PaperSensorByte

    def __post_init__(self) -> None:
        for name, expected in (("printer", PrinterByte), ("offline_cause", OfflineCauseByte),
                               ("error_cause", ErrorCauseByte), ("paper", PaperSensorByte)):
            if not isinstance(getattr(self, name), expected):
                raise TypeError(f"PrinterStatus.{name} must be a {expected.__name__}")

    @classmethod
    def from_replies(cls, replies: bytes) -> PrinterStatus:
        """From the four reply bytes to n = 1, 2, 3, 4 in that order."""
        if len(replies) != 4:
            raise ProtocolError(f"need 4 DLE EOT replies, got {len(replies)}", kind="framing")
        return cls(PrinterByte(replies[0]), OfflineCauseByte(replies[1]),
                   ErrorCauseByte(replies[2]), PaperSensorByte(replies[3]))

    @property
    def raw(self) -> bytes:
        return bytes([self.printer.raw, self.offline_cause.raw, self.error_cause.raw,
                      self.paper.raw])

    @property
    def online(self) -> bool:
        return not self.printer.offline

    @property
    def cover_open(self) -> bool:
        return self.offline_cause.cover_open

    @property
    def paper_end(self) -> bool:
        return self.paper.paper_end or self.offline_cause.paper_end_stop

    @property
    def paper_near_end(self) -> bool:
        return self.paper.near_end

    @property
    def feed_button(self) -> bool:
        return self.offline_cause.feed_button or self.printer.feed_button

    @property
    def drawer_pin_high(self) -> bool:
        return self.printer.drawer_pin_high

    @property
    def cutter_error(self) -> bool:
        return self.error_cause.cutter_error

    @property
    def unrecoverable_error(self) -> bool:
        return self.error_cause.unrecoverable_error

    @property
    def auto_recoverable_error(self) -> bool:
        return self.error_cause.auto_recoverable_error

    @property
    def mechanical_error(self) -> bool:
        return self.error_cause.mechanical_error

    @property
    def error(self) -> bool:
        """Any error: the offline-cause error flag or any error cause bit."""
        return (self.offline_cause.error or self.cutter_error or self.unrecoverable_error
                or self.auto_recoverable_error or self.mechanical_error)
