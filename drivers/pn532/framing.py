"""PN532 HSU frames as pure bytes (UM0701-02 §6.2.1; protocols.md §1.2). No I/O here.

Wire layouts::

    normal       00 | 00 FF | LEN | LCS | TFI | PD0..PDn | DCS | 00
    extended     00 | 00 FF | FF FF | LENM LENL | LCS | TFI | PD0..PDn | DCS | 00
    ACK          00 00 FF 00 FF 00
    NACK         00 00 FF FF 00 00
    error        00 00 FF 01 FF 7F 81 00

LEN counts TFI plus PD bytes. (LEN + LCS) and (TFI + PD.. + DCS) are 0 modulo 256; in an extended
frame (LENM + LENL + LCS) is.

Strictness follows UM0701-02 §6.2.1: the preamble and the postamble "can be composed with an
undetermined number of bytes" (§6.2.1.6), so any run of bytes before a start code is skipped
and zeros between frames are ignored; but every frame, ACK and NACK included, ends in a postamble
0x00 right after its last byte, as §6.2.1.1–5 draw it. A frame whose postamble is another byte is
rejected; one whose postamble (or any later byte) never comes is a cut-off frame, reported by
``FrameDecoder.give_up`` once the reader stops waiting. The same rules hold for normal and
extended frames.

Error messages never carry payload bytes: a PN532 relays card answers, and those may hold card data.
"""

from __future__ import annotations

from dataclasses import dataclass

from posdiag.drivers.errors import ProtocolError

TFI_HOST = 0xD4
TFI_PN532 = 0xD5
ERROR_TFI = 0x7F

START_CODE = b"\x00\xff"
ACK_BYTES = bytes.fromhex("0000FF00FF00")
NACK_BYTES = bytes.fromhex("0000FFFF0000")
ERROR_BYTES = bytes.fromhex("0000FF01FF7F8100")

NORMAL_MAX_LEN = 255  # TFI + PD bytes in a normal frame
EXTENDED_MAX_LEN = 265  # firmware limit: 264 data bytes + TFI (libnfc, nfcpy)

_NORMAL_HEADER = 4  # 00 FF LEN LCS
_EXTENDED_HEADER = 7  # 00 FF FF FF LENM LENL LCS


@dataclass(frozen=True)
class InformationFrame:
    """A normal or extended information frame. ``payload`` is PD0..PDn (command code first)."""

    tfi: int
    payload: bytes
    extended: bool = False

    def __post_init__(self) -> None:
        if self.tfi not in (TFI_HOST, TFI_PN532):
            raise ValueError(f"TFI must be 0xD4 or 0xD5, not {self.tfi:#04x}")
        limit = EXTENDED_MAX_LEN if self.extended else NORMAL_MAX_LEN
        if len(self.payload) + 1 > limit:
            raise ValueError(f"{len(self.payload)} payload bytes do not fit a "
                             f"{'extended' if self.extended else 'normal'} frame")


@dataclass(frozen=True)
class AckFrame:
    """ACK: from the PN532 "command received"; from the host "abort the command in progress"."""


@dataclass(frozen=True)
class NackFrame:
    """NACK (host to PN532 only): send the last response frame again."""


@dataclass(frozen=True)
class ErrorFrame:
    """Syntax error frame: the PN532 rejected the command as unknown or malformed."""


Frame = InformationFrame | AckFrame | NackFrame | ErrorFrame


def checksum(data: bytes | bytearray) -> int:
    """The byte that makes the sum of ``data`` plus itself 0 modulo 256 (LCS and DCS)."""
    return (-sum(data)) & 0xFF


def encode(frame: Frame) -> bytes:
    """Frame bytes as they go on the wire, with one preamble and one postamble zero."""
    if isinstance(frame, AckFrame):
        return ACK_BYTES
    if isinstance(frame, NackFrame):
        return NACK_BYTES
    if isinstance(frame, ErrorFrame):
        return ERROR_BYTES
    body = bytes([frame.tfi]) + frame.payload
    if frame.extended:
        lenm, lenl = divmod(len(body), 256)
        header = bytes([0xFF, 0xFF, lenm, lenl, checksum(bytes([lenm, lenl]))])
    else:
        header = bytes([len(body), checksum(bytes([len(body)]))])
    return b"\x00" + START_CODE + header + body + bytes([checksum(body)]) + b"\x00"


def command_frame(payload: bytes) -> bytes:
    """Host → PN532 information frame; normal when it fits, extended otherwise."""
    return encode(InformationFrame(TFI_HOST, payload, extended=len(payload) + 1 > NORMAL_MAX_LEN))


def response_frame(payload: bytes) -> bytes:
    """PN532 → host information frame, normal when it fits (as the chip itself does)."""
    return encode(InformationFrame(TFI_PN532, payload, extended=len(payload) + 1 > NORMAL_MAX_LEN))


