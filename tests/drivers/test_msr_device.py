"""The ID TECH MiniMag driver against its simulator on a real pty, in every fault mode."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import pytest
import serial

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError
from posdiag.drivers.msr import ExpiryState, IdTechMsr, SwipeResult, TrackProblem
from posdiag.drivers.msr.framing import Setting
from simulators.idtech_msr import IdTechMsrSimulator, track_lrc_char

REVIEW = bytes.fromhex("02 52 1F 03 4C")
FIRMWARE = bytes.fromhex("02 52 22 03 71")
ENABLE = bytes.fromhex("02 53 1A 01 31 03 78")
DEFAULTS = bytes.fromhex("02 53 18 03 4A")

# protocols.md §3.5: published test numbers only.
TEST_CARDS = [
    "4111111111111111", "4012888888881881", "4242424242424242", "5555555555554444",
    "5105105105105100", "2223003122003222", "378282246310005", "371449635398431",
    "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505",
    "30569309025904", "38520000023237", "4000000000000002",
]
NAME = "CARDHOLDER/TEST"
FUTURE = f"{(date.today().year + 3) % 100:02d}12"
PAST = "1901"


def track1(pan: str, yymm: str = FUTURE) -> str:
    return f"%B{pan}^{NAME}^{yymm}2010000000000000?"


def track2(pan: str, yymm: str = FUTURE) -> str:
    return f";{pan}={yymm}201{'7' * (19 - len(pan) + 2)}?"


@contextmanager
def msr(sim: IdTechMsrSimulator, **kwargs: float) -> Iterator[IdTechMsr]:
    with sim:
        port = serial.serial_for_url(sim.port, baudrate=9600, timeout=0.05)
        try:
            yield IdTechMsr(port, **kwargs)  # type: ignore[arg-type]
        finally:
            port.close()


def later(delay_s: float, action: Callable[[], object]) -> threading.Timer:
    timer = threading.Timer(delay_s, action)
    timer.start()
    return timer


def swipe_through(dev: IdTechMsr, action: Callable[[], object],
                  timeout_s: float = 2.0) -> SwipeResult | None:
    timer = later(0.05, action)
    try:
        return dev.wait_for_swipe(timeout_s)
    finally:
        timer.cancel()


# -- commands ---------------------------------------------------------------------------------

def test_probe_healthy_reader() -> None:
    sim = IdTechMsrSimulator()
    with msr(sim) as dev:
        probe = dev.probe()
    assert probe.reading_enabled is True
    assert probe.settings.output_format == "idtech" and probe.settings.baud_rate == 9600
    assert probe.firmware is not None
    assert probe.firmware.text == "ID TECH MiniMag Swipe Reader 2.3.1"
    assert probe.firmware.version == (2, 3, 1)
    assert sim.commands == [REVIEW, FIRMWARE]  # byte for byte as protocols.md §2.1
    assert sim.ignored_commands == 0


def test_commands_are_paced_for_the_reader() -> None:
    sim = IdTechMsrSimulator()
    with msr(sim) as dev:
        start = time.monotonic()
        for _ in range(3):
            dev.review_settings()
        elapsed = time.monotonic() - start
    assert sim.ignored_commands == 0
    assert elapsed >= 2 * 0.08  # 80 ms between commands (MiniMag "Communication Timing")


def test_without_pacing_the_reader_ignores_the_next_command() -> None:
    sim = IdTechMsrSimulator()
    with msr(sim, command_gap_s=0.0, quiet_s=0.01, reply_timeout_s=0.3) as dev:
        dev.review_settings()
        with pytest.raises(DeviceTimeout):
            dev.review_settings()
    assert sim.ignored_commands == 1


def test_reading_disabled() -> None:
    sim = IdTechMsrSimulator(reading_enabled=False)
    with msr(sim) as dev:
        assert dev.reading_enabled() is False
        assert swipe_through(dev, lambda: sim.swipe(None, track2(TEST_CARDS[0])), 0.3) is None


def test_enable_reading_then_swipe() -> None:
    sim = IdTechMsrSimulator(reading_enabled=False)
    with msr(sim) as dev:
        dev.set_reading_enabled(True)
        assert sim.commands[-1] == ENABLE
        assert dev.reading_enabled() is True
        result = swipe_through(dev, lambda: sim.swipe(None, track2(TEST_CARDS[0])))
    assert result is not None and result.track2.structure_ok


def test_defaults_command_and_invalid_value() -> None:
    sim = IdTechMsrSimulator(reading_enabled=False)
    with msr(sim) as dev:
        with pytest.raises(ProtocolError) as err:
            dev.configure([Setting(0x1A, b"7")])
        assert err.value.kind == "nak"
        dev.configure([Setting(0x18)])
        assert sim.commands[-1] == DEFAULTS
        assert dev.reading_enabled() is True


def test_old_firmware_string() -> None:
    with msr(IdTechMsrSimulator(firmware="ID TECH MiniMag V1.02")) as dev:
        firmware = dev.firmware_version()
    assert firmware.text == "ID TECH MiniMag V1.02" and firmware.version == (1, 2)


def test_firmware_without_version_number() -> None:
    with msr(IdTechMsrSimulator(firmware="MINIMAG")) as dev:
        assert dev.firmware_version().version is None


def test_firmware_funcid_unknown_to_reader() -> None:
    with msr(IdTechMsrSimulator(firmware_supported=False)) as dev:
        probe = dev.probe()
        assert probe.firmware is None and probe.reading_enabled is True
        with pytest.raises(ProtocolError) as err:
            dev.firmware_version()
    assert err.value.kind == "nak"


def test_silent_reader_is_device_timeout_quickly() -> None:
    sim = IdTechMsrSimulator(silent=True)
    with msr(sim, reply_timeout_s=0.3) as dev:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as err:
            dev.probe()
        elapsed = time.monotonic() - start
    assert err.value.timeout_s == 0.3 and err.value.device == sim.port
    assert bytes(sim.received) == REVIEW  # quickly: the first unanswered command ends the probe
    assert 0.3 <= elapsed < 0.3 + 3.0  # the ceiling only catches a hang


def test_slow_reader_within_timeout_works() -> None:
    with msr(IdTechMsrSimulator(slow_delay_s=0.05)) as dev:
        assert dev.probe().reading_enabled is True


def test_slow_reader_beyond_timeout_is_device_timeout() -> None:
    with msr(IdTechMsrSimulator(slow_delay_s=0.5), reply_timeout_s=0.2) as dev, \
            pytest.raises(DeviceTimeout):
        dev.review_settings()


def test_nak_is_protocol_error() -> None:
    with msr(IdTechMsrSimulator(nak=True)) as dev, pytest.raises(ProtocolError) as err:
        dev.probe()
    assert err.value.kind == "nak"


def test_bad_reply_lrc_is_checksum_error() -> None:
    with msr(IdTechMsrSimulator(bad_lrc=True)) as dev, pytest.raises(ProtocolError) as err:
        dev.review_settings()
    assert err.value.kind == "checksum"


def test_unplugged_reader_is_device_not_found() -> None:
    sim = IdTechMsrSimulator()
    with msr(sim) as dev:
        sim.unplug()
        with pytest.raises(DeviceNotFound) as err:
            dev.review_settings()
    assert not isinstance(err.value, OSError)


def test_unplug_while_waiting_for_a_swipe() -> None:
    sim = IdTechMsrSimulator()
    with msr(sim) as dev:
        timer = later(0.05, sim.unplug)
        try:
            with pytest.raises(DeviceNotFound):
                dev.wait_for_swipe(2.0)
        finally:
            timer.cancel()


# -- swipes -----------------------------------------------------------------------------------

def test_no_swipe_returns_none_after_the_timeout() -> None:
    with msr(IdTechMsrSimulator()) as dev:
        start = time.monotonic()
        assert dev.wait_for_swipe(0.2) is None
        assert 0.2 <= time.monotonic() - start < 0.2 + 3.0  # the ceiling only catches a hang


@pytest.mark.parametrize("output_format", ["idtech", "uic", "magtek"])
def test_good_swipe_in_every_output_format(output_format: str) -> None:
    sim = IdTechMsrSimulator(output_format=output_format)
    pan = "5555555555554444"
    with msr(sim) as dev:
        result = swipe_through(dev, lambda: sim.swipe(track1(pan), track2(pan), ";0123?"))
    assert result is not None and result.readable
    assert result.masked_pan == "555555******4444"
    assert result.luhn_ok is True and result.expiry == ExpiryState.VALID
    assert result.tracks_agree is True
    assert all(t.present and t.structure_ok for t in result.tracks)
    expected_lrc = True if output_format == "uic" else None
    assert all(t.lrc_ok is expected_lrc for t in result.tracks)


def test_damaged_stripe_uic_reports_lrc() -> None:
    sim = IdTechMsrSimulator(output_format="uic")
    pan = "4111111111111111"
    with msr(sim) as dev:
        result = swipe_through(dev, lambda: sim.swipe(track1(pan), track2(pan), bad_lrc={2}))
    assert result is not None and not result.readable
    assert result.track1.lrc_ok is True and result.track2.lrc_ok is False


@pytest.mark.parametrize("output_format", ["idtech", "magtek"])
def test_damaged_stripe_without_lrc_in_output_is_reader_error(output_format: str) -> None:
    sim = IdTechMsrSimulator(output_format=output_format)
    pan = "4111111111111111"
    with msr(sim) as dev:
        result = swipe_through(dev, lambda: sim.swipe(track1(pan), track2(pan), bad_lrc=True))
    assert result is not None and not result.readable
    assert result.track1.problem == result.track2.problem == TrackProblem.READER_ERROR
    assert result.masked_pan is None


def test_expired_card_and_broken_check_digit() -> None:
    sim = IdTechMsrSimulator()
    with msr(sim) as dev:
        expired = swipe_through(dev, lambda: sim.swipe(None, track2(TEST_CARDS[0], PAST)))
        broken = swipe_through(dev, lambda: sim.swipe(None, track2("4111111111111112")))
    assert expired is not None and expired.expiry == ExpiryState.EXPIRED and expired.readable
    assert broken is not None and broken.luhn_ok is False and broken.readable


def test_simulator_track_lrc_matches_worked_example() -> None:
    assert track_lrc_char(";4111111111111111=25121010000000000000?") == "8"
    assert track_lrc_char("%B4111111111111111^CARDHOLDER/TEST^2512101000000000000000000?") \
        == "\\"


# -- card data never leaves the driver --------------------------------------------------------

def _visible(obj: object) -> str:
    parts = [repr(obj), str(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            parts.append(_visible(getattr(obj, f.name)))
    elif isinstance(obj, tuple):
        parts += [_visible(item) for item in obj]
    return "\n".join(parts)


def _secrets(pan: str) -> list[str]:
    t1, t2 = track1(pan), track2(pan)
    return [pan, NAME, t1, t2, t1[1:-1], t2[1:-1], t2[t2.index("=") :],
            t1[t1.rindex("^") :]]


@pytest.mark.parametrize("output_format", ["idtech", "uic"])
def test_test_cards_leave_no_card_data_in_results(output_format: str) -> None:
    sim = IdTechMsrSimulator(output_format=output_format)
    with msr(sim, swipe_quiet_s=0.05) as dev:
        for pan in TEST_CARDS:
            result = swipe_through(dev, lambda p=pan: sim.swipe(track1(p), track2(p)))
            assert result is not None and result.readable and result.luhn_ok
            assert result.masked_pan == pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
            text = _visible(result) + "\n" + repr(vars(dev))
            for secret in _secrets(pan):
                assert secret not in text


def test_no_card_data_in_exception_messages() -> None:
    pan = TEST_CARDS[0]
    swipe = (track1(pan) + "\r" + track2(pan) + "\r").encode()
    errors: list[DriverError] = []
    # A swipe arriving where a command reply is expected (a silent reader, and a NAKing one).
    for sim in (IdTechMsrSimulator(silent=True), IdTechMsrSimulator(bad_lrc=True)):
        with msr(sim, reply_timeout_s=0.3) as dev:
            timer = later(0.05, lambda s=sim: s.send(swipe))
            try:
                dev.review_settings()
            except DriverError as exc:
                errors.append(exc)
            finally:
                timer.cancel()
    # And a swipe in flight when the cable is pulled.
    sim = IdTechMsrSimulator()
    with msr(sim) as dev:
        sim.send(swipe[:30])
        timer = later(0.02, sim.unplug)
        try:
            dev.wait_for_swipe(2.0)
        except DriverError as exc:
            errors.append(exc)
        finally:
            timer.cancel()
    # A swipe is not a reply: the silent reader stays a timeout (issue 15 item 12), the bad
    # LRC of the NAKing one's reply is still found once the swipe is cut out.
    assert [type(e).__name__ for e in errors] == [
        "DeviceTimeout", "ProtocolError", "DeviceNotFound"]
    assert [getattr(e, "kind", None) for e in errors] == [None, "checksum", None]
    for exc in errors:
        text = "\n".join([str(exc), repr(exc), exc.message, repr(exc.args),
                          str(exc.__cause__), str(exc.__context__)])
        for secret in [*_secrets(pan), swipe.decode()[:20]]:
            assert secret not in text


# -- a swipe in the middle of a command (issue 15 item 12) -------------------------------------

@pytest.mark.parametrize("fmt", ["idtech", "uic", "magtek"])
@pytest.mark.parametrize("mode", ["busy", "before_reply", "after_ack"])
def test_swipe_during_a_command_is_dropped_and_the_command_finishes(fmt: str,
                                                                   mode: str) -> None:
    pan = TEST_CARDS[3]
    sim = IdTechMsrSimulator(output_format=fmt)
    sim.swipe_during_command(track1(pan), track2(pan), on_command=0, mode=mode)
    with msr(sim) as dev:
        probe = dev.probe()
    assert probe.swipes_discarded == 1 and dev.swipes_discarded == 1
    assert probe.reading_enabled is True and probe.firmware is not None
    assert probe.firmware.version == (2, 3, 1)
    text = repr(probe)
    for secret in _secrets(pan):
        assert secret not in text
    # "busy": the ignored command is sent again; otherwise one command each.
    assert len(sim.commands) == (3 if mode == "busy" else 2)


def test_a_swipe_every_time_gives_up_after_the_retries() -> None:
    pan = TEST_CARDS[0]

    class AlwaysSwiping(IdTechMsrSimulator):
        def _on_command(self, command: bytes) -> None:
            self.commands.append(command)
            self.send(self.swipe_bytes(track1(pan), track2(pan)))

    with msr(AlwaysSwiping(), reply_timeout_s=0.2) as dev, \
            pytest.raises(DeviceTimeout, match="swiped instead") as err:
        dev.review_settings()
    assert dev.swipes_discarded == 3  # the command, and its two retries
    for secret in _secrets(pan):
        assert secret not in str(err.value)
