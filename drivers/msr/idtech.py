"""ID TECH MiniMag RS-232 magnetic stripe reader ("setup command" protocol, protocols.md §2.1).

Takes an already open pyserial-like port. Every read has a deadline; port I/O errors become
``DeviceNotFound``; a NAK is ``ProtocolError(kind="nak")``, a bad reply LRC ``kind="checksum"``.

Card data never leaves this module: ``wait_for_swipe`` hands the raw bytes to
``tracks.analyse_swipe``, overwrites its buffer and returns only the card-data-free ``SwipeResult``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from posdiag.drivers.errors import DeviceTimeout, ProtocolError
from posdiag.drivers.msr.framing import (
    Reply,
    Setting,
    encode_read,
    encode_set,
    parse_reply,
    parse_settings,
    reply_ready,
    strip_swipe,
)
from posdiag.drivers.msr.tracks import SwipeResult, analyse_swipe
from posdiag.drivers.serial_port import PortIO, SerialPort, port_device

FUNC_BEEP_VOLUME = 0x11
FUNC_OUTPUT_FORMAT = 0x15
FUNC_DEFAULTS = 0x18
FUNC_READING_ENABLE = 0x1A
FUNC_REVIEW_SETTINGS = 0x1F
FUNC_BAUD_RATE = 0x41
# Firmware version: documented for iMag as <R><FmVerID>, the byte itself is unconfirmed; 0x22 is
# what a script for an ID TECH USB reader sends (protocols.md §2.1, "probable").
FUNC_FIRMWARE_VERSION = 0x22

OUTPUT_FORMATS = {b"0": "idtech", b"1": "uic", b"2": "magtek"}
BAUD_RATES = {b"3": 2400, b"4": 4800, b"5": 9600, b"6": 19200}

WRITE_TIMEOUT_S = 1.0
# MiniMag timing: the reader ignores a command that comes sooner than 80 ms + 10 ms per FuncData
# byte of the previous one.
COMMAND_GAP_S = 0.08
GAP_PER_DATA_BYTE_S = 0.01
# A card swiped while a command is on the line (issue 15 item 12): the reply is lost or mixed
# with track data. The driver drops the swipe and sends the command again, this many times.
SWIPE_RETRIES = 2
# Waiting for a swipe that is still arriving to end before the command is sent again; a
# three-track swipe is ~230 characters, 0.25 s at 9600 Bd.
SWIPE_DRAIN_MAX_S = 0.5


class _SwipeInTheWay(Exception):
    """A command's reply did not come whole because swipe output came instead (internal)."""

    def __init__(self, error: ProtocolError | DeviceTimeout) -> None:
        super().__init__("swipe during a command")
        self.error = error


@dataclass(frozen=True)
class MsrSettings:
    """Review Settings answer: every ``FuncID Len FuncData`` block the reader reported."""

    settings: tuple[Setting, ...]

    def value(self, func_id: int) -> bytes | None:
        return next((s.data for s in self.settings if s.func_id == func_id), None)

    @property
    def reading_enabled(self) -> bool | None:
        """MSR reading enable (0x1A): '1' on, '0' off, None when the reader did not say."""
        return {b"1": True, b"0": False}.get(self.value(FUNC_READING_ENABLE) or b"")

    @property
    def output_format(self) -> str | None:
        return OUTPUT_FORMATS.get(self.value(FUNC_OUTPUT_FORMAT) or b"")

    @property
    def baud_rate(self) -> int | None:
        return BAUD_RATES.get(self.value(FUNC_BAUD_RATE) or b"")


_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class MsrFirmware:
    """Firmware version text, and the dotted number in it when there is one."""

    text: str
    version: tuple[int, ...] | None

    @classmethod
    def from_text(cls, text: str) -> MsrFirmware:
        found = _VERSION.findall(text)
        return cls(text, tuple(int(p) for p in found[-1].split(".")) if found else None)


