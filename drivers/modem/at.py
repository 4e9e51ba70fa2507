"""AT command lines (ITU-T V.250, 3GPP TS 27.007 §9.2): bytes → lines → one command's response.

Pure: no I/O. ``LineSplitter`` cuts the byte stream at CR/LF; ``ResponseCollector`` takes the lines
that follow one command and returns an ``AtResponse`` once the final result code arrives. Echoed
command lines are dropped and unsolicited result codes (URCs) are set aside, so a ``+CEREG: 2`` or
``RING`` arriving in the middle of an ``AT+CSQ`` answer is never taken for the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from posdiag.drivers.errors import ProtocolError

MAX_LINE_BYTES = 1024  # QENG/ATI lines are ~200 bytes; anything much longer is noise, not AT

# 27.007 §9.2.1 numeric codes with their verbose (+CMEE=2) texts, as ModemManager's
# MMMobileEquipmentError lists them.
CME_ERRORS: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    50: "incorrect parameters",
    100: "unknown",
}
_CME_BY_TEXT = {text.lower(): code for code, text in CME_ERRORS.items()}

# V.250 final result codes that end a command unsuccessfully without a +CME/+CMS code.
_FINAL_FAILURES = frozenset({"ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"})

# URCs without a "+NAME:" prefix: V.250 RING, and Quectel/SIMCom start-up and power notices.
BARE_URCS = frozenset({
    "RING", "RDY", "SMS DONE", "PB DONE", "SMS READY", "CALL READY",
    "POWERED DOWN", "NORMAL POWER DOWN",
    "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNING",
    "OVER-VOLTAGE POWER DOWN", "OVER-VOLTAGE WARNING",
})

# Registration read answers and their URCs share a prefix; see _is_registration_urc.
REGISTRATION_PREFIXES = frozenset({"+CREG", "+CGREG", "+CEREG", "+C5GREG"})

_LINE_PREFIX = re.compile(r"[+^*$%#][A-Za-z0-9_]+")
_COMMAND_PREFIX = re.compile(r"AT([+^*$%#][A-Za-z0-9_]+)", re.IGNORECASE)
_CME = re.compile(r"\+CM([ES]) ERROR:\s*(.*)")


class AtCommandError(ProtocolError):
    """The modem ended a command with a failure result code.

    ``kind`` is ``"error"`` (plain ``ERROR`` or a V.250 call failure such as ``NO CARRIER``),
    ``"cme_error"`` or ``"cms_error"``; ``code`` is the numeric 27.007 code when known (verbose
    ``+CMEE=2`` texts are mapped back to their number), ``text`` what the modem said.
    """

    def __init__(self, message: str, *, device: str | None = None, kind: str,
                 command: str, code: int | None = None, text: str | None = None) -> None:
        super().__init__(message, device=device, kind=kind)
        self.command = command
        self.code = code
        self.text = text


def garbled(message: str) -> ProtocolError:
    return ProtocolError(message, kind="garbled")


def command_prefix(command: str) -> str | None:
    """The information-response prefix an extended command answers with (``AT+CSQ`` → ``+CSQ``)."""
    match = _COMMAND_PREFIX.match(command.strip())
    return match.group(1).upper() if match else None


def line_prefix(line: str) -> str | None:
    """``+CSQ`` for ``+CSQ: 20,99``; None for bare text such as ``OK`` or ``Quectel``."""
    match = _LINE_PREFIX.match(line)
    return match.group(0).upper() if match else None


def split_fields(payload: str) -> list[str]:
    """Split a response payload at commas outside double quotes; quotes are kept on the fields.

    Keeping the quotes lets callers tell ``"1A2B"`` (a LAC) from ``1`` (a number), which is how
    registration URCs are told from read answers.
    """
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in payload:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if quoted:
        raise garbled(f"unterminated quote in {payload!r}")
    fields.append("".join(current).strip())
    return fields


def unquote(field: str) -> str:
    field = field.strip()
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1]
    return field


def payload_of(line: str, prefix: str) -> str:
    """The text after ``prefix:`` (``20,99`` for ``+CSQ: 20,99``); ProtocolError if absent."""
    head, sep, rest = line.partition(":")
    if not sep or head.strip().upper() != prefix.upper():
        raise garbled(f"expected a {prefix}: line, got {line!r}")
    return rest.strip()


@dataclass(frozen=True)
class AtResponse:
    """One command's answer: its information lines (echo and URCs removed) and the URCs met."""

    command: str
    lines: tuple[str, ...] = ()
    urcs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise ValueError("AtResponse needs the command it answers")

    def one(self, prefix: str) -> str:
        """The only information line, which must carry ``prefix`` (e.g. ``+CSQ``)."""
        if len(self.lines) != 1 or line_prefix(self.lines[0]) != prefix.upper():
            raise garbled(f"{self.command}: expected one {prefix} line, got {list(self.lines)!r}")
        return self.lines[0]

    def text(self) -> str:
        """The only information line of a bare-text answer (``AT+CGMI`` → ``Quectel``).

        27.007 also allows a ``+CGMI: Quectel`` form; that prefix is removed.
        """
        if len(self.lines) != 1:
            raise garbled(f"{self.command}: expected one line of text, got {list(self.lines)!r}")
        line = self.lines[0]
        prefix = command_prefix(self.command)
        if prefix is not None and line_prefix(line) == prefix:
            return unquote(payload_of(line, prefix))
        return line.strip()


