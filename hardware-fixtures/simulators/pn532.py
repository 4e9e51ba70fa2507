"""A PN532 (C106 firmware 1.6) on HSU, byte-exact per protocols.md §1, with fault modes.

The frame parser here is written separately from ``posdiag.drivers.pn532.framing`` on purpose: a
framing bug in the driver must not be mirrored by the simulator and so hidden. See README-pn532.md.

Behaviour (protocols.md §1.2–1.4):
- asleep until a 0x55 byte arrives (HSU wake-up); until SAMConfiguration it stays in LowVbat and
  ignores other commands (no ACK) — that is what libnfc's wake-up handling implies;
- each valid command frame gets an ACK, then the response (TFI 0xD5, code + 1), normal when it fits
  and extended otherwise; unknown or malformed commands get the syntax error frame;
- a host ACK aborts the command in progress; a host NACK re-sends the last response;
- InListPassiveTarget with no card and MxRtyPassiveActivation 0xFF (the default) never answers
  until a card is placed or the host aborts; with finite retries it answers NbTg = 0.

Fault modes: ``silent`` and ``slow_delay_s`` (base class), ``no_ack`` (commands vanish: no ACK, no
response), ``bad_checksum`` (every response's DCS is off by one; with ``bad_checksum_on_resend``
False the NACK re-send is correct, modelling one-off line noise, with True (default) it stays
corrupt, modelling a broken line), ``error_frame`` (every command after the ACK gets the syntax
error frame; ``error_frame_codes`` limits that to some command codes), ``rom_fail``/``ram_fail``
(Diagnose 01/02 answer 0xFF), ``antenna_fault`` (Diagnose 07 answers 0x01; the real non-zero value
is not documented), ``unplug_after_ack`` (command code after whose ACK the master side closes),
``card_present`` plus ``place_card()``/``remove_card()``, ``ignore_retry_limit``
(InListPassiveTarget waits for a card whatever RFConfiguration said, as a chip that lost its
configuration would), ``frame_fault`` ("no_postamble", "bad_postamble", "truncated": every response
frame loses its postamble, carries 0x42 there, or stops after half its bytes; the NACK re-send
is whole unless ``frame_fault_on_resend``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulators.pty_device import PtyDevice

SERIAL_DIR = Path(__file__).resolve().parent.parent / "serial"

ACK = bytes.fromhex("0000FF00FF00")
ERROR = bytes.fromhex("0000FF01FF7F8100")

# One 7-byte-UID type A card, the target bytes of nfcpy's InListPassiveTarget test.
DEFAULT_CARD = bytes.fromhex("01004400070416C6C2D73881")


def _sum_byte(data: bytes) -> int:
    return (-sum(data)) & 0xFF


FRAME_FAULTS = ("no_postamble", "bad_postamble", "truncated")


def damage(frame: bytes, fault: str | None) -> bytes:
    """``frame`` as one of ``FRAME_FAULTS`` leaves it on the wire."""
    if fault is None:
        return frame
    if fault == "no_postamble":
        return frame[:-1]
    if fault == "bad_postamble":
        return frame[:-1] + b"\x42"
    if fault == "truncated":
        return frame[: len(frame) // 2]
    raise ValueError(f"unknown frame fault {fault!r}")


def response_bytes(payload: bytes, *, corrupt_dcs: bool = False) -> bytes:
    """PN532 → host frame around ``payload`` (PD0 first)."""
    body = b"\xd5" + payload
    if len(body) <= 255:
        head = bytes([len(body), _sum_byte(bytes([len(body)]))])
    else:
        hi, lo = divmod(len(body), 256)
        head = bytes([0xFF, 0xFF, hi, lo, _sum_byte(bytes([hi, lo]))])
    dcs = _sum_byte(body)
    if corrupt_dcs:
        dcs = (dcs + 1) & 0xFF
    return b"\x00\x00\xff" + head + body + bytes([dcs]) + b"\x00"


@dataclass(frozen=True)
class Recording:
    """A PN532 transcript (``serial/<product>-<firmware>/<scenario>.frames``): for each host
    command frame, the chip's frames in order (ACK, then response or error frame)."""

    name: str
    source: str
    answers: dict[bytes, tuple[bytes, ...]]  # command payload (code first) → chip frames


