"""A PC/SC session through pcscd (pyscard's ``smartcard.scard``, the thin PC/SC binding).

Readers are looked at with SCardGetStatusChange (no connection: nothing disturbs a payment
application). A card is connected in SHARED mode, APDUs run inside SCardBeginTransaction so no
other application's command interleaves with ours, and the card is left as it was
(SCARD_LEAVE_CARD, never a reset). Every call has a deadline: pcscd's calls block, and a reader
driver waits as long as the card keeps it waiting, so a call that overruns is abandoned in its
worker thread and reported as ``DeviceTimeout``; the session is not used again after that.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from posdiag.drivers.errors import (
    DeviceBusy,
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    NotSupported,
    ProtocolError,
)

T = TypeVar("T")
_scard: Any = None


def _lib() -> Any:
    global _scard
    if _scard is None:
        try:
            from smartcard import scard
        except ImportError as e:  # the optional "pcsc" extra is not installed
            raise NotSupported(f"pyscard is not installed ({e})") from None
        _scard = scard
    return _scard


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


@dataclass(frozen=True)
class ReaderState:
    """One reader as pcscd sees it. ``atr`` is what pcscd read at power-up (b"" if none)."""

    name: str
    present: bool
    mute: bool  # a card is in, but it gave no usable answer to reset
    exclusive: bool  # an application holds the reader exclusively
    in_use: bool  # an application is connected to the card (shared)
    unavailable: bool
    atr: bytes

    @property
    def empty(self) -> bool:
        return not self.present


class _Abandoned(DeviceTimeout):
    """A call overran; ``worker`` is the thread still inside libpcsclite."""

    def __init__(self, message: str, *, device: str | None, timeout_s: float,
                 worker: threading.Thread) -> None:
        super().__init__(message, device=device, timeout_s=timeout_s)
        self.worker = worker


def _bounded(call: Callable[[], T], timeout_s: float, what: str, device: str | None) -> T:
    """Run ``call`` in a worker thread; give up after ``timeout_s``."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=work, name=f"pcsc {what}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise _Abandoned(f"{what}: no answer within {timeout_s:g} s", device=device,
                         timeout_s=timeout_s, worker=t)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _error(hr: int, what: str, device: str | None = None) -> DriverError:
    s = _lib()
    code = _u32(hr)
    text = f"{what}: {s.SCardGetErrorMessage(hr)} ({code:#010x})"
    if code in (_u32(s.SCARD_E_NO_SERVICE), _u32(s.SCARD_E_SERVICE_STOPPED)):
        return DeviceNotFound(text, device=device)
    if code == _u32(s.SCARD_E_SHARING_VIOLATION):
        return DeviceBusy(text, device=device)
    if code == _u32(s.SCARD_E_TIMEOUT):
        return DeviceTimeout(text, device=device)
    if code in (_u32(s.SCARD_W_UNRESPONSIVE_CARD), _u32(s.SCARD_W_UNPOWERED_CARD)):
        return DeviceTimeout(text, device=device)
    if code in (_u32(s.SCARD_E_NO_SMARTCARD), _u32(s.SCARD_W_REMOVED_CARD),
                _u32(s.SCARD_E_UNKNOWN_READER), _u32(s.SCARD_E_READER_UNAVAILABLE),
                _u32(s.SCARD_E_NO_READERS_AVAILABLE)):
        return DeviceNotFound(text, device=device)
    if code == _u32(s.SCARD_E_PROTO_MISMATCH):
        return ProtocolError(text, device=device, kind="atr")
    return ProtocolError(text, device=device, kind="pcsc")


