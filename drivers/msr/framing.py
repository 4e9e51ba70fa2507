"""ID TECH MiniMag "setup command" framing as pure bytes (protocols.md §2.1). No I/O here.

Commands::

    set      STX 'S' (FuncID [Len FuncData…])… ETX LRC
    review   STX 'R' FuncID ETX LRC

Replies: ``ACK`` (0x06) or ``NAK`` (0x15) to a set command; ``ACK STX body ETX LRC`` to a read.
LRC is the XOR of every byte from STX through ETX inclusive (checked against the manual's own
example ``02 53 58 01 31 03 3A``).

A reply body may contain 0x03 (a Len byte, say), so the frame end is the *last* ETX whose LRC
matches; the device reads until the line goes quiet before handing the bytes over.
Error messages never quote the bytes received: a reply can be interleaved with swipe data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

from posdiag.drivers.errors import ProtocolError

STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15
SET = 0x53  # 'S'
READ = 0x52  # 'R'


def lrc(data: bytes | bytearray) -> int:
    """XOR of all bytes."""
    return reduce(lambda acc, b: acc ^ b, data, 0)


@dataclass(frozen=True)
class Setting:
    """One ``FuncID [Len FuncData]`` block. Empty ``data`` means a data-less function (0x18)."""

    func_id: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.func_id <= 0xFF:
            raise ValueError("FuncID must be one byte")
        if len(self.data) > 0xFF:
            raise ValueError("FuncData is at most 255 bytes")

    def encode(self) -> bytes:
        if not self.data:
            return bytes([self.func_id])
        return bytes([self.func_id, len(self.data)]) + self.data


def frame(body: bytes) -> bytes:
    """``STX body ETX LRC``."""
    framed = bytes([STX]) + body + bytes([ETX])
    return framed + bytes([lrc(framed)])


def encode_set(settings: Iterable[Setting]) -> bytes:
    blocks = b"".join(s.encode() for s in settings)
    if not blocks:
        raise ValueError("a set command needs at least one function")
    return frame(bytes([SET]) + blocks)


def encode_read(func_id: int) -> bytes:
    if not 0 <= func_id <= 0xFF:
        raise ValueError("FuncID must be one byte")
    return frame(bytes([READ, func_id]))


def parse_settings(body: bytes) -> tuple[Setting, ...]:
    """``FuncID Len FuncData`` blocks, as Review Settings returns them."""
    settings: list[Setting] = []
    pos = 0
    while pos < len(body):
        if pos + 2 > len(body):
            raise ProtocolError("settings block cut off after its FuncID", kind="framing")
        func_id, length = body[pos], body[pos + 1]
        end = pos + 2 + length
        if end > len(body):
            raise ProtocolError(f"settings block {func_id:#04x} claims {length} bytes, "
                                f"{len(body) - pos - 2} left", kind="framing")
        settings.append(Setting(func_id, body[pos + 2 : end]))
        pos = end
    return tuple(settings)


@dataclass(frozen=True)
class Reply:
    """A decoded reply: always ACKed (a NAK raises); ``body`` for read commands."""

    body: bytes | None


def _status_index(data: bytes) -> int | None:
    """Index of the first ACK or NAK byte; anything before it is line noise."""
    for i, b in enumerate(data):
        if b in (ACK, NAK):
            return i
    return None


def reply_ready(data: bytes | bytearray, *, expect_body: bool) -> bool:
    """True once ``data`` holds a whole reply (a NAK, an ACK, or an ACK plus a framed body)."""
    i = _status_index(data)
    if i is None:
        return False
    if data[i] == NAK or not expect_body:
        return True
    stx = data.find(bytes([STX]), i + 1)
    return stx >= 0 and data.find(bytes([ETX]), stx + 1, len(data) - 1) >= 0


def parse_reply(data: bytes | bytearray, *, expect_body: bool) -> Reply:
    """Decode a complete reply. NAK → kind "nak"; bad LRC → "checksum"; otherwise "framing"."""
    i = _status_index(data)
    if i is None:
        raise ProtocolError(f"{len(data)} bytes without ACK or NAK", kind="framing")
    if data[i] == NAK:
        raise ProtocolError("reader answered NAK (invalid FuncID, length or value)", kind="nak")
    if not expect_body:
        return Reply(None)
    stx = data.find(bytes([STX]), i + 1)
    if stx < 0:
        raise ProtocolError("ACK without the data frame that should follow", kind="framing")
    candidates = [p for p in range(stx + 1, len(data) - 1) if data[p] == ETX]
    if not candidates:
        raise ProtocolError("data frame without ETX and LRC", kind="framing")
    for end in reversed(candidates):
        if lrc(data[stx : end + 1]) == data[end + 1]:
            return Reply(bytes(data[stx + 1 : end]))
    raise ProtocolError("data frame LRC mismatch", kind="checksum")


# Swipe output a reader may send while a command is on the line (issue 15 item 12): a track in
# any output format (``[STX] SS data ES [LRC DLE|ETX] [CR|LF]``, tracks back to back or not), or
# the start of one still arriving. Track characters are 0x20-0x5F: never ACK, NAK or a length
# byte of a settings reply, so a swipe cannot be taken for the reply status.
_SWIPE_TRACK = re.compile(
    rb"\x02?[%;+][\x20-\x3E\x40-\x5F]{0,110}\?(?:[\x20-\x5F][\x10\x03]|[\x10\x03\r\n])?")
_SWIPE_TAIL = re.compile(rb"\x02?[%;+][\x20-\x3E\x40-\x5F]{0,110}$")


def strip_swipe(data: bytes | bytearray) -> tuple[bytearray, int]:
    """``data`` without anything that looks like swipe output, and how many tracks were cut.

    Used only once a reply did not parse as it stands, so a reply body that happens to hold
    sentinel characters is never touched when it is sound.
    """
    out = bytearray(data)
    count = 0
    for pattern in (_SWIPE_TRACK, _SWIPE_TAIL):
        pieces = pattern.split(out)
        count += len(pieces) - 1
        cleaned = bytearray(b"".join(pieces))
        out[:] = bytes(len(out))  # best effort: no track bytes left in freed memory
        out = cleaned
    return out, count
