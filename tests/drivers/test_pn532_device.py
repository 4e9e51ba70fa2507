"""The PN532 driver against the PN532 simulator on a real pty, in every fault mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import serial

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError
from posdiag.drivers.pn532 import PN532, CardScan, FirmwareVersion
from posdiag.drivers.pn532.device import LINE_TEST_PATTERN
from posdiag.drivers.pn532.protocol import Diagnose, DiagnoseTest
from simulators.pn532 import Pn532Simulator

SAM_FRAME = bytes.fromhex("00 00 FF 03 FD D4 14 01 17 00")
FIRMWARE_FRAME = bytes.fromhex("00 00 FF 02 FE D4 02 2A 00")
ACK = bytes.fromhex("00 00 FF 00 FF 00")
NACK = bytes.fromhex("00 00 FF FF 00 00")
GENEROUS_ACK_S = 0.5  # success paths: margin for a loaded test machine
SHORT_ACK_S = 0.2  # timeout paths


@contextmanager
def pn532(sim: Pn532Simulator, **kwargs: float) -> Iterator[PN532]:
    kwargs.setdefault("ack_timeout_s", GENEROUS_ACK_S)
    with sim:
        port = serial.serial_for_url(sim.port, baudrate=115200, timeout=0.05)
        try:
            yield PN532(port, **kwargs)  # type: ignore[arg-type]
        finally:
            port.close()


def test_probe_healthy_chip() -> None:
    sim = Pn532Simulator()
    with pn532(sim) as dev:
        probe = dev.probe()
    assert probe.firmware == FirmwareVersion(0x32, 1, 6, 7)
    assert probe.firmware.is_pn532 and probe.firmware.version_text == "1.6"
    assert probe.passed and probe.failed_tests == ()
    assert [t.name for t in probe.self_tests] == ["line", "rom", "ram", "antenna"]
    assert probe.rom.status_byte == 0x00
    # Wake-up (55 55 + at least 14 zeros), then SAMConfiguration(normal), byte for byte.
    assert sim.received.startswith(b"\x55\x55" + bytes(14))
    assert SAM_FRAME in sim.received
    assert sim.received.index(SAM_FRAME) > sim.received.index(b"\x55\x55")
    assert [c[:2] for c in sim.commands] == [b"\x14\x01", b"\x02", b"\x00\x00", b"\x00\x01",
                                             b"\x00\x02", b"\x00\x07"]
    assert sim.commands[2] == b"\x00\x00" + LINE_TEST_PATTERN
    assert sim.commands[5] == b"\x00\x07\x31"


def test_driver_wakes_the_chip_before_the_first_command() -> None:
    sim = Pn532Simulator()
    with pn532(sim) as dev:
        assert dev.firmware_version().ic == 0x32
    assert sim.sam_configured
    assert sim.received.index(SAM_FRAME) < sim.received.index(FIRMWARE_FRAME)


@pytest.mark.parametrize(("fault", "failed"), [
    ("rom_fail", ("rom",)),
    ("ram_fail", ("ram",)),
    ("antenna_fault", ("antenna",)),
])
def test_failed_self_tests_are_results(fault: str, failed: tuple[str, ...]) -> None:
    with pn532(Pn532Simulator(**{fault: True})) as dev:
        probe = dev.probe()
    assert probe.failed_tests == failed
    assert not probe.passed
    bad = getattr(probe, failed[0])
    assert not bad.passed and bad.status_byte not in (None, 0x00)


def test_all_self_tests_failing_is_still_a_result() -> None:
    with pn532(Pn532Simulator(rom_fail=True, ram_fail=True, antenna_fault=True)) as dev:
        probe = dev.probe()
    assert probe.failed_tests == ("rom", "ram", "antenna")
    assert probe.rom.status_byte == probe.ram.status_byte == 0xFF


def test_line_test_with_largest_payload_uses_extended_response() -> None:
    data = bytes(range(256)) + b"posdia"
    with pn532(Pn532Simulator()) as dev:
        result = dev.self_test_line(data)
    assert result.passed and result.name == "line"


def test_silent_device_is_device_timeout_quickly() -> None:
    sim = Pn532Simulator(silent=True)
    with pn532(sim, ack_timeout_s=SHORT_ACK_S) as dev:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as err:
            dev.probe()
        elapsed = time.monotonic() - start
    assert err.value.timeout_s == SHORT_ACK_S
    # Quickly: one command frame (00 00 FF ...) went out unanswered and the probe stopped there.
    assert bytes(sim.received).count(b"\x00\x00\xff") == 1
    assert SHORT_ACK_S <= elapsed < SHORT_ACK_S + 3.0  # the ceiling only catches a hang
    assert err.value.device == sim.port


def test_no_ack_is_device_timeout() -> None:
    sim = Pn532Simulator(no_ack=True)
    with pn532(sim, ack_timeout_s=SHORT_ACK_S) as dev, pytest.raises(DeviceTimeout):
        dev.firmware_version()
    assert sim.commands == [b"\x14\x01"]  # the command arrived; the chip never acknowledged


def test_slow_device_within_timeouts_works() -> None:
    with pn532(Pn532Simulator(slow_delay_s=0.05)) as dev:
        assert dev.probe().passed


def test_slow_device_beyond_ack_timeout_is_device_timeout() -> None:
    with pn532(Pn532Simulator(slow_delay_s=0.4), ack_timeout_s=SHORT_ACK_S) as dev, \
            pytest.raises(DeviceTimeout):
        dev.firmware_version()


def test_persistent_bad_checksum_nacks_once_then_checksum_error() -> None:
    sim = Pn532Simulator(bad_checksum=True)
    with pn532(sim) as dev, pytest.raises(ProtocolError) as err:
        dev.probe()
    assert err.value.kind == "checksum"
    assert sim.nacks_received == 1
    assert NACK in sim.received


def test_one_off_bad_checksum_is_recovered_by_nack() -> None:
    sim = Pn532Simulator(bad_checksum=True, bad_checksum_on_resend=False)
    with pn532(sim) as dev:
        probe = dev.probe()
    assert probe.passed
    assert sim.nacks_received == len(sim.commands) == 6  # one resend per command


def test_error_frame_is_protocol_error() -> None:
    with pn532(Pn532Simulator(error_frame=True)) as dev, pytest.raises(ProtocolError) as err:
        dev.probe()
    assert err.value.kind == "error_frame"


def test_error_frame_for_one_command_only() -> None:
    with pn532(Pn532Simulator(error_frame_codes=frozenset({0x02}))) as dev:
        with pytest.raises(ProtocolError) as err:
            dev.firmware_version()
        assert err.value.kind == "error_frame"
        assert dev.self_test_rom().passed  # the chip stays usable


def test_unsupported_diagnose_test_gets_error_frame() -> None:
    with pn532(Pn532Simulator()) as dev, pytest.raises(ProtocolError) as err:
        dev.diagnose(Diagnose(DiagnoseTest.ATTENTION))
    assert err.value.kind == "error_frame"


def test_unplug_after_ack_is_device_not_found() -> None:
    sim = Pn532Simulator(unplug_after_ack=0x02)
    with pn532(sim) as dev, pytest.raises(DeviceNotFound) as err:
        dev.probe()
    assert not isinstance(err.value, OSError)
    assert "unplugged" in str(err.value)
    # The port error (SerialException, or termios.error from tcdrain) is kept as the cause.
    assert err.value.__cause__ is not None


def test_unplugged_before_a_command_is_device_not_found() -> None:
    sim = Pn532Simulator()
    with pn532(sim) as dev:
        dev.wake_up()
        sim.unplug()
        with pytest.raises(DeviceNotFound):
            dev.firmware_version()


def test_after_a_timeout_the_next_call_wakes_the_chip_again() -> None:
    sim = Pn532Simulator()
    with pn532(sim, ack_timeout_s=SHORT_ACK_S) as dev:
        dev.wake_up()
        sim.no_ack = True
        with pytest.raises(DeviceTimeout):
            dev.firmware_version()
        sim.no_ack = False
        assert dev.firmware_version().version == 1
    assert sim.received.count(b"\x55\x55") == 2


def test_scan_without_card_uses_finite_retries() -> None:
    sim = Pn532Simulator()
    with pn532(sim) as dev:
        scan = dev.scan_for_card(timeout_s=0.5, passive_retries=0x02)
    assert scan == CardScan(present=False)
    assert b"\x32\x05\xff\x01\x02" in sim.commands
    assert sim.commands[-1] == b"\x4a\x01\x00"


def test_scan_with_card_reports_uid_length_only() -> None:
    with pn532(Pn532Simulator(card_present=True)) as dev:
        scan = dev.scan_for_card()
    assert scan.present and scan.uid_lengths == (7,) and not scan.aborted
    assert "0416" not in repr(scan).lower() and "uid=" not in repr(scan)


def test_scan_that_never_answers_is_aborted_with_ack() -> None:
    sim = Pn532Simulator(ignore_retry_limit=True)
    with pn532(sim) as dev:
        start = time.monotonic()
        scan = dev.scan_for_card(timeout_s=0.2)
        elapsed = time.monotonic() - start
        assert scan == CardScan(present=False, aborted=True)
        assert 0.2 <= elapsed < 0.2 + 3.0  # the ceiling only catches a hang
        # The abort ACK reached the chip, and the chip answers the next command normally.
        deadline = time.monotonic() + 5.0  # a bound on waiting, not a measurement
        while sim.aborts_received == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.aborts_received == 1
        assert dev.firmware_version().is_pn532


def test_card_arriving_during_a_scan_is_found() -> None:
    sim = Pn532Simulator(ignore_retry_limit=True)
    with pn532(sim) as dev:
        dev.wake_up()
        timer = threading.Timer(0.1, sim.place_card)
        timer.start()
        try:
            scan = dev.scan_for_card(timeout_s=1.0)
        finally:
            timer.cancel()
    assert scan.present and scan.uid_lengths == (7,)


def test_loopback_wiring_is_reported() -> None:
    port = serial.serial_for_url("loop://", timeout=0.05)
    try:
        with pytest.raises(ProtocolError) as err:
            PN532(port, ack_timeout_s=SHORT_ACK_S).firmware_version()
    finally:
        port.close()
    assert err.value.kind == "unexpected" and "looped back" in str(err.value)


def test_constructor_rejects_nonsense_timeouts() -> None:
    port = serial.serial_for_url("loop://", timeout=0.05)
    try:
        with pytest.raises(ValueError):
            PN532(port, ack_timeout_s=0)
    finally:
        port.close()


# -- the simulator itself -----------------------------------------------------------------------

@contextmanager
def raw_port(sim: Pn532Simulator) -> Iterator[serial.SerialBase]:
    with sim:
        port = serial.serial_for_url(sim.port, baudrate=115200, timeout=0.3)
        try:
            yield port
        finally:
            port.close()


def test_simulator_answers_extended_host_frame_with_normal_frame() -> None:
    sim = Pn532Simulator()
    with raw_port(sim) as port:
        port.write(b"\x55\x55" + bytes(14) + SAM_FRAME)
        assert port.read(6 + 9) == ACK + bytes.fromhex("00 00 FF 02 FE D5 15 16 00")
        port.write(bytes.fromhex("00 00 FF FF FF 00 02 FE D4 02 2A 00"))
        assert port.read(6 + 13) == ACK + bytes.fromhex("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")


def test_simulator_ignores_frames_before_wake_up_and_bad_host_checksums() -> None:
    sim = Pn532Simulator()
    with raw_port(sim) as port:
        port.write(SAM_FRAME)  # asleep: no 0x55 yet
        assert port.read(1) == b""
        port.write(b"\x55" + bytes.fromhex("00 00 FF 03 FD D4 14 01 18 00"))  # bad DCS
        assert port.read(1) == b""
        port.write(SAM_FRAME)
        assert port.read(6) == ACK


def test_simulator_resends_last_response_and_error_frame_on_nack() -> None:
    sim = Pn532Simulator(error_frame_codes=frozenset({0x4A}))
    with raw_port(sim) as port:
        port.write(b"\x55" + bytes(14) + SAM_FRAME)
        sam_response = bytes.fromhex("00 00 FF 02 FE D5 15 16 00")
        assert port.read(15) == ACK + sam_response
        port.write(NACK)
        assert port.read(9) == sam_response
        port.write(bytes.fromhex("00 00 FF 04 FC D4 4A 01 00 E1 00"))
        error = bytes.fromhex("00 00 FF 01 FF 7F 81 00")
        assert port.read(14) == ACK + error
        port.write(NACK)
        assert port.read(8) == error


def test_errors_are_driver_errors() -> None:
    # The check layer catches DriverError; every failure mode above must be one.
    for sim in (Pn532Simulator(silent=True), Pn532Simulator(bad_checksum=True),
                Pn532Simulator(error_frame=True), Pn532Simulator(unplug_after_ack=0x14)):
        with pn532(sim, ack_timeout_s=SHORT_ACK_S) as dev, pytest.raises(DriverError):
            dev.probe()


# -- frames the chip damaged: UM0701-02 §6.2.1 strictness at the device (issue 10) -------------

@pytest.mark.parametrize("fault", ["no_postamble", "bad_postamble", "truncated"])
def test_one_off_damaged_frame_is_asked_for_again(fault: str) -> None:
    sim = Pn532Simulator(frame_fault=fault)
    with pn532(sim) as dev:
        probe = dev.probe()
    assert probe.passed
    assert sim.nacks_received == len(sim.commands) == 6  # one NACK per response


@pytest.mark.parametrize("fault", ["no_postamble", "bad_postamble", "truncated"])
def test_persistently_damaged_frame_is_a_framing_error(fault: str) -> None:
    sim = Pn532Simulator(frame_fault=fault, frame_fault_on_resend=True)
    with pn532(sim) as dev, pytest.raises(ProtocolError) as err:
        dev.firmware_version()
    assert err.value.kind == "framing"
    assert "postamble" in err.value.message
    assert sim.nacks_received == 1
