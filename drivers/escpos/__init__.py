"""ESC/POS receipt printers: real-time status (DLE EOT n) decoding and the printer on a port."""

from __future__ import annotations

from posdiag.drivers.escpos.device import EscPosPrinter
from posdiag.drivers.escpos.status import (
    ErrorCauseByte,
    OfflineCauseByte,
    PaperSensorByte,
    PrinterByte,
    PrinterStatus,
    StatusKind,
    decode,
)

__all__ = [
    "ErrorCauseByte",
    "EscPosPrinter",
    "OfflineCauseByte",
    "PaperSensorByte",
    "PrinterByte",
    "PrinterStatus",
    "StatusKind",
    "decode",
]
