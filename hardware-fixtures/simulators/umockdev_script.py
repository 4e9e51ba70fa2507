"""Read and write recordings in the umockdev script format (``umockdev-record -s``).

One operation a line: ``r <ms> <data>`` is what the device sends after ``<ms>`` milliseconds,
``w <ms> <data>`` what the program writes; ``#`` lines are comments (the first one names the
source). Data bytes below 0x20 are ``^`` + (byte + 64), and ``^`` itself is ``^```
(``/usr/share/doc/umockdev/script-format.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SERIAL_DIR = Path(__file__).resolve().parent.parent / "serial"


@dataclass(frozen=True)
class Operation:
    op: str  # "r" (device sends) or "w" (program writes)
    delay_ms: int
    data: bytes


@dataclass(frozen=True)
class Recording:
    name: str  # "<product>/<scenario>"
    source: str  # the header line: where the behaviour is documented
    operations: tuple[Operation, ...]

    @property
    def device_bytes(self) -> bytes:
        """Everything the device sends, in order."""
        return b"".join(o.data for o in self.operations if o.op == "r")


def escape(data: bytes) -> str:
    out = []
    for b in data:
        if b == ord("^"):
            out.append("^`")
        elif b < 0x20:
            out.append("^" + chr(b + 64))
        elif b < 0x7F:
            out.append(chr(b))
        else:
            raise ValueError("the recordings hold 7-bit text only")
    return "".join(out)


def unescape(text: str) -> bytes:
    out = bytearray()
    chars = iter(text)
    for char in chars:
        if char == "^":
            nxt = next(chars, "")
            if not nxt:
                raise ValueError("a data field ends in a lone '^'")
            out.append(ord("^") if nxt == "`" else ord(nxt) - 64)
        else:
            out += char.encode("ascii")
    return bytes(out)


def parse(name: str, text: str) -> Recording:
    source = ""
    ops: list[Operation] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            if not source:
                source = line.lstrip("# ").strip()
            continue
        if not line.strip():
            continue
        op, delay, data = [*line.split(" ", 2), ""][:3]
        if op not in ("r", "w") or not delay.isdigit():
            raise ValueError(f"{name}:{n}: not an 'r'/'w' operation")
        ops.append(Operation(op, int(delay), unescape(data)))
    if not source.lower().startswith("source:"):
        raise ValueError(f"{name}: the first comment line must say 'source: …'")
    return Recording(name, source, tuple(ops))


def load(name: str, directory: Path = SERIAL_DIR) -> Recording:
    """``load("magtek-mt211-rs232-revB/three-tracks")`` → the recording of that file."""
    path = directory / f"{name}.script"
    return parse(name, path.read_text(encoding="ascii"))


def names(product: str, directory: Path = SERIAL_DIR) -> tuple[str, ...]:
    """Every recording of one product folder, as ``load`` names them."""
    return tuple(sorted(f"{product}/{p.stem}" for p in (directory / product).glob("*.script")))
