"""Answer-to-Reset parser (ISO/IEC 7816-3:2006 §8.2). Pure bytes, no I/O.

Layout: ``TS T0 {TAi TBi TCi TDi}… T1…TK [TCK]``. TS gives the convention (3B direct, 3F
inverse; a reader hands over the bytes already decoded). T0 and each TDi say in their high nibble
which interface bytes follow (TA 0x10, TB 0x20, TC 0x40, TD 0x80); T0's low nibble is K, the
number of historical bytes; each TDi's low nibble is a protocol T. TCK is present, and must make
the XOR of T0…TCK zero, as soon as any T other than 0 is indicated (§8.2.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from posdiag.drivers.errors import ProtocolError

MAX_ATR_BYTES = 33  # TS plus at most 32 further characters (§8.2.1)
CONVENTIONS = {0x3B: "direct", 0x3F: "inverse"}
_INTERFACE = (("A", 0x10), ("B", 0x20), ("C", 0x40), ("D", 0x80))


@dataclass(frozen=True)
class Atr:
    """A parsed ATR. ``interface`` maps ``"TA1"``… to their byte values."""

    raw: bytes
    convention: str
    protocols: tuple[int, ...]
    interface: tuple[tuple[str, int], ...]
    historical: bytes
    tck: int | None

    @property
    def tck_ok(self) -> bool | None:
        """None when no TCK is due (T=0 only); otherwise whether the XOR check holds."""
        if self.tck is None:
            return None
        acc = 0
        for b in self.raw[1:]:
            acc ^= b
        return acc == 0

    def byte(self, name: str) -> int | None:
        return dict(self.interface).get(name)

    @property
    def hex(self) -> str:
        return self.raw.hex(" ").upper()


def parse_atr(raw: bytes) -> Atr:
    """Parse ``raw``; any byte string either gives an ``Atr`` or raises ``ProtocolError``.

    A wrong TCK is not an error here: the ATR is still readable, ``tck_ok`` says it is false.
    """
    raw = bytes(raw)
    if not raw:
        raise ProtocolError("empty ATR (the card did not answer the reset)", kind="atr")
    if len(raw) > MAX_ATR_BYTES:
        raise ProtocolError(f"ATR of {len(raw)} bytes (at most {MAX_ATR_BYTES})", kind="atr")
    convention = CONVENTIONS.get(raw[0])
    if convention is None:
        raise ProtocolError(f"TS byte {raw[0]:#04x} is neither 3B (direct) nor 3F (inverse)",
                            kind="atr")
    if len(raw) < 2:
        raise ProtocolError("ATR ends after TS (no format byte T0)", kind="atr")
    y, k = raw[1] >> 4, raw[1] & 0x0F
    pos = 2
    interface: list[tuple[str, int]] = []
    protocols: list[int] = []
    i = 1
    while True:
        td = None
        for letter, bit in _INTERFACE:
            if y & (bit >> 4):
                if pos >= len(raw):
                    raise ProtocolError(f"ATR ends before T{letter}{i}", kind="atr")
                interface.append((f"T{letter}{i}", raw[pos]))
                if letter == "D":
                    td = raw[pos]
                pos += 1
        if td is None:
            break
        protocols.append(td & 0x0F)
        y = td >> 4
        i += 1
    if not protocols:
        protocols.append(0)  # no TD1: T=0 is implied (§8.2.3)
    if pos + k > len(raw):
        raise ProtocolError(f"ATR announces {k} historical bytes but has "
                            f"{len(raw) - pos}", kind="atr")
    historical = raw[pos:pos + k]
    pos += k
    needs_tck = any(t != 0 for t in protocols)
    tck: int | None = None
    if needs_tck:
        if pos >= len(raw):
            raise ProtocolError("ATR indicates T≠0 but has no TCK check byte", kind="atr")
        tck = raw[pos]
        pos += 1
    if pos != len(raw):
        raise ProtocolError(f"{len(raw) - pos} unexpected bytes after the ATR", kind="atr")
    # The protocols a card offers, each once, in the order it lists them (T=15 is not one:
    # it only carries global interface bytes).
    offered = tuple(dict.fromkeys(t for t in protocols if t != 15)) or (0,)
    return Atr(raw, convention, offered, tuple(interface), historical, tck)