class PcscContext:
    """An SCARDCONTEXT with bounded calls. Use as a context manager."""

    def __init__(self, *, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        s = _lib()
        hr, ctx = _bounded(lambda: s.SCardEstablishContext(s.SCARD_SCOPE_USER), timeout_s,
                           "connecting to pcscd", None)
        if hr != s.SCARD_S_SUCCESS:
            raise _error(hr, "connecting to pcscd")
        self._ctx = ctx
        self._dead = False

    def __enter__(self) -> PcscContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._dead:
            return
        self._dead = True
        s = _lib()
        # On a timeout the worker finishes (or not) on its own; the process keeps running.
        with contextlib.suppress(DeviceTimeout):
            _bounded(lambda: s.SCardReleaseContext(self._ctx), self.timeout_s, "release", None)

    def call(self, fn: Callable[[], T], what: str, device: str | None = None,
             timeout_s: float | None = None) -> T:
        if self._dead:
            raise DeviceTimeout(f"{what}: the PC/SC session was abandoned", device=device)
        try:
            return _bounded(fn, timeout_s or self.timeout_s, what, device)
        except _Abandoned as e:
            # A call is stuck inside libpcsclite: do not queue behind it. Once it returns (the
            # card answers or is removed), release the context, which disconnects its cards:
            # a connection left behind would make the reader look "in use" to everyone.
            self._dead = True
            threading.Thread(target=self._reap, args=(e.worker,), daemon=True,
                             name="pcsc release").start()
            raise

    def _reap(self, worker: threading.Thread) -> None:
        worker.join()
        with contextlib.suppress(Exception):
            _lib().SCardReleaseContext(self._ctx)

    def readers(self) -> tuple[str, ...]:
        s = _lib()
        hr, names = self.call(lambda: s.SCardListReaders(self._ctx, []), "listing readers")
        if _u32(hr) == _u32(s.SCARD_E_NO_READERS_AVAILABLE):
            return ()
        if hr != s.SCARD_S_SUCCESS:
            raise _error(hr, "listing readers")
        return tuple(names)

    def states(self, readers: tuple[str, ...]) -> dict[str, ReaderState]:
        if not readers:
            return {}
        s = _lib()
        query = [(r, s.SCARD_STATE_UNAWARE) for r in readers]
        hr, got = self.call(lambda: s.SCardGetStatusChange(self._ctx, 0, query),
                            "reading reader states")
        if hr not in (s.SCARD_S_SUCCESS, s.SCARD_E_TIMEOUT):
            raise _error(hr, "reading reader states")
        out = {}
        for name, flags, atr in got:
            out[name] = ReaderState(
                name, bool(flags & s.SCARD_STATE_PRESENT), bool(flags & s.SCARD_STATE_MUTE),
                bool(flags & s.SCARD_STATE_EXCLUSIVE), bool(flags & s.SCARD_STATE_INUSE),
                bool(flags & s.SCARD_STATE_UNAVAILABLE), bytes(atr))
        return out

    def connect(self, reader: str, *, apdu_timeout_s: float = 1.0) -> CardSession:
        s = _lib()
        hr, handle, proto = self.call(
            lambda: s.SCardConnect(self._ctx, reader, s.SCARD_SHARE_SHARED,
                                   s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1),
            "connecting to the card", reader)
        if hr != s.SCARD_S_SUCCESS:
            raise _error(hr, "connecting to the card", reader)
        return CardSession(self, reader, handle, proto, apdu_timeout_s)


class CardSession:
    """A card connected in shared mode. ``transmit`` is the APDU channel emv.py uses."""

    def __init__(self, ctx: PcscContext, reader: str, handle: Any, protocol: int,
                 apdu_timeout_s: float) -> None:
        self._ctx = ctx
        self.reader = reader
        self._handle = handle
        self._protocol = protocol
        self._apdu_timeout_s = apdu_timeout_s
        self._in_transaction = False

    @property
    def protocol(self) -> str:
        s = _lib()
        return {s.SCARD_PROTOCOL_T0: "T=0", s.SCARD_PROTOCOL_T1: "T=1"}.get(self._protocol,
                                                                             "other")

    def __enter__(self) -> CardSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def atr(self) -> bytes:
        s = _lib()
        hr, _reader, _state, _proto, atr = self._ctx.call(
            lambda: s.SCardStatus(self._handle), "reading the card status", self.reader)
        if hr != s.SCARD_S_SUCCESS:
            raise _error(hr, "reading the card status", self.reader)
        return bytes(atr)

    def begin(self) -> None:
        s = _lib()
        hr = self._ctx.call(lambda: s.SCardBeginTransaction(self._handle),
                            "locking the card for one exchange", self.reader)
        if hr != s.SCARD_S_SUCCESS:
            raise _error(hr, "locking the card for one exchange", self.reader)
        self._in_transaction = True

    def transmit(self, apdu: bytes) -> bytes:
        s = _lib()
        hr, resp = self._ctx.call(
            lambda: s.SCardTransmit(self._handle, self._protocol, list(apdu)),
            f"APDU {apdu[:4].hex().upper()}", self.reader, self._apdu_timeout_s)
        if hr != s.SCARD_S_SUCCESS:
            raise _error(hr, f"APDU {apdu[:4].hex().upper()}", self.reader)
        return bytes(resp)

    def close(self) -> None:
        s = _lib()
        try:
            if self._in_transaction:
                self._ctx.call(lambda: s.SCardEndTransaction(self._handle, s.SCARD_LEAVE_CARD),
                               "unlocking the card", self.reader)
            self._ctx.call(lambda: s.SCardDisconnect(self._handle, s.SCARD_LEAVE_CARD),
                           "disconnecting", self.reader)
        except DriverError:
            pass  # closing is best effort; the context goes next
        self._in_transaction = False


def use_socket(path: str) -> None:
    """Point libpcsclite at another pcscd socket. libpcsclite reads PCSCLITE_CSOCK_NAME once,
    at the first context of the process, so this only has an effect before that."""
    if path and os.environ.get("PCSCLITE_CSOCK_NAME", "") != path:
        os.environ["PCSCLITE_CSOCK_NAME"] = path