class FrameDecoder:
    """Streaming decoder: feed bytes as they arrive, take frames out one by one.

    Anything before a start code (preamble zeros, postambles, line noise) is skipped. A frame whose
    LCS or DCS is wrong is dropped and reported as ``ProtocolError(kind="checksum")``; a frame that
    checks out but makes no sense as ``ProtocolError(kind="framing")``. Each error consumes at least
    one byte, so calling ``next_frame`` until it returns ``None`` always terminates.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def remainder(self) -> bytes:
        """The bytes held back (after the last frame taken out)."""
        return bytes(self._buf)

    def next_frame(self) -> Frame | None:
        buf = self._buf
        start = buf.find(START_CODE)
        if start < 0:
            # Keep a trailing 0x00: it may be the first half of a start code.
            del buf[: len(buf) - 1 if buf.endswith(b"\x00") else len(buf)]
            return None
        del buf[:start]
        if len(buf) < _NORMAL_HEADER:
            return None
        length, lcs = buf[2], buf[3]
        if (length, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):
            if len(buf) < _NORMAL_HEADER + 1:
                return None
            postamble = buf[_NORMAL_HEADER]
            del buf[: _NORMAL_HEADER + 1]
            name = "ACK" if length == 0x00 else "NACK"
            if postamble != 0x00:
                raise ProtocolError(f"{name} frame without its postamble 0x00", kind="framing")
            return AckFrame() if length == 0x00 else NackFrame()
        if length == 0xFF and lcs == 0xFF:
            if len(buf) < _EXTENDED_HEADER:
                return None
            lenm, lenl, elcs = buf[4], buf[5], buf[6]
            if (lenm + lenl + elcs) & 0xFF:
                del buf[:2]  # the length bytes may be noise: look for a start code after them
                raise ProtocolError("extended frame length checksum (LCS) mismatch",
                                    kind="checksum")
            length = lenm * 256 + lenl
            header = _EXTENDED_HEADER
            if not 1 <= length <= EXTENDED_MAX_LEN:
                del buf[:2]
                raise ProtocolError(f"extended frame length {length} outside 1..{EXTENDED_MAX_LEN}",
                                    kind="framing")
        else:
            if (length + lcs) & 0xFF:
                del buf[:2]
                raise ProtocolError("frame length checksum (LCS) mismatch", kind="checksum")
            if length == 0:
                del buf[:2]
                raise ProtocolError("frame with LEN 0 that is not an ACK", kind="framing")
            header = _NORMAL_HEADER
        end = header + length + 1
        if len(buf) < end + 1:  # the postamble too
            return None
        body = bytes(buf[header : header + length])
        dcs, postamble = buf[header + length], buf[end]
        del buf[: end + 1]
        kind = "extended frame" if header == _EXTENDED_HEADER else "frame"
        if (sum(body) + dcs) & 0xFF:
            raise ProtocolError(f"{kind} data checksum (DCS) mismatch", kind="checksum")
        if postamble != 0x00:
            raise ProtocolError(f"{kind} without its postamble 0x00", kind="framing")
        tfi = body[0]
        if tfi == ERROR_TFI and length == 1:
            return ErrorFrame()
        if tfi not in (TFI_HOST, TFI_PN532):
            raise ProtocolError(f"frame with unknown TFI {tfi:#04x}", kind="framing")
        return InformationFrame(tfi, body[1:], extended=header == _EXTENDED_HEADER)


    @property
    def in_frame(self) -> bool:
        """True while the held-back bytes are a frame that has begun (start code and LEN)."""
        start = self._buf.find(START_CODE)
        return start >= 0 and len(self._buf) - start > len(START_CODE)

    def give_up(self) -> None:
        """The reader stops waiting: raise ``ProtocolError(kind="framing")`` if the held-back
        bytes are a frame that began (start code and LEN) but was cut off, its postamble
        included; then forget them. Noise and lone zeros are dropped silently."""
        buf = self._buf
        cut = self.in_frame
        held = len(buf) - buf.find(START_CODE) if cut else 0
        buf.clear()
        if cut:
            raise ProtocolError(f"frame cut off after {held} bytes (no postamble)",
                                kind="framing")


def decode_frame(data: bytes) -> Frame:
    """Decode bytes that hold exactly one frame (preamble and postamble zeros allowed)."""
    decoder = FrameDecoder()
    decoder.feed(data)
    frame = decoder.next_frame()
    if frame is None:
        try:
            decoder.give_up()
        except ProtocolError as exc:
            raise ProtocolError(f"incomplete frame: {exc.message}", kind="framing") from None
        raise ProtocolError("incomplete frame: no start code", kind="framing")
    rest = decoder.remainder()
    if any(rest):
        raise ProtocolError(f"{len(rest)} bytes after the frame", kind="framing")
    return frame


def decode_frames(data: bytes) -> list[Frame]:
    """Every complete frame in ``data``; raises on the first bad one."""
    decoder = FrameDecoder()
    decoder.feed(data)
    frames: list[Frame] = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames
