"""An ID TECH MiniMag RS-232 swipe reader ("setup command" protocol), byte-exact per
protocols.md §2.1, with fault modes. See README-idtech-msr.md.

Its command parser is written apart from ``posdiag.drivers.msr.framing`` so that a driver framing
bug is not mirrored here.

Behaviour:
- ``STX 'R' FuncID ETX LRC``: ACK then ``STX body ETX LRC``. 0x1F (review settings) answers every
  ``FuncID Len FuncData`` block in FuncID order; 0x22 (firmware version, unconfirmed FuncID)
  answers the firmware text, or NAK with ``firmware_supported=False``; other FuncIDs NAK.
- ``STX 'S' blocks ETX LRC``: ACK when every FuncID and value is valid (then applied), else NAK.
  0x18 (change to defaults) carries no Len/data.
- A command with a bad LRC is NAKed. A command arriving sooner than 80 ms + 10 ms per FuncData
  byte after the previous reply is ignored, as the manual says the reader does while busy.
- ``swipe()`` emits the tracks in the configured output format (0x15): ID TECH
  ``SS data ES CR`` per track; UIC ``STX SS data ES LRC DLE``, the last track ending in ETX;
  MagTek-compatible ``SS data ES`` back to back then CR. Nothing is sent with reading disabled.

Fault modes: ``silent``/``slow_delay_s`` (base class), ``nak`` (NAK every command), ``bad_lrc``
(reply data frames carry a wrong LRC), ``reading_enabled=False`` (setting 0x1A is '0'),
``firmware`` (any text, e.g. an old version), ``firmware_supported``. Card-side faults go through
``swipe(..., bad_lrc=...)``: a track read with a bad LRC; in UIC format the wrong LRC character is
sent, in the other formats the reader sends ``SS E ES`` for that track (the MagTek error marker;
what a MiniMag sends is not documented in the sources we have).

A swipe during a command (issue 15 item 12): ``swipe_during_command(t1, t2, t3, on_command=n,
mode=...)`` makes the n-th command (0-based) meet a card being swiped: ``busy`` the reader is
sending the swipe and never answers that command (the manual: no response while busy);
``before_reply`` the swipe comes first, then the answer; ``after_ack`` the swipe comes between
the ACK and the data frame of a read.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from simulators import umockdev_script
from simulators.pty_device import PtyDevice

STX, ETX, ACK, NAK, DLE, CR = 0x02, 0x03, 0x06, 0x15, 0x10, 0x0D

# Factory settings as this simulator reports them. The values are within the documented ranges;
# the MiniMag's actual defaults (manual Appendix A) were not all confirmed.
FACTORY_SETTINGS: dict[int, bytes] = {
    0x11: b"2",  # beep volume high
    0x15: b"0",  # output format: ID TECH
    0x19: b"0",  # sentinel / track-2-only option
    0x1A: b"1",  # MSR reading enabled
    0x1D: b"1",  # decode both directions
    0x41: b"5",  # 9600 baud
    0x42: b"0",  # 8 data bits
    0x43: b"0",  # no parity
    0x44: b"0",  # XON/XOFF
    0x45: b"0",  # 1 stop bit
    0x47: b"\x11",  # XON = DC1
    0x48: b"\x13",  # XOFF = DC3
}
_ALLOWED: dict[int, bytes | None] = {  # None: any single byte
    0x11: b"012", 0x15: b"012", 0x19: b"0123", 0x1A: b"01", 0x1D: b"0123", 0x41: b"3456",
    0x42: b"01", 0x43: b"01234", 0x44: b"01", 0x45: b"01", 0x47: None, 0x48: None,
}
DEFAULTS_FUNC = 0x18
DEFAULT_FIRMWARE = "ID TECH MiniMag Swipe Reader 2.3.1"
_TRACK_LOW = {"%": 0x20, ";": 0x30}


def _xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def _framed(body: bytes, *, bad_lrc: bool = False) -> bytes:
    framed = bytes([STX]) + body + bytes([ETX])
    check = _xor(framed) ^ (0xFF if bad_lrc else 0)
    return framed + bytes([check])


def track_lrc_char(track: str) -> str:
    """ISO 7811 LRC character of ``SS … ES``: XOR of the character codes, re-encoded."""
    low = _TRACK_LOW[track[0]]
    code = 0
    for c in track:
        code ^= ord(c) - low
    return chr(code + low)


def personality_names() -> list[str]:
    """Every recorded swipe reader, as ``<product>/<scenario>``."""
    return sorted(f"{p.parent.name}/{p.stem}"
                  for p in umockdev_script.SERIAL_DIR.glob("*/*.script")
                  if recorded_format(f"{p.parent.name}/{p.stem}") is not None)


def recorded_format(name: str) -> str | None:
    """The output format a recording is in, from its name; None for a non-reader recording."""
    product, _, scenario = name.partition("/")
    if product.startswith("magtek-"):
        return "magtek"
    if product.startswith("idtech-"):
        return "uic" if scenario.startswith("uic-") else "idtech"
    return None


class IdTechMsrSimulator(PtyDevice):
    def __init__(self, *, silent: bool = False, slow_delay_s: float = 0.0, nak: bool = False,
                 bad_lrc: bool = False, reading_enabled: bool = True,
                 output_format: str = "idtech", firmware: str = DEFAULT_FIRMWARE,
                 firmware_supported: bool = True, enforce_command_gap: bool = True,
                 personality: str | None = None) -> None:
        super().__init__(silent=silent, slow_delay_s=slow_delay_s)
        # A recorded reader (``serial/<product>/<scenario>.script``): its swipe output, sent by
        # ``swipe_recorded()``, and the output format that output is in.
        self.recording = None if personality is None else umockdev_script.load(personality)
        if personality is not None:
            output_format = recorded_format(personality)
        self.nak = nak
        self.bad_lrc = bad_lrc
        self.firmware = firmware
        self.firmware_supported = firmware_supported
        self.enforce_command_gap = enforce_command_gap
        self.settings = dict(FACTORY_SETTINGS)
        self.settings[0x1A] = b"1" if reading_enabled else b"0"
        self.settings[0x15] = {"idtech": b"0", "uic": b"1", "magtek": b"2"}[output_format]
        self.commands: list[bytes] = []  # every complete command frame received
        self.ignored_commands = 0  # commands that came while the reader was busy
        self._buf = bytearray()
        self._busy_until = 0.0
        self._interrupt: tuple[int, str, tuple[str | None, ...]] | None = None
        self._hold_ack = b""  # "after_ack": the swipe goes out between ACK and data frame

    # -- swipes -------------------------------------------------------------------------------
    def swipe(self, track1: str | None, track2: str | None, track3: str | None = None, *,
              bad_lrc: bool | Collection[int] = False) -> None:
        """Emit a swipe. Tracks are given with sentinels (``%B…?``, ``;…?``), without LRC.

        ``bad_lrc``: True for every track, or the track numbers read with an LRC error.
        """
        data = self.swipe_bytes(track1, track2, track3, bad_lrc=bad_lrc)
        if data:
            self.send(data)

    def swipe_bytes(self, track1: str | None, track2: str | None, track3: str | None = None, *,
                    bad_lrc: bool | Collection[int] = False) -> bytes:
        """What the reader sends for a swipe in its output format (nothing when it cannot)."""
        if self.silent or self.settings[0x1A] != b"1":
            return b""
        damaged = {1, 2, 3} if bad_lrc is True else set(bad_lrc or ())
        tracks = [(n, t) for n, t in ((1, track1), (2, track2), (3, track3)) if t]
        fmt = self.settings[0x15]
        out = bytearray()
        for i, (number, text) in enumerate(tracks):
            if fmt == b"1":
                lrc = track_lrc_char(text)
                if number in damaged:
                    low = _TRACK_LOW[text[0]]
                    lrc = chr(((ord(lrc) - low) ^ 0x01) + low)
                end = ETX if i == len(tracks) - 1 else DLE
                out += bytes([STX]) + (text + lrc).encode("latin-1") + bytes([end])
                continue
            shown = text[0] + "E?" if number in damaged else text
            out += shown.encode("latin-1")
            if fmt == b"0":
                out.append(CR)
        if fmt == b"2":
            out.append(CR)
        return bytes(out)

    def swipe_recorded(self) -> None:
        """Send the recording's swipe output byte for byte (when reading is switched on)."""
        if self.recording is None:
            raise ValueError("no personality loaded")
        if not self.silent and self.settings[0x1A] == b"1":
            self.send(self.recording.device_bytes)

    def swipe_during_command(self, track1: str | None, track2: str | None,
                             track3: str | None = None, *, on_command: int = 0,
                             mode: str = "busy") -> None:
        if mode not in ("busy", "before_reply", "after_ack"):
            raise ValueError("mode must be busy, before_reply or after_ack")
        self._interrupt = (on_command, mode, (track1, track2, track3))

    # -- commands -----------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        self._buf += data
        while (command := self._take_command()) is not None:
            self._on_command(command)

    def _take_command(self) -> bytes | None:
        """The next complete command frame from the buffer, or None if incomplete."""
        buf = self._buf
        start = buf.find(bytes([STX]))
        if start < 0:
            buf.clear()
            return None
        del buf[:start]
        if len(buf) < 2:
            return None
        pos = 2
        if buf[1] == ord("R"):
            pos = 3
        else:
            # 'S' (or anything else): FuncID [Len FuncData] blocks up to ETX.
            while pos < len(buf) and buf[pos] != ETX:
                if buf[pos] == DEFAULTS_FUNC:
                    pos += 1
                elif pos + 1 < len(buf):
                    pos += 2 + buf[pos + 1]
                else:
                    return None
        if pos + 1 >= len(buf):
            return None
        command = bytes(buf[: pos + 2])
        del buf[: pos + 2]
        return command

    def _on_command(self, command: bytes) -> None:
        self.commands.append(command)
        if self.enforce_command_gap and time.monotonic() < self._busy_until:
            self.ignored_commands += 1
            return
        mode = None
        if self._interrupt is not None and self._interrupt[0] == len(self.commands) - 1:
            _, mode, tracks = self._interrupt
            self._interrupt = None
            swipe = self.swipe_bytes(*tracks)
            if mode in ("busy", "before_reply"):
                self.send(swipe)
            if mode == "busy":
                self.ignored_commands += 1
                self._busy_until = time.monotonic() + 0.08
                return
            if mode == "after_ack":
                self._hold_ack = swipe
        data_bytes = 0
        if self.nak or command[-2] != ETX or _xor(command[:-1]) != command[-1]:
            self.send(bytes([NAK]))
        elif command[1] == ord("R") and len(command) == 5:
            self._on_read(command[2])
        elif command[1] == ord("S"):
            data_bytes = self._on_set(command[2:-2])
        else:
            self.send(bytes([NAK]))
        self._busy_until = time.monotonic() + 0.08 + 0.01 * data_bytes

    def _on_read(self, func_id: int) -> None:
        if func_id == 0x1F:
            body = b"".join(bytes([f, len(v)]) + v for f, v in sorted(self.settings.items()))
        elif func_id == 0x22 and self.firmware_supported:
            body = self.firmware.encode("latin-1")
        else:
            self.send(bytes([NAK]))
            return
        if self._hold_ack:
            self.send(bytes([ACK]) + self._hold_ack)
            self._hold_ack = b""
            self.send(_framed(body, bad_lrc=self.bad_lrc))
            return
        self.send(bytes([ACK]) + _framed(body, bad_lrc=self.bad_lrc))

    def _on_set(self, blocks: bytes) -> int:
        """Apply a set command if all of it is valid; return its FuncData byte count."""
        changes: list[tuple[int, bytes | None]] = []
        pos = 0
        while pos < len(blocks):
            func_id = blocks[pos]
            if func_id == DEFAULTS_FUNC:
                changes.append((func_id, None))
                pos += 1
                continue
            length = blocks[pos + 1] if pos + 1 < len(blocks) else 0
            value = bytes(blocks[pos + 2 : pos + 2 + length])
            pos += 2 + length
            allowed = _ALLOWED.get(func_id, b"")
            if len(value) != 1 or (allowed is not None and value not in allowed):
                self.send(bytes([NAK]))
                return 0
            changes.append((func_id, value))
        for func_id, value in changes:
            if value is None:
                self.settings = dict(FACTORY_SETTINGS)
            else:
                self.settings[func_id] = value
        self.send(bytes([ACK]))
        return sum(len(v) for _, v in changes if v is not None)
