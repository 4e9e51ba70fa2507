"""ISO/IEC 7816-4 §5.6 status words, and which driver error each failure becomes.

Only what a reader check meets is named; anything else is described by its class (SW1).
"""

from __future__ import annotations

from posdiag.drivers.errors import DriverError, NotSupported, PermissionDenied, ProtocolError

OK = 0x9000
NOT_FOUND = 0x6A82  # file or application not found
FUNCTION_NOT_SUPPORTED = 0x6A81  # on SELECT: the card is blocked (EMV Book 1 §12.3.2)
INVALIDATED = 0x6283  # selected file invalidated: a blocked application (EMV Book 1 §12.4)

_NAMES = {
    0x9000: "normal processing",
    0x6283: "selected file invalidated",
    0x6700: "wrong length",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6985: "conditions of use not satisfied",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A86: "incorrect P1 P2",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}
_CLASSES = {0x62: "warning, state unchanged", 0x63: "warning, state changed",
            0x64: "execution error, state unchanged", 0x65: "execution error, state changed",
            0x67: "wrong length", 0x68: "function in CLA not supported",
            0x69: "command not allowed", 0x6A: "wrong parameters", 0x6B: "wrong P1 P2",
            0x6C: "wrong Le", 0x6D: "instruction not supported", 0x6E: "class not supported",
            0x6F: "no precise diagnosis", 0x61: "more data available"}


def describe(sw: int) -> str:
    name = _NAMES.get(sw) or _CLASSES.get(sw >> 8, "unknown status")
    return f"{sw:04X} ({name})"


def error_for(sw: int, *, device: str | None = None, what: str = "command") -> DriverError:
    """The driver error for a failing status word (the caller decides which ones fail)."""
    text = f"card answered the {what} with {describe(sw)}"
    sw1 = sw >> 8
    if sw in (0x6A81, 0x6D00, 0x6E00) or sw1 == 0x68:
        return NotSupported(text, device=device)
    if sw1 == 0x69:
        return PermissionDenied(text, device=device)
    kind = "card_error" if sw1 in (0x64, 0x65, 0x6F) else "status_word"
    return ProtocolError(text, device=device, kind=kind)
