"""The PN532 over HSU: wake-up, command/ACK/response dialogue, self-test probe, card scan.

Takes an already open pyserial-like port (``serial.serial_for_url(...)``), so a tty, a pty or
``rfc2217://`` all work. Every read has a deadline; port I/O errors become ``DeviceNotFound``.

Dialogue (UM0701-02 §6.2.2, as libnfc and nfcpy run it): send the command frame, expect an ACK
within ``ack_timeout_s``, then the response within the command's own timeout. A response with a
bad checksum, a wrong or missing postamble or a cut-off body is asked for again once with a
NACK; a response that does not come is aborted with an
ACK so the chip is ready for the next command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError
from posdiag.drivers.pn532.framing import (
    ACK_BYTES,
    NACK_BYTES,
    TFI_HOST,
    AckFrame,
    ErrorFrame,
    Frame,
    FrameDecoder,
    NackFrame,
    command_frame,
)
from posdiag.drivers.pn532.protocol import (
    DEFAULT_ANTENNA_THRESHOLD,
    Command,
    Diagnose,
    DiagnoseResult,
    FirmwareVersion,
    GetFirmwareVersion,
    InListPassiveTarget,
    RFConfiguration,
    SAMConfiguration,
)
from posdiag.drivers.serial_port import PortIO, SerialPort, port_device

# libnfc sends 55 55 and 14 zeros; Adafruit 15, dotnet/iot 25. The zeros give the chip time to wake.
WAKEUP_ZEROS = 14
# Line-test pattern: all-zero, all-one and alternating bits catch stuck or crossed data lines.
LINE_TEST_PATTERN = bytes([0x00, 0xFF, 0x55, 0xAA]) + b"posdiag"
WRITE_TIMEOUT_S = 1.0
# The chip sends a frame without pauses (a byte is 87 µs at 115200 Bd); USB-serial adapters
# deliver in packets at most ~16 ms apart. A frame that stalls this long has been cut off.
FRAME_GAP_S = 0.1

SELF_TESTS = ("line", "rom", "ram", "antenna")


@dataclass(frozen=True)
class SelfTestResult:
    """One Diagnose test. ``status_byte`` is the chip's verdict byte where the test has one."""

    name: str
    passed: bool
    status_byte: int | None = None

    def __post_init__(self) -> None:
        if self.name not in SELF_TESTS:
            raise ValueError(f"unknown self-test {self.name!r}")


@dataclass(frozen=True)
class Pn532Probe:
    """What ``PN532.probe()`` found. Failed self-tests are results here, not exceptions."""

    firmware: FirmwareVersion
    line: SelfTestResult
    rom: SelfTestResult
    ram: SelfTestResult
    antenna: SelfTestResult

    @property
    def self_tests(self) -> tuple[SelfTestResult, ...]:
        return (self.line, self.rom, self.ram, self.antenna)

    @property
    def failed_tests(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.self_tests if not t.passed)

    @property
    def passed(self) -> bool:
        return not self.failed_tests


@dataclass(frozen=True)
class CardScan:
    """Result of one InListPassiveTarget. UIDs identify cards, so only their lengths are kept."""

    present: bool
    uid_lengths: tuple[int, ...] = ()
    iso14443_4: bool = False
    aborted: bool = False  # no answer in time: the host aborted the scan with an ACK

    def __post_init__(self) -> None:
        if self.present != bool(self.uid_lengths):
            raise ValueError("present must match the listed targets")


class _ResponseTimeout(DeviceTimeout):
    """The chip ACKed but did not answer in time (and was aborted)."""


