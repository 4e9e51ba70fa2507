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

# Final result codes that end a command unsuccessfully without a +CME/+CMS code, and where they
# come from. V.250 §5.7.1 (Table 1): ERROR, NO CARRIER, BUSY, NO ANSWER, NO DIALTONE. Vendor
# forms that real firmware ends a command with: "COMMAND NOT SUPPORT" (Huawei and ZTE USB modems
# answering a command they do not implement), "TOO MANY PARAMETERS" (Huawei/ZTE parameter
# check), "NO DIAL TONE" (older modems spelling V.250's NO DIALTONE with a space).
FAILURE_FINALS = frozenset({
    "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "NO DIAL TONE",
    "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS",
})
# V.250 §6.2.6 numeric result codes after ATV0: sent as "<code><CR>" with no CR LF in front.
# 2 is RING, which is unsolicited; 5 and up are vendor CONNECT variants, not used here.
NUMERIC_FINALS: dict[str, str] = {
    "0": "OK", "1": "CONNECT", "3": "NO CARRIER", "4": "ERROR", "6": "NO DIALTONE",
    "7": "BUSY", "8": "NO ANSWER",
}
# Motorola EZX handsets end a failed command with "MODEM ERROR: <n>" instead of +CME ERROR.
_MODEM_ERROR = re.compile(r"MODEM ERROR:\s*(\d+)", re.IGNORECASE)
# An S-register read (ATS0?) answers with bare digits; there a digit is information, not a code.
_S_REGISTER_READ = re.compile(r"ATS\d+\?", re.IGNORECASE)

# URCs without a "+NAME:" prefix: V.250 RING, and Quectel/SIMCom start-up and power notices.
BARE_URCS = frozenset({
    "RING", "RDY", "SMS DONE", "PB DONE", "SMS READY", "CALL READY",
    "POWERED DOWN", "NORMAL POWER DOWN",
    "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNING",
    "OVER-VOLTAGE POWER DOWN", "OVER-VOLTAGE WARNING",
})

# Registration read answers and their URCs share a prefix; see is_registration_urc.
REGISTRATION_PREFIXES = frozenset({"+CREG", "+CGREG", "+CEREG", "+C5GREG"})

_LINE_PREFIX = re.compile(r"[+^*$%#][A-Za-z0-9_]+")
_COMMAND_PREFIX = re.compile(r"AT([+^*$%#][A-Za-z0-9_]+)", re.IGNORECASE)
_CME = re.compile(r"\+CM([ES])\s+ERROR\s*:?\s*(.*)", re.IGNORECASE)


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
    """One command's answer: its information lines (echo and URCs removed) and the URCs met.

    ``final`` is the result code that ended it (``OK``, ``CONNECT 115200``, numeric ``0`` after
    ATV0), or None when the modem gave the information it was asked for and then fell silent
    without one (old modules answer ``AT+CPIN?`` with ``+CPIN: READY`` alone).
    """

    command: str
    lines: tuple[str, ...] = ()
    urcs: tuple[str, ...] = ()
    final: str | None = "OK"

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise ValueError("AtResponse needs the command it answers")

    def one(self, prefix: str) -> str:
        """The information line carrying ``prefix`` (e.g. ``+CSQ``); the first if several."""
        for line in self.lines:
            if line_prefix(line) == prefix.upper():
                return line
        raise garbled(f"{self.command}: expected a {prefix} line, got {list(self.lines)!r}")

    def text(self) -> str:
        """The text of a bare-text answer (``AT+CGMI`` → ``Quectel``).

        27.007 also allows a ``+CGMI: Quectel`` form; that prefix is removed. Several lines
        (some firmware splits its model or revision) are joined with a space.
        """
        prefix = command_prefix(self.command)
        texts = []
        for line in self.lines:
            if prefix is not None and line_prefix(line) == prefix:
                line = unquote(payload_of(line, prefix))
            line = " ".join(line.split())
            if line:
                texts.append(line)
        if not texts:
            raise garbled(f"{self.command}: expected a line of text, got {list(self.lines)!r}")
        return " ".join(texts)