def personality_names() -> list[str]:
    """Every recorded PN532, as ``<product>-<firmware>/<scenario>``."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in SERIAL_DIR.glob("*/*.frames"))


def load_personality(name: str) -> Recording:
    path = SERIAL_DIR / f"{name}.frames"
    if not path.is_file():
        raise ValueError(f"no recorded PN532 {name!r}; known: {personality_names()}")
    lines = path.read_text(encoding="ascii").splitlines()
    if not lines or not lines[0].startswith("# source: "):
        raise ValueError(f"{path}: the first line must be '# source: ...'")
    answers: dict[bytes, tuple[bytes, ...]] = {}
    command: bytes | None = None
    for line in lines:
        if line.startswith("> "):
            frame = bytes.fromhex(line[2:])
            # payload = the frame's data after TFI D4 (normal frames only in recordings)
            command = frame[6 : 5 + frame[3]]
            answers[command] = ()
        elif line.startswith("< ") and command is not None:
            answers[command] += (bytes.fromhex(line[2:]),)
    return Recording(name, lines[0][len("# source: "):], answers)


class Pn532Simulator(PtyDevice):
    def __init__(self, *, silent: bool = False, slow_delay_s: float = 0.0,
                 firmware: tuple[int, int, int, int] = (0x32, 0x01, 0x06, 0x07),
                 no_ack: bool = False, bad_checksum: bool = False,
                 bad_checksum_on_resend: bool = True, error_frame: bool = False,
                 error_frame_codes: frozenset[int] = frozenset(), rom_fail: bool = False,
                 ram_fail: bool = False, antenna_fault: bool = False,
                 unplug_after_ack: int | None = None, card_present: bool = False,
                 card_target: bytes = DEFAULT_CARD, ignore_retry_limit: bool = False,
                 frame_fault: str | None = None, frame_fault_on_resend: bool = False,
                 personality: str | Recording | None = None) -> None:
        super().__init__(silent=silent, slow_delay_s=slow_delay_s)
        # A recorded chip: commands the recording holds get its frames byte for byte.
        self.personality = (load_personality(personality) if isinstance(personality, str)
                            else personality)
        self.replayed: list[bytes] = []  # payloads answered from the recording
        if frame_fault is not None and frame_fault not in FRAME_FAULTS:
            raise ValueError(f"frame_fault must be one of {FRAME_FAULTS}")
        self.frame_fault = frame_fault
        self.frame_fault_on_resend = frame_fault_on_resend
        self.firmware = firmware
        self.no_ack = no_ack
        self.bad_checksum = bad_checksum
        self.bad_checksum_on_resend = bad_checksum_on_resend
        self.error_frame = error_frame
        self.error_frame_codes = error_frame_codes
        self.rom_fail = rom_fail
        self.ram_fail = ram_fail
        self.antenna_fault = antenna_fault
        self.unplug_after_ack = unplug_after_ack
        self.card_present = card_present
        self.card_target = card_target
        self.ignore_retry_limit = ignore_retry_limit
        self.asleep = True
        self.sam_configured = False
        self.passive_retries = 0xFF
        self.commands: list[bytes] = []  # payloads (code first) of every command frame received
        self.nacks_received = 0
        self.aborts_received = 0
        self._buf = bytearray()
        self._last_response: bytes | None = None  # payload, or None after an error frame
        self._last_was_error = False
        self._listing = False

    # -- test controls ----------------------------------------------------------------------
    def place_card(self) -> None:
        """Put the card in the field; a pending InListPassiveTarget answers now."""
        self.card_present = True
        if self._listing:
            self._listing = False
            self._respond(b"\x4b\x01" + self.card_target)

    def remove_card(self) -> None:
        self.card_present = False

    # -- host byte stream ---------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        if self.asleep:
            wake = data.find(b"\x55")
            if wake < 0:
                return
            self.asleep = False
            data = data[wake + 1 :]
        self._buf += data
        while self._parse_one():
            pass

    def _parse_one(self) -> bool:
        buf = self._buf
        start = buf.find(b"\x00\xff")
        if start < 0:
            del buf[: len(buf) - 1 if buf.endswith(b"\x00") else len(buf)]
            return False
        del buf[:start]
        if len(buf) < 4:
            return False
        length, lcs = buf[2], buf[3]
        if (length, lcs) == (0x00, 0xFF):
            del buf[:4]
            self._on_host_ack()
            return True
        if (length, lcs) == (0xFF, 0x00):
            del buf[:4]
            self._on_host_nack()
            return True
        header = 4
        if (length, lcs) == (0xFF, 0xFF):
            if len(buf) < 7:
                return False
            if (buf[4] + buf[5] + buf[6]) & 0xFF:
                del buf[:2]
                return True
            length, header = buf[4] * 256 + buf[5], 7
        elif (length + lcs) & 0xFF or length == 0:
            del buf[:2]  # not a frame: resynchronise on the next start code
            return True
        if len(buf) < header + length + 1:
            return False
        body = bytes(buf[header : header + length])
        dcs = buf[header + length]
        del buf[: header + length + 1]
        # A corrupted or foreign frame is dropped without ACK; the host then times out.
        if (sum(body) + dcs) & 0xFF == 0 and body[0] == 0xD4 and len(body) >= 2:
            self._on_command(body[1:])
        return True

    def _on_host_ack(self) -> None:
        self.aborts_received += 1
        self._listing = False

    def _on_host_nack(self) -> None:
        self.nacks_received += 1
        if self._last_was_error:
            self.send(ERROR)
        elif self._last_response is not None:
            corrupt = self.bad_checksum and self.bad_checksum_on_resend
            fault = self.frame_fault if self.frame_fault_on_resend else None
            self.send(damage(response_bytes(self._last_response, corrupt_dcs=corrupt), fault))

    # -- commands ---------------------------------------------------------------------------
    def _on_command(self, payload: bytes) -> None:
        self.commands.append(payload)
        code = payload[0]
        if self.no_ack or (not self.sam_configured and code != 0x14):
            return
        if self.personality is not None and payload in self.personality.answers:
            self._replay(payload, self.personality.answers[payload])
            return
        self.send(ACK)
        if self.unplug_after_ack is not None and code == self.unplug_after_ack:
            self.unplug()
            return
        if self.error_frame or code in self.error_frame_codes:
            self._send_error()
            return
        answer = self._answer(code, payload[1:])
        if answer is None:
            self._send_error()
        elif answer:
            self._respond(answer)

    def _replay(self, payload: bytes, frames: tuple[bytes, ...]) -> None:
        self.replayed.append(payload)
        if payload[0] == 0x14:
            self.sam_configured = True
        for frame in frames:
            if frame == ACK:
                self.send(frame)
            elif frame == ERROR:
                self._send_error()
            else:
                self._last_response = frame[6 : 5 + frame[3]]  # for a NACK re-send
                self._last_was_error = False
                self.send(frame)

    def _answer(self, code: int, params: bytes) -> bytes | None:
        """Response payload; None for the syntax error frame, b"" for no answer (yet)."""
        if code == 0x02 and not params:
            return b"\x03" + bytes(self.firmware)
        if code == 0x14 and 1 <= len(params) <= 3 and 1 <= params[0] <= 4:
            if params[0] == 0x02 and len(params) < 2:
                return None  # virtual card mode needs the timeout byte
            self.sam_configured = True
            return b"\x15"
        if code == 0x00 and params:
            return self._diagnose(params[0], params[1:])
        if code == 0x32 and params:
            if params[0] == 0x05:
                if len(params) != 4:
                    return None
                self.passive_retries = params[3]
            return b"\x33"
        if code == 0x4A and len(params) >= 2 and params[0] in (1, 2) and params[1] <= 4:
            if self.card_present and params[1] == 0x00:
                return b"\x4b\x01" + self.card_target
            if self.passive_retries == 0xFF or self.ignore_retry_limit:
                self._listing = True  # retries forever: answer only when a card comes
                return b""
            return b"\x4b\x00"
        return None

    def _diagnose(self, test: int, params: bytes) -> bytes | None:
        if test == 0x00 and len(params) <= 262:
            return b"\x01\x00" + params
        if test == 0x01 and not params:
            return b"\x01\xff" if self.rom_fail else b"\x01\x00"
        if test == 0x02 and not params:
            return b"\x01\xff" if self.ram_fail else b"\x01\x00"
        if test == 0x04 and len(params) == 1 and params[0] in (1, 2):
            return b"\x01\x80"  # no FeliCa target in the field: all 128 polls fail
        if test == 0x07 and len(params) == 1:
            return b"\x01\x01" if self.antenna_fault else b"\x01\x00"
        return None

    def _respond(self, payload: bytes) -> None:
        self._last_response = payload
        self._last_was_error = False
        self.send(damage(response_bytes(payload, corrupt_dcs=self.bad_checksum),
                         self.frame_fault))

    def _send_error(self) -> None:
        self._last_was_error = True
        self.send(ERROR)