class LineSplitter:
    """Cuts a byte stream into response lines at CR and LF; empty lines vanish.

    V.250 frames every line as ``<CR><LF>text<CR><LF>`` and echo ends in a bare CR, so any run of
    CR/LF is one separator. Anything outside printable ASCII (V.250 uses IRA) is line noise.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished line."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._buf:
                    lines.append(self._decode())
                continue
            self._buf.append(byte)
            if len(self._buf) > self._max:
                self._buf.clear()
                raise ProtocolError(f"line longer than {self._max} bytes", kind="framing")
        return lines

    def _decode(self) -> str:
        raw = bytes(self._buf)
        self._buf.clear()
        if any(not (0x20 <= b <= 0x7E or b == 0x09) for b in raw):
            raise garbled(f"non-printable bytes in line {raw!r}")
        return raw.decode("ascii").strip()


def _is_registration_urc(line: str, prefix: str) -> bool:
    """Whether a ``+CxREG:`` line is a URC rather than the read answer.

    The read answer is ``<n>,<stat>[,...]``; the URC drops ``<n>``: ``<stat>`` alone, or
    ``<stat>,"<lac>","<ci>"...``. So a read answer has at least two fields and a bare number
    second (ModemManager tells them apart the same way, by looking at the third field).
    """
    try:
        fields = split_fields(payload_of(line, prefix))
    except ProtocolError:
        return False  # not well formed: let the parser reject it as the answer
    return len(fields) < 2 or not fields[1].isdigit()


class ResponseCollector:
    """Follows one command's answer line by line.

    ``feed`` returns None while the answer is incomplete, the ``AtResponse`` at ``OK``, and raises
    ``AtCommandError`` at ``ERROR``/``+CME ERROR``/``+CMS ERROR``. URCs are set aside in ``urcs``.
    """

    def __init__(self, command: str) -> None:
        self.command = command.strip()
        if not self.command:
            raise ValueError("empty AT command")
        self._prefix = command_prefix(self.command)
        self._echo_pending = True
        self._lines: list[str] = []
        self.urcs: list[str] = []
        self.done = False

    def feed(self, line: str) -> AtResponse | None:
        if self.done:
            raise ValueError(f"{self.command}: answer already complete")
        line = line.strip()
        if not line:
            return None
        upper = line.upper()
        # With E1 the modem repeats the command line first; drop it (once, before any answer).
        if self._echo_pending and not self._lines and upper == self.command.upper():
            self._echo_pending = False
            return None
        if upper == "OK":
            self.done = True
            return AtResponse(self.command, tuple(self._lines), tuple(self.urcs))
        self._check_failure(line, upper)
        if self._is_urc(line, upper):
            self.urcs.append(line)
        else:
            self._lines.append(line)
        return None

    def _check_failure(self, line: str, upper: str) -> None:
        if upper in _FINAL_FAILURES:
            self.done = True
            raise AtCommandError(f"{self.command} failed: {line}", kind="error",
                                 command=self.command, text=line)
        match = _CME.fullmatch(line)
        if match is None:
            return
        self.done = True
        family, detail = match.group(1), match.group(2).strip()
        kind = "cme_error" if family == "E" else "cms_error"
        code: int | None
        if detail.isdigit():
            code = int(detail)
        elif family == "E":
            code = _CME_BY_TEXT.get(detail.lower())
        else:
            code = None
        meaning = CME_ERRORS.get(code, detail) if family == "E" and code is not None else detail
        raise AtCommandError(f"{self.command} failed: +CM{family} ERROR {detail} ({meaning})",
                             kind=kind, command=self.command, code=code, text=detail)

    def _is_urc(self, line: str, upper: str) -> bool:
        if upper in BARE_URCS:
            return True
        prefix = line_prefix(line)
        if prefix is None:
            return False
        if prefix != self._prefix:
            return True
        return prefix in REGISTRATION_PREFIXES and _is_registration_urc(line, prefix)


def parse_response(command: str, data: bytes) -> AtResponse | None:
    """Parse a complete byte capture of one command's answer; None if it has no final code yet."""
    splitter = LineSplitter()
    collector = ResponseCollector(command)
    for line in splitter.feed(data):
        response = collector.feed(line)
        if response is not None:
            return response
    return None