class LineSplitter:
    """Cuts a byte stream into response lines at CR and LF; empty lines vanish.

    V.250 frames every line as ``<CR><LF>text<CR><LF>`` (``text<CR><LF>`` and ``<code><CR>``
    after ATV0) and echo ends in a bare CR, so any run of CR/LF is one separator. NUL bytes
    (sent by some modules while they power up) are dropped. Control characters are line
    noise (a wrong baud rate, a dying link) and raise ``ProtocolError(kind="garbled")``; bytes
    above 0x7F are text in a non-IRA character set (``+CSCS="8859-1"``, UTF-8 names) and are
    decoded as UTF-8 when they are valid UTF-8, else as Latin-1.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished line."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[str]:
        lines, error = self.feed_tolerant(data)
        if error is not None:
            raise error
        return lines

    def feed_tolerant(self, data: bytes) -> tuple[list[str], ProtocolError | None]:
        """Like ``feed``, but a bad line is skipped and reported beside the good ones, so a
        reader can stay in step with the modem up to the final result code."""
        lines: list[str] = []
        error: ProtocolError | None = None
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._buf:
                    try:
                        lines.append(self._decode())
                    except ProtocolError as exc:
                        error = error or exc
                continue
            if byte == 0x00:
                continue
            self._buf.append(byte)
            if len(self._buf) > self._max:
                self._buf.clear()
                error = error or ProtocolError(f"line longer than {self._max} bytes",
                                               kind="framing")
        return lines, error

    def _decode(self) -> str:
        raw = bytes(self._buf)
        self._buf.clear()
        if any((b < 0x20 and b != 0x09) or b == 0x7F for b in raw):
            raise garbled(f"control characters in line {raw!r}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        return text.strip()


def _compact(field: str) -> str:
    """A field without the spaces some firmware pads numbers with (``  0 5`` → ``05``)."""
    return "".join(field.split())


def _small_int(field: str, limit: int) -> bool:
    text = _compact(field)
    return text.isdigit() and text.isascii() and len(text) <= 2 and int(text) <= limit


def is_registration_urc(line: str, prefix: str) -> bool:
    """Whether a ``+CxREG:`` line is a URC rather than the read answer.

    27.007 §7.2/§10.1.20/§10.1.22: the read answer is ``<n>,<stat>[,<lac>,<ci>…]``; the URC
    drops ``<n>``: ``<stat>`` alone, or ``<stat>,<lac>,<ci>[,<AcT>…]``. So two fields are a read
    answer, one or three a URC, and a longer read answer starts with two unquoted small numbers
    (n is 0..5, stat 0..11) where a URC has its LAC second.
    """
    try:
        fields = split_fields(payload_of(line, prefix))
    except ProtocolError:
        return False  # not well formed: let the parser have it as the answer
    if len(fields) < 2 or len(fields) == 3:
        return True
    if len(fields) == 2:
        return False  # no URC form has two fields
    return not (_small_int(fields[0], 5) and _small_int(fields[1], 11))


def final_code(line: str, command: str = "") -> tuple[bool, str] | None:
    """Whether ``line`` is a final result code: (True, text) for success, (False, text) for
    failure, None for anything else. Numeric codes are given as their V.250 verbose text."""
    upper = " ".join(line.upper().split())
    if upper == "OK" or upper == "CONNECT" or upper.startswith("CONNECT "):
        return True, line.strip()
    if upper in FAILURE_FINALS or _MODEM_ERROR.fullmatch(upper) or _CME.fullmatch(line.strip()):
        return False, line.strip()
    if upper in NUMERIC_FINALS and not _S_REGISTER_READ.fullmatch(command.strip()):
        verbose = NUMERIC_FINALS[upper]
        return verbose in ("OK", "CONNECT"), verbose
    return None


class ResponseCollector:
    """Follows one command's answer line by line.

    ``feed`` returns None while the answer is incomplete, the ``AtResponse`` at a success final
    (``OK``, ``CONNECT``, numeric ``0``/``1``), and raises ``AtCommandError`` at a failure final
    (``ERROR``, V.250 call failures, vendor forms, ``+CME ERROR``/``+CMS ERROR``, numeric
    ``4`` …). URCs are set aside in ``urcs``. ``unterminated()`` gives the answer so far for a
    modem that sent its information and no final code.
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

    @property
    def has_information(self) -> bool:
        """The expected information arrived: a line with the command's prefix, or for a
        bare-text command (``AT+CGMI``, ``ATI``) any line."""
        if self._prefix is None:
            return bool(self._lines)
        return any(line_prefix(line) == self._prefix for line in self._lines)

    def unterminated(self) -> AtResponse:
        self.done = True
        return AtResponse(self.command, tuple(self._lines), tuple(self.urcs), final=None)

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
        final = final_code(line, self.command)
        if final is not None:
            self.done = True
            success, text = final
            if success:
                return AtResponse(self.command, tuple(self._lines), tuple(self.urcs), text)
            raise _failure(self.command, line, text)
        if self._is_urc(line, upper):
            self.urcs.append(line)
        else:
            self._lines.append(line)
        return None

    def _is_urc(self, line: str, upper: str) -> bool:
        if upper in BARE_URCS:
            return True
        prefix = line_prefix(line)
        if prefix is None:
            return False
        if prefix != self._prefix:
            return True
        return prefix in REGISTRATION_PREFIXES and is_registration_urc(line, prefix)


def _failure(command: str, line: str, text: str) -> AtCommandError:
    match = _CME.fullmatch(line.strip())
    if match is None:
        modem_error = _MODEM_ERROR.fullmatch(line.strip())
        code = int(modem_error.group(1)) if modem_error else None
        return AtCommandError(f"{command} failed: {line.strip()}", kind="error",
                              command=command, code=code, text=text)
    family, detail = match.group(1).upper(), match.group(2).strip()
    kind = "cme_error" if family == "E" else "cms_error"
    compact = _compact(detail)
    code: int | None
    if compact.isdigit() and compact.isascii() and len(compact) <= 6:
        code = int(compact)
    elif family == "E":
        code = _CME_BY_TEXT.get(" ".join(detail.lower().split()))
    else:
        code = None
    meaning = CME_ERRORS.get(code, detail) if family == "E" and code is not None else detail
    return AtCommandError(f"{command} failed: +CM{family} ERROR {detail} ({meaning})",
                          kind=kind, command=command, code=code, text=detail)


def parse_response(command: str, data: bytes) -> AtResponse | None:
    """Parse a complete byte capture of one command's answer; None if it has no final code
    (a capture that holds the expected information and no final is answered, as on the
    port after the grace time)."""
    splitter = LineSplitter()
    collector = ResponseCollector(command)
    lines = splitter.feed(data)
    if splitter.pending:
        lines += splitter.feed(b"\r")  # the capture ends: so does its last line
    for line in lines:
        response = collector.feed(line)
        if response is not None:
            return response
    return collector.unterminated() if collector.has_information else None
