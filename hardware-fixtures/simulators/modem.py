"""A Quectel EC25-like LTE modem answering AT commands on a real pty.

Follows protocols.md §4: V.250 framing (``<CR><LF>text<CR><LF>``), echo on by default (E1, the
command line and its CR repeated before the answer), ``ATE0``/``ATE1``, ``+CMEE`` 0/1/2, identity
without ``+CGMx:`` prefixes, ``+CPIN?``, ``+CSQ``, Quectel ``+QCSQ``, ``+CREG?``/``+CGREG?``/
``+CEREG?`` with ``n`` settable by ``AT+CxREG=<n>``, ``+COPS?``. Unknown commands get ``ERROR``,
as on the real module.

Faults (``faults=``, combinable):

- ``silent`` / ``slow``: the base class faults (``slow`` defaults to a 0.2 s delay per answer);
- ``no_sim`` (+CPIN? → +CME ERROR: 10), ``pin_locked`` (SIM PIN), ``puk_locked`` (SIM PUK);
- ``weak_signal`` (+CSQ 6,99 unless ``csq=`` says otherwise), ``no_signal`` (+CSQ 99,99,
  +QCSQ NOSERVICE, registration searching);
- ``not_registered`` (stat 0), ``searching`` (2), ``denied`` (3), ``roaming`` (5);
- ``urc_mid_response``: every answer carries URCs that contradict the real state (``+CEREG: 2``,
  a location ``+CREG`` URC saying denied, ``+QIND: "csq",…``, ``RING``) before and after its
  information lines; a driver that mistakes one for the answer reports the wrong state;
- ``garbled``: the answer to ``fault_command`` (default ``AT+CSQ``) is line noise;
- ``unplug_mid_command``: half the answer to ``fault_command``, then the device disappears.

``unsupported=`` lists commands answered with plain ``ERROR``, to model other modules (e.g.
``{"AT+QCSQ", "AT+CEREG?"}`` for a 2G/3G module, ``{"AT+CGMI"}`` for one with only ``ATI``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simulators.pty_device import PtyDevice

FAULTS = frozenset({
    "silent", "slow", "no_sim", "pin_locked", "puk_locked", "weak_signal", "no_signal",
    "not_registered", "searching", "denied", "roaming", "urc_mid_response", "garbled",
    "unplug_mid_command",
})

MANUFACTURER = "Quectel"
MODEL = "EC25"
REVISION = "EC25EFAR06A06M4G"
IMEI = "866758040123453"  # made up; valid Luhn check digit
HOME_OPERATOR = "Example Mobile"
ROAMING_OPERATOR = "Partner Roam"
TAC = "D6E7"
CELL_ID = "844D92A"
ACT_LTE = 7

CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
            11: "SIM PIN required", 12: "SIM PUK required"}

# URCs injected by ``urc_mid_response``; each says something false about the simulated state.
URCS_BEFORE = ('+CEREG: 2', f'+CREG: 3,"1A2B","01C3D4E5",{ACT_LTE}')
URCS_AFTER = ('+QIND: "csq",3,99', "RING")

_STAT_FAULTS = {"not_registered": 0, "searching": 2, "denied": 3, "roaming": 5}
_REG_COMMANDS = ("+CREG", "+CGREG", "+CEREG")
_REG_READ = re.compile(r"AT(\+C(?:G|E)?REG)\?")
_REG_SET = re.compile(r"AT(\+C(?:G|E)?REG)=(\d)")


class ModemSimulator(PtyDevice):
    """Quectel EC25-like modem. Attributes may be changed before ``start()``."""

    def __init__(self, *, faults: Iterable[str] = (), csq: tuple[int, int] | None = None,
                 fault_command: str = "AT+CSQ", echo: bool = True, cmee: int = 1,
                 unsupported: Iterable[str] = (), slow_delay_s: float | None = None) -> None:
        self.faults = frozenset(faults)
        unknown = self.faults - FAULTS
        if unknown:
            raise ValueError(f"unknown modem faults: {sorted(unknown)}")
        if slow_delay_s is None:
            slow_delay_s = 0.2 if "slow" in self.faults else 0.0
        super().__init__(silent="silent" in self.faults, slow_delay_s=slow_delay_s)
        if csq is None:
            csq = (99, 99) if "no_signal" in self.faults else (
                (6, 99) if "weak_signal" in self.faults else (20, 99))
        self.csq = csq
        self.fault_command = fault_command.upper()
        self.echo = echo
        self.cmee = cmee
        self.unsupported = frozenset(c.upper() for c in unsupported)
        self.reg_n = dict.fromkeys(_REG_COMMANDS, 0)
        self._line = bytearray()

    # -- state ----------------------------------------------------------------------------------
    @property
    def sim_ready(self) -> bool:
        return not self.faults & {"no_sim", "pin_locked", "puk_locked"}

    @property
    def stat(self) -> int:
        if not self.sim_ready:
            return 0
        for fault, stat in _STAT_FAULTS.items():
            if fault in self.faults:
                return stat
        if "no_signal" in self.faults:
            return 2  # nothing heard: the module keeps searching
        return 1

    # -- byte handling --------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x0D:  # S3 ends the command line
                line = bytes(self._line)
                self._line.clear()
                self._handle(line)
            elif byte != 0x0A:  # a trailing LF after CR is allowed and ignored
                self._line.append(byte)

    def _handle(self, raw: bytes) -> None:
        echo = raw + b"\r" if self.echo else b""
        command = raw.decode("ascii", "replace").strip().upper()
        if not command.startswith("AT"):
            if echo:
                self.send(echo)
            return
        if command == self.fault_command and "unplug_mid_command" in self.faults:
            self.send(echo + b"\r\n" + command[2:5].encode())
            self.unplug()
            return
        if command == self.fault_command and "garbled" in self.faults:
            self.send(echo + b"\r\n+CSQ: \xb2\x00,9\xff\x1b[\r\n\r\nOK\r\n")
            return
        info, final = self._answer(command)
        if "urc_mid_response" in self.faults:
            info = [*URCS_BEFORE, *info, *URCS_AFTER]
        body = b"".join(b"\r\n" + line.encode("ascii") + b"\r\n" for line in [*info, final])
        self.send(echo + body)

    # -- commands -------------------------------------------------------------------------------
    def _answer(self, command: str) -> tuple[list[str], str]:
        if command in self.unsupported:
            return [], "ERROR"
        simple = {
            "AT": [], "AT+CGMI": [MANUFACTURER], "AT+CGMM": [MODEL],
            "AT+CGMR": [REVISION], "AT+CGSN": [IMEI],
            "ATI": [MANUFACTURER, MODEL, f"Revision: {REVISION}"],
            "AT+CMEE?": [f"+CMEE: {self.cmee}"],
        }
        if command in simple:
            return simple[command], "OK"
        if command in ("ATE", "ATE0", "ATE1"):
            self.echo = command == "ATE1"
            return [], "OK"
        if (match := re.fullmatch(r"AT\+CMEE=([0-2])", command)) is not None:
            self.cmee = int(match.group(1))
            return [], "OK"
        if command == "AT+CPIN?":
            return self._cpin()
        if command == "AT+CSQ":
            return [f"+CSQ: {self.csq[0]},{self.csq[1]}"], "OK"
        if command == "AT+QCSQ":
            return [self._qcsq()], "OK"
        if (match := _REG_READ.fullmatch(command)) is not None:
            return [self._registration(match.group(1))], "OK"
        if (match := _REG_SET.fullmatch(command)) is not None:
            prefix, n = match.group(1), int(match.group(2))
            if n > (5 if prefix == "+CEREG" else 3):
                return [], self._error(3)
            self.reg_n[prefix] = n
            return [], "OK"
        if command == "AT+COPS?":
            return [self._cops()], "OK"
        if command == "AT+CSCS?":
            return ['+CSCS: "IRA"'], "OK"
        return [], "ERROR"

    def _error(self, code: int) -> str:
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2:
            return f"+CME ERROR: {CME_TEXT[code]}"
        return f"+CME ERROR: {code}"

    def _cpin(self) -> tuple[list[str], str]:
        if "no_sim" in self.faults:
            return [], self._error(10)
        if "puk_locked" in self.faults:
            return ["+CPIN: SIM PUK"], "OK"
        if "pin_locked" in self.faults:
            return ["+CPIN: SIM PIN"], "OK"
        return ["+CPIN: READY"], "OK"

    def _qcsq(self) -> str:
        rssi = self.csq[0]
        if rssi > 31:
            return '+QCSQ: "NOSERVICE"'
        rssi_dbm = -113 + 2 * rssi
        rsrp_dbm = max(-140, rssi_dbm - 27)  # RSRP is per resource element, ~27 dB below RSSI
        sinr_raw = min(250, 10 * rssi)  # Quectel units: dB = raw/5 - 20
        rsrq_db = -20 + rssi // 2
        return f'+QCSQ: "LTE",{rssi_dbm},{rsrp_dbm},{sinr_raw},{rsrq_db}'

    def _registration(self, prefix: str) -> str:
        n, stat = self.reg_n[prefix], self.stat
        if n >= 2 and stat in (1, 5):
            return f'{prefix}: {n},{stat},"{TAC}","{CELL_ID}",{ACT_LTE}'
        return f"{prefix}: {n},{stat}"

    def _cops(self) -> str:
        stat = self.stat
        if stat == 1:
            return f'+COPS: 0,0,"{HOME_OPERATOR}",{ACT_LTE}'
        if stat == 5:
            return f'+COPS: 0,0,"{ROAMING_OPERATOR}",{ACT_LTE}'
        return "+COPS: 0"


# -- personalities: modems that speak like a recorded module -----------------------------------

SERIAL_DIR = Path(__file__).resolve().parent.parent / "serial"
_HEADER = re.compile(r"#\s*([a-z_]+)\s*:\s*(.*)")


@dataclass(frozen=True)
class Personality:
    """A module's recorded answers (``serial/<product>-<firmware>/<scenario>.at``).

    ``answers`` maps a command line (upper case) to the lines the module printed, in order; a
    line starting ``~`` is a URC the module put in the middle of that answer. An answer without
    a final result code is a module that sends none.
    """

    name: str
    source: str
    framing: str  # "verbose" (V1) or "numeric" (V0)
    echo: bool
    unknown: str  # the final for a command the recording does not hold
    answers: dict[str, tuple[str, ...]]


def personality_names() -> list[str]:
    """Every recorded personality, as ``<product>-<firmware>/<scenario>``."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in SERIAL_DIR.glob("*/*.at"))


def load_personality(name: str) -> Personality:
    path = SERIAL_DIR / f"{name}.at"
    if not path.is_file():
        raise ValueError(f"no recorded modem {name!r}; known: {personality_names()}")
    return parse_transcript(name, path.read_text(encoding="utf-8"))


def parse_transcript(name: str, text: str) -> Personality:
    """The transcript format (serial/README.md): ``# key: value`` headers (the first one is
    ``# source:``), then blocks separated by blank lines: the command, then its answer lines."""
    headers: dict[str, str] = {}
    answers: dict[str, tuple[str, ...]] = {}
    block: list[str] = []
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# source:"):
        raise ValueError(f"{name}: the first line must be '# source: …'")
    for line in [*lines, ""]:
        header = _HEADER.fullmatch(line.strip()) if line.startswith("#") else None
        if header is not None and not block:
            headers[header.group(1)] = header.group(2).strip()
        elif line.startswith("#"):
            continue
        elif line.strip():
            block.append(line.rstrip())
        elif block:
            answers[block[0].strip().upper()] = tuple(block[1:])
            block = []
    framing = headers.get("framing", "verbose")
    if framing not in ("verbose", "numeric"):
        raise ValueError(f"{name}: framing must be verbose or numeric, not {framing!r}")
    return Personality(name, headers["source"], framing, headers.get("echo", "on") == "on",
                       headers.get("unknown", "ERROR"), answers)


_NUMERIC = frozenset("012345678")


class RecordedModem(PtyDevice):
    """A modem that answers like a recorded module (``personality=`` a name from
    ``personality_names()``), byte-exact in its framing: V1 ``<CR><LF>text<CR><LF>``, or after
    ATV0 information as ``text<CR><LF>`` and result codes as ``<code><CR>``. Echo follows
    ATE0/ATE1 like the module; ``silent``/``slow`` faults as the base class."""

    def __init__(self, personality: str | Personality, *, faults: Iterable[str] = (),
                 slow_delay_s: float = 0.0) -> None:
        self.faults = frozenset(faults)
        if self.faults - {"silent", "slow"}:
            raise ValueError(f"recorded modems know only silent and slow: {sorted(self.faults)}")
        super().__init__(silent="silent" in self.faults, slow_delay_s=slow_delay_s)
        self.personality = (personality if isinstance(personality, Personality)
                            else load_personality(personality))
        self.echo = self.personality.echo
        self._line = bytearray()

    def on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x0D:
                line = bytes(self._line)
                self._line.clear()
                self._handle(line)
            elif byte != 0x0A:
                self._line.append(byte)

    def _handle(self, raw: bytes) -> None:
        out = raw + b"\r" if self.echo else b""
        command = raw.decode("ascii", "replace").strip().upper()
        if command in ("ATE0", "ATE1"):
            self.echo = command == "ATE1"
        if not command.startswith("AT"):
            self.send(out)
            return
        lines = self.personality.answers.get(command)
        numeric = self.personality.framing == "numeric"
        if lines is None:
            # V.250 basics every module has, when the recording does not show them.
            basic = command in ("AT", "ATE0", "ATE1", "AT+CMEE=1")
            lines = (("0" if numeric else "OK"),) if basic else (self.personality.unknown,)
        for n, line in enumerate(lines):
            text = line[1:].strip() if line.startswith("~") else line
            last = n == len(lines) - 1
            if numeric and last and text in _NUMERIC:
                out += text.encode("ascii") + b"\r"  # V.250 §5.7.1: <code><CR>, no header
            elif numeric:
                out += text.encode("utf-8") + b"\r\n"
            else:
                out += b"\r\n" + text.encode("utf-8") + b"\r\n"
        self.send(out)
