"""A smart card on the vsmartcard virtual reader (vpcd), loaded from a recording.

pcscd with vsmartcard-vpcd listens on TCP 35963 (reader ``Virtual PCD 00 00``) for a card. The
card side connects (card inserted), then every message is a 2-byte big-endian length and that many
bytes: one byte is a control (00 power off, 01 power on, 02 reset, 04 "send your ATR"), anything
longer a command APDU, answered with the response APDU. Closing the socket removes the card.
vpcd binds 0.0.0.0, so this connects on 127.0.0.1 only.

A personality (``hardware-fixtures/pcsc/<card>.toml``, source on its first line) gives the ATR,
the answer to each exact command, a ``default`` status word for every other command, and
``silent = true`` for a card that answers the reset and then nothing. Each recording is written
from the cited specifications; this module adds no behaviour of its own beyond the wire protocol.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
RECORDINGS = Path(__file__).resolve().parent.parent / "pcsc"
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0x00, 0x01, 0x02, 0x04


@dataclass(frozen=True)
class Personality:
    name: str
    atr: bytes
    answers: dict[bytes, bytes]
    default: bytes
    silent: bool = False
    source: str = ""

    @classmethod
    def load(cls, card: str) -> Personality:
        path = RECORDINGS / f"{card}.toml"
        text = path.read_text("utf-8")
        data = tomllib.loads(text)
        answers = {bytes.fromhex(a["command"]): bytes.fromhex(a["response"])
                   for a in data.get("answer", [])}
        return cls(data["name"], bytes.fromhex(data["atr"]), answers,
                   bytes.fromhex(data.get("default", "6A82")), bool(data.get("silent", False)),
                   text.splitlines()[0])

    def answer(self, apdu: bytes) -> bytes | None:
        if self.silent:
            return None
        return self.answers.get(apdu, self.default)


@dataclass
class VpcdCard:
    """Insert with ``insert()``, remove with ``remove()``; ``commands`` lists what came in."""

    personality: Personality
    port: int = VPCD_PORT
    commands: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def insert(self, timeout_s: float = 5.0) -> None:
        sock = socket.create_connection((VPCD_HOST, self.port), timeout=timeout_s)
        sock.settimeout(None)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                        name=f"vpcd card {self.personality.name}")
        self._thread.start()

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> VpcdCard:
        self.insert()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv(sock, 2)
                (n,) = struct.unpack(">H", header)
                msg = _recv(sock, n)
                if n == 1:
                    if msg[0] == CTRL_ATR:
                        _send(sock, self.personality.atr)
                    continue  # power on/off and reset get no answer
                with self._lock:
                    self.commands.append(msg)
                resp = self.personality.answer(msg)
                if resp is not None:
                    _send(sock, resp)
        except (OSError, EOFError):
            return  # removed, or pcscd went away


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack(">H", len(data)) + data)