@dataclass(frozen=True)
class MsrProbe:
    """What ``IdTechMsr.probe()`` found. ``firmware`` is None when the reader NAKs the (unconfirmed)
    firmware-version FuncID."""

    settings: MsrSettings
    firmware: MsrFirmware | None
    swipes_discarded: int = 0  # swipes that came during the probe, dropped unread

    @property
    def reading_enabled(self) -> bool | None:
        return self.settings.reading_enabled


class IdTechMsr:
    """An ID TECH MiniMag-family reader on an open serial port."""

    def __init__(self, port: SerialPort, *, device: str | None = None,
                 reply_timeout_s: float = 0.5, quiet_s: float = 0.03,
                 swipe_quiet_s: float = 0.1, poll_s: float = 0.01,
                 command_gap_s: float = COMMAND_GAP_S) -> None:
        """``reply_timeout_s``: the reader answers within 5 ms; the rest is margin for USB-serial
        adapters. ``quiet_s`` / ``swipe_quiet_s``: a reply / swipe is complete once the line has
        been idle that long (the reader sends without gaps)."""
        if min(reply_timeout_s, quiet_s, swipe_quiet_s, poll_s) <= 0 or command_gap_s < 0:
            raise ValueError("timeouts must be positive")
        self._port = port
        self._device = port_device(port, device)
        self._io = PortIO(port, device=self._device, what="card reader",
                          timeout_s=WRITE_TIMEOUT_S)
        self._reply_timeout_s = reply_timeout_s
        self._quiet_s = quiet_s
        self._swipe_quiet_s = swipe_quiet_s
        self._command_gap_s = command_gap_s
        self._ready_at = 0.0  # monotonic time the reader accepts the next command
        self._swipes_discarded = 0
        # Short blocking reads under our own deadlines; a write never blocks forever.
        self._io.configure(poll_s, keep_write_timeout=True, step="configure")

    @property
    def device(self) -> str | None:
        return self._device

    @property
    def swipes_discarded(self) -> int:
        """Swipes that arrived in the middle of a command and were dropped (never read)."""
        return self._swipes_discarded

    # -- public operations ---------------------------------------------------------------------
    def review_settings(self) -> MsrSettings:
        reply = self._command(encode_read(FUNC_REVIEW_SETTINGS), expect_body=True)
        try:
            return MsrSettings(parse_settings(reply.body or b""))
        except ProtocolError as exc:
            raise ProtocolError(exc.message, device=self._device, kind=exc.kind) from None

    def reading_enabled(self) -> bool | None:
        return self.review_settings().reading_enabled

    def firmware_version(self) -> MsrFirmware:
        reply = self._command(encode_read(FUNC_FIRMWARE_VERSION), expect_body=True)
        text = (reply.body or b"").decode("ascii", errors="replace").strip()
        return MsrFirmware.from_text(text)

    def configure(self, settings: Iterable[Setting]) -> None:
        """Send one set command; the reader ACKs or NAKs the whole of it."""
        blocks = tuple(settings)
        self._command(encode_set(blocks), expect_body=False,
                      data_bytes=sum(len(s.data) for s in blocks))

    def set_reading_enabled(self, enabled: bool) -> None:
        self.configure([Setting(FUNC_READING_ENABLE, b"1" if enabled else b"0")])

    def probe(self) -> MsrProbe:
        before = self._swipes_discarded
        settings = self.review_settings()
        try:
            firmware: MsrFirmware | None = self.firmware_version()
        except ProtocolError as exc:
            if exc.kind != "nak":
                raise
            firmware = None
        return MsrProbe(settings, firmware, self._swipes_discarded - before)

    def wait_for_swipe(self, timeout_s: float) -> SwipeResult | None:
        """Wait up to ``timeout_s`` for a swipe; None when no card was swiped in that time.

        The swipe is complete when the line has been quiet for ``swipe_quiet_s``. The raw bytes
        are analysed and the buffer overwritten here; only verdicts are returned.
        """
        raw = bytearray()
        try:
            deadline = time.monotonic() + timeout_s
            last_rx = 0.0
            while True:
                now = time.monotonic()
                if raw and now - last_rx >= self._swipe_quiet_s:
                    break
                if now >= deadline and (not raw or now >= deadline + 1.0):
                    if not raw:
                        return None
                    break  # a reader that never stops talking: judge what came
                chunk = self._read_chunk()
                if chunk:
                    raw += chunk
                    last_rx = time.monotonic()
            return analyse_swipe(raw, read_at=datetime.now(UTC))
        finally:
            raw[:] = bytes(len(raw))  # best effort: do not leave track bytes in freed memory

    # -- dialogue ------------------------------------------------------------------------------
    def _command(self, command: bytes, *, expect_body: bool, data_bytes: int = 0) -> Reply:
        """Send ``command`` and read its reply; a swipe in the way is dropped and the command
        sent again (a swipe is a swipe, not a reader fault)."""
        for attempt in range(SWIPE_RETRIES + 1):
            pause = self._ready_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._io.call(self._port.reset_input_buffer, step="clearing input")
            # One write: the reader wants ≤ 2 ms between characters.
            self._io.write(command, step="write", flush=True)
            try:
                return self._await_reply(expect_body)
            except _SwipeInTheWay as swipe:
                self._swipes_discarded += 1
                if attempt == SWIPE_RETRIES:
                    raise swipe.error from None
                self._drain_swipe()
            finally:
                self._ready_at = (time.monotonic() + self._command_gap_s
                                  + GAP_PER_DATA_BYTE_S * data_bytes)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _drain_swipe(self) -> None:
        """Read and drop what is still arriving of a swipe, until the line is quiet."""
        end = time.monotonic() + SWIPE_DRAIN_MAX_S
        last_rx = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last_rx < self._swipe_quiet_s:
            chunk = bytearray(self._read_chunk())
            if chunk:
                last_rx = time.monotonic()
                chunk[:] = bytes(len(chunk))

    def _await_reply(self, expect_body: bool) -> Reply:
        buf = bytearray()
        try:
            deadline = time.monotonic() + self._reply_timeout_s
            last_rx = 0.0
            while True:
                now = time.monotonic()
                ready = reply_ready(buf, expect_body=expect_body)
                # A body may hold 0x03 before its real ETX: wait until the line is quiet.
                if ready and (not expect_body or now - last_rx >= self._quiet_s):
                    break
                if now >= deadline:
                    if not buf:
                        raise DeviceTimeout(f"no reply within {self._reply_timeout_s:g} s",
                                            device=self._device,
                                            timeout_s=self._reply_timeout_s)
                    break
                chunk = self._read_chunk()
                if chunk:
                    buf += chunk
                    last_rx = time.monotonic()
            return self._parse(buf, expect_body)
        finally:
            buf[:] = bytes(len(buf))  # a swipe may have come in between: do not keep it

    def _parse(self, buf: bytearray, expect_body: bool) -> Reply:
        """The reply in ``buf``. Swipe output around or inside it is cut out, and counted in
        ``swipes_discarded``; ``_SwipeInTheWay`` when a swipe cost the reply itself."""
        cleaned, swipes = strip_swipe(buf)
        try:
            try:
                reply = parse_reply(buf, expect_body=expect_body)
            except ProtocolError as exc:
                if not swipes:
                    raise ProtocolError(exc.message, device=self._device,
                                        kind=exc.kind) from None
                try:
                    reply = parse_reply(cleaned, expect_body=expect_body)
                except ProtocolError:
                    raise _SwipeInTheWay(DeviceTimeout(
                        f"no reply within {self._reply_timeout_s:g} s: a card was swiped "
                        f"instead", device=self._device,
                        timeout_s=self._reply_timeout_s)) from None
            if swipes:
                self._swipes_discarded += 1
            return reply
        finally:
            cleaned[:] = bytes(len(cleaned))

    def _read_chunk(self) -> bytes:
        return self._io.read_available(step="read")
