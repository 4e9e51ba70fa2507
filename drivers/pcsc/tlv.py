"""BER-TLV as EMV uses it (EMV 4.4 Book 3 Annex B; ISO/IEC 8825-1). Pure bytes, no I/O.

Tags of one or more bytes (low five bits 11111 in the first byte: more bytes follow while b8 is
set), definite lengths only (short form, or 81/82/83/84 + that many length bytes), constructed
objects (b6 of the first tag byte) parsed recursively. 00 and FF bytes between objects are
padding (Annex B: "before, between or after"). Any byte string gives a tuple of ``Tlv`` or
raises ``ProtocolError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from posdiag.drivers.errors import ProtocolError

MAX_DEPTH = 8  # FCI templates nest three deep; more is garbage, not a deeper card
MAX_TAG_BYTES = 4


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        return _constructed(self.tag)

    def find(self, tag: int) -> Tlv | None:
        return next(self.find_all(tag), None)

    def find_all(self, tag: int) -> Iterator[Tlv]:
        """Every object with ``tag`` below this one, depth first."""
        for child in self.children:
            if child.tag == tag:
                yield child
            yield from child.find_all(tag)


def _constructed(tag: int) -> bool:
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def parse_tlv(data: bytes, *, _depth: int = 0) -> tuple[Tlv, ...]:
    data = bytes(data)
    if _depth > MAX_DEPTH:
        raise ProtocolError(f"TLV nested deeper than {MAX_DEPTH}", kind="tlv")
    out: list[Tlv] = []
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] in (0x00, 0xFF):
            pos += 1
            continue
        tag = data[pos]
        pos += 1
        if tag & 0x1F == 0x1F:
            count = 1
            while True:
                if pos >= n:
                    raise ProtocolError("TLV ends inside a tag", kind="tlv")
                b = data[pos]
                pos += 1
                count += 1
                if count > MAX_TAG_BYTES:
                    raise ProtocolError(f"TLV tag longer than {MAX_TAG_BYTES} bytes", kind="tlv")
                tag = (tag << 8) | b
                if not b & 0x80:
                    break
        if pos >= n:
            raise ProtocolError(f"TLV {tag:X} has no length", kind="tlv")
        length = data[pos]
        pos += 1
        if length == 0x80:
            raise ProtocolError("indefinite TLV length (not allowed in EMV)", kind="tlv")
        if length > 0x80:
            size = length & 0x7F
            if size > 4:
                raise ProtocolError(f"TLV length of {size} bytes", kind="tlv")
            if pos + size > n:
                raise ProtocolError("TLV ends inside a length", kind="tlv")
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        if pos + length > n:
            raise ProtocolError(f"TLV {tag:X} announces {length} bytes, {n - pos} remain",
                                kind="tlv")
        value = data[pos:pos + length]
        pos += length
        children = parse_tlv(value, _depth=_depth + 1) if _constructed(tag) else ()
        out.append(Tlv(tag, value, children))
    return tuple(out)


def find(objects: tuple[Tlv, ...], tag: int) -> Tlv | None:
    """The first object with ``tag`` among ``objects`` and everything below them."""
    for obj in objects:
        if obj.tag == tag:
            return obj
        found = obj.find(tag)
        if found is not None:
            return found
    return None