class PN532:
    """A PN532 on an open serial port."""

    def __init__(self, port: SerialPort, *, device: str | None = None,
                 ack_timeout_s: float = 0.1, poll_s: float = 0.01,
                 wakeup_zeros: int = WAKEUP_ZEROS) -> None:
        """``ack_timeout_s``: nfcpy's 100 ms (the chip ACKs within ~15 ms). Response timeouts are
        per command (protocol.py). ``poll_s`` bounds each blocking read."""
        if ack_timeout_s <= 0 or poll_s <= 0:
            raise ValueError("timeouts must be positive")
        self._port = port
        self._device = port_device(port, device)
        self._io = PortIO(port, device=self._device, what="PN532", timeout_s=WRITE_TIMEOUT_S)
        self._ack_timeout_s = ack_timeout_s
        self._wakeup = b"\x55\x55" + bytes(wakeup_zeros)
        self._decoder = FrameDecoder()
        self._awake = False
        # Short blocking reads under our own deadlines; a write never blocks forever.
        self._io.configure(poll_s, keep_write_timeout=True, step="configure")

    @property
    def device(self) -> str | None:
        return self._device

    # -- public operations ---------------------------------------------------------------------
    def wake_up(self) -> None:
        """HSU wake-up (``55 55`` + zeros), then SAMConfiguration(normal) to leave LowVbat."""
        self._write(self._wakeup, "wake-up")
        self._awake = True
        try:
            command = SAMConfiguration()
            command.parse(self._call(command))
        except DriverError:
            self._awake = False
            raise

    def firmware_version(self) -> FirmwareVersion:
        command = GetFirmwareVersion()
        return command.parse(self._call(command))

    def diagnose(self, command: Diagnose) -> DiagnoseResult:
        return command.parse(self._call(command))

    def self_test_line(self, data: bytes = LINE_TEST_PATTERN) -> SelfTestResult:
        """Diagnose 0x00: the chip echoes NumTst and the data; any difference is a failed line."""
        result = self.diagnose(Diagnose.communication_line(data))
        return SelfTestResult("line", result.out == b"\x00" + data)

    def self_test_rom(self) -> SelfTestResult:
        return self._verdict("rom", self.diagnose(Diagnose.rom()))

    def self_test_ram(self) -> SelfTestResult:
        return self._verdict("ram", self.diagnose(Diagnose.ram()))

    def self_test_antenna(self, threshold: int = DEFAULT_ANTENNA_THRESHOLD) -> SelfTestResult:
        return self._verdict("antenna", self.diagnose(Diagnose.antenna(threshold)))

    def set_max_retries(self, *, passive_activation: int, atr: int = 0xFF, psl: int = 0x01) -> None:
        command = RFConfiguration.max_retries(atr=atr, psl=psl,
                                              passive_activation=passive_activation)
        command.parse(self._call(command))

    def scan_for_card(self, *, timeout_s: float = 1.0, passive_retries: int = 0x02) -> CardScan:
        """Look for one ISO 14443A target, with finite retries so "no card" comes back promptly.

        If the chip ACKs but does not answer within ``timeout_s`` (it ignored the retry limit),
        the scan is aborted with an ACK and reported as no card, ``aborted=True``.
        """
        self.set_max_retries(passive_activation=passive_retries)
        command = InListPassiveTarget(timeout_s=timeout_s)
        try:
            targets = command.parse(self._call(command))
        except _ResponseTimeout:
            return CardScan(present=False, aborted=True)
        return CardScan(present=targets.found,
                        uid_lengths=tuple(t.uid_length for t in targets.targets),
                        iso14443_4=any(t.iso14443_4 for t in targets.targets))

    def probe(self) -> Pn532Probe:
        """Wake the chip, read its firmware and run the line, ROM, RAM and antenna self-tests."""
        self.wake_up()
        firmware = self.firmware_version()
        return Pn532Probe(firmware=firmware, line=self.self_test_line(), rom=self.self_test_rom(),
                          ram=self.self_test_ram(), antenna=self.self_test_antenna())

    def abort(self) -> None:
        """Send an ACK frame: the chip drops the command in progress."""
        self._write(ACK_BYTES, "abort")
        self._decoder.clear()

    # -- dialogue ------------------------------------------------------------------------------
    @staticmethod
    def _verdict(name: str, result: DiagnoseResult) -> SelfTestResult:
        status = result.status_byte
        return SelfTestResult(name, status == 0x00, status)

    def _call(self, command: Command) -> bytes:
        """Run one command; return the response payload (code first)."""
        if not self._awake:
            self.wake_up()
        try:
            return self._exchange(command)
        except (DeviceTimeout, DeviceNotFound):
            # The chip may have gone back to sleep or been replugged: wake it next time.
            self._awake = False
            raise

    def _exchange(self, command: Command) -> bytes:
        code = command.CODE
        self._io.call(self._port.reset_input_buffer, step="clearing input")
        self._decoder.clear()
        self._write(command_frame(command.payload()), "write")
        timeout_s = command.timeout_s
        acked = False
        nack_sent = False
        deadline = time.monotonic() + self._ack_timeout_s
        while True:
            try:
                frame = self._next_frame(deadline)
            except ProtocolError as exc:
                if not acked:
                    continue  # noise before the ACK; the ACK or the response may still come
                # A damaged or cut-off response is asked for again once (UM §6.2.1.4).
                if exc.kind in ("checksum", "framing") and not nack_sent:
                    nack_sent = True
                    self._write(NACK_BYTES, "NACK")
                    deadline = time.monotonic() + timeout_s
                    continue
                raise
            if frame is None:
                if not acked:
                    raise DeviceTimeout(f"no ACK within {self._ack_timeout_s:g} s to command "
                                        f"{code:#04x}", device=self._device,
                                        timeout_s=self._ack_timeout_s)
                self.abort()
                raise _ResponseTimeout(f"no response within {timeout_s:g} s to command "
                                       f"{code:#04x} (aborted)", device=self._device,
                                       timeout_s=timeout_s)
            if isinstance(frame, AckFrame):
                if not acked:
                    acked = True
                    deadline = time.monotonic() + timeout_s
                continue
            if isinstance(frame, ErrorFrame):
                raise ProtocolError(f"PN532 answered command {code:#04x} with a syntax error "
                                    f"frame", device=self._device, kind="error_frame")
            if isinstance(frame, NackFrame):
                raise ProtocolError("PN532 sent a NACK frame (host-only)", device=self._device,
                                    kind="unexpected")
            if frame.tfi == TFI_HOST:
                raise ProtocolError("received a host-to-PN532 frame: TX looped back to RX?",
                                    device=self._device, kind="unexpected")
            return frame.payload

    def _next_frame(self, deadline: float) -> Frame | None:
        """The next frame from the port, or None when the deadline passes first.

        A frame that has begun but stops (its postamble or more missing) is a ``ProtocolError``
        once the line has been quiet for ``FRAME_GAP_S`` or the deadline passes.
        """
        last_rx = time.monotonic()
        while True:
            try:
                frame = self._decoder.next_frame()
            except ProtocolError as exc:
                raise ProtocolError(exc.message, device=self._device, kind=exc.kind) from None
            if frame is not None:
                return frame
            now = time.monotonic()
            stalled = self._decoder.in_frame and now - last_rx >= FRAME_GAP_S
            if now >= deadline or stalled:
                try:
                    self._decoder.give_up()  # a frame cut off is an error, not silence
                except ProtocolError as exc:
                    raise ProtocolError(exc.message, device=self._device,
                                        kind=exc.kind) from None
                return None
            chunk = self._io.read_available(step="read")
            if chunk:
                self._decoder.feed(chunk)
                last_rx = time.monotonic()

    def _write(self, data: bytes, what: str) -> None:
        self._io.write(data, step=what, flush=True)
