"""The card_reader check against the ID TECH MiniMag simulator on a real pty, in every fault mode,
through the real config builder and runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import run_check
from serialfixtures import discover, discovered, handles_on, held_by_another_process

from posdiag.checks.card_reader import SPEC, parse_version, version_below
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status
from simulators.idtech_msr import IdTechMsrSimulator

GENEROUS_S = 0.5  # reply timeout on success paths: margin for a loaded test machine
TIMEOUT_S = 0.3  # reply timeout against silent simulators


@contextmanager
def reader(**faults: Any) -> Iterator[IdTechMsrSimulator]:
    sim = IdTechMsrSimulator(**faults)
    with sim:
        yield sim


def check(sim: IdTechMsrSimulator | None = None, **cfg: Any) -> CheckResult:
    if sim is not None:
        cfg.setdefault("port", sim.port)
    cfg.setdefault("required", True)
    cfg.setdefault("reply_timeout_s", GENEROUS_S)
    return run_check(SPEC, **cfg)


# -- healthy -----------------------------------------------------------------------------------

def test_healthy_reader() -> None:
    with reader() as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["firmware_version"] == "2.3.1"
    assert r.metrics["firmware_text"] == "ID TECH MiniMag Swipe Reader 2.3.1"
    assert r.metrics["reading_enabled"] is True
    assert r.metrics["output_format"] == "idtech"
    assert r.metrics["reader_baud"] == 9600
    assert r.metrics["port"] == sim.port and r.metrics["found_via"] == "config"
    assert r.summary == f"card reader answers on {sim.port}, reading enabled, firmware 2.3.1"
    # Only the two read commands: the check changes nothing on the reader.
    assert [c[1:3] for c in sim.commands] == [b"R\x1f", b"R\x22"]


def test_slow_reader_within_the_reply_timeout_is_ok() -> None:
    with reader(slow_delay_s=0.1) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")


# -- reader faults -----------------------------------------------------------------------------

def test_silent_reader_is_timeout() -> None:
    with reader(silent=True) as sim:
        r = check(sim, reply_timeout_s=TIMEOUT_S)
    assert (r.status, r.reason) == (Status.FAIL, "timeout")
    assert r.summary == f"card reader did not answer within {TIMEOUT_S:g} s on {sim.port}"
    assert r.hints == ("card_reader.check_connection",)
    assert TIMEOUT_S * 1000 <= r.duration_ms < TIMEOUT_S * 1000 + 3000  # ceiling: a hang


def test_slow_reader_beyond_the_reply_timeout_is_timeout() -> None:
    with reader(slow_delay_s=0.6) as sim:
        r = check(sim, reply_timeout_s=0.2)
    assert (r.status, r.reason) == (Status.FAIL, "timeout")


def test_nak_to_every_command() -> None:
    with reader(nak=True) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "nak")
    assert r.metrics["protocol_error_kind"] == "nak"


def test_bad_reply_lrc_is_checksum_error() -> None:
    with reader(bad_lrc=True) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "checksum_error")
    assert r.metrics["protocol_error_kind"] == "checksum"
    assert r.hints == ("card_reader.check_connection",)


def test_reading_disabled_is_msr_disabled() -> None:
    with reader(reading_enabled=False) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "msr_disabled")
    assert r.metrics["reading_enabled"] is False
    assert r.metrics["firmware_version"] == "2.3.1"
    assert r.hints == ("card_reader.enable_reading",)
    assert "switched off" in r.summary and sim.port in r.summary


def test_reader_unplugged_mid_probe_is_no_device() -> None:
    class UnplugOnFirmwareRead(IdTechMsrSimulator):
        def _on_command(self, command: bytes) -> None:
            if command[1:3] == b"R\x22":
                self.unplug()
                return
            super()._on_command(command)

    sim = UnplugOnFirmwareRead()
    with sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "no_device")
    assert "disconnected" in r.summary


# -- firmware baseline -------------------------------------------------------------------------

@pytest.mark.parametrize("minimum", ["2.3.2", "2.3.1.1"])
def test_firmware_below_the_minimum_is_firmware_outdated(minimum: str) -> None:
    with reader() as sim:
        r = check(sim, min_firmware=minimum)
    assert (r.status, r.reason) == (Status.FAIL, "firmware_outdated")
    assert r.summary == f"reader firmware 2.3.1 is below the minimum {minimum}"
    assert r.hints == ("card_reader.update_firmware",)
    assert r.metrics["firmware_version"] == "2.3.1"


@pytest.mark.parametrize("minimum", ["2.3", ""])
def test_firmware_at_or_above_the_minimum_is_ok(minimum: str) -> None:
    with reader() as sim:
        r = check(sim, min_firmware=minimum)
    assert (r.status, r.reason) == (Status.OK, "ok")


def test_version_numbers_compare_as_numbers_not_text() -> None:
    with reader(firmware="ID TECH MiniMag Swipe Reader 1.10.0") as sim:
        r = check(sim, min_firmware="1.9.12")
    assert (r.status, r.reason) == (Status.OK, "ok")  # as text, "1.10.0" < "1.9.12"
    with reader(firmware="ID TECH MiniMag Swipe Reader 1.9.12") as sim:
        r = check(sim, min_firmware="1.10")
    assert (r.status, r.reason) == (Status.FAIL, "firmware_outdated")
    assert r.metrics["firmware_version"] == "1.9.12"


def test_firmware_not_supported_without_minimum_is_ok_without_version() -> None:
    with reader(firmware_supported=False) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["firmware_version"] is None and r.metrics["firmware_text"] is None
    assert r.summary.endswith("firmware version not reported")


def test_firmware_not_supported_with_minimum_is_version_unknown() -> None:
    with reader(firmware_supported=False) as sim:
        r = check(sim, min_firmware="2.0")
    assert (r.status, r.reason) == (Status.WARN, "version_unknown")
    assert "does not report it" in r.summary


def test_firmware_text_without_a_number_is_version_unknown() -> None:
    with reader(firmware="MiniMag") as sim:
        r = check(sim, min_firmware="2.0")
    assert (r.status, r.reason) == (Status.WARN, "version_unknown")
    assert r.metrics["firmware_text"] == "MiniMag"
    assert "'MiniMag' without a version number" in r.summary


def test_firmware_text_that_looks_like_a_track_is_never_shown() -> None:
    track = ";4111111111111111=29121010000000000000?"
    with reader(firmware=track) as sim:
        r = check(sim, min_firmware="2.0")
    assert (r.status, r.reason) == (Status.WARN, "version_unknown")
    assert r.metrics["firmware_text"] is None
    assert "4111111111111111" not in json.dumps(r.to_dict())


@pytest.mark.parametrize(("have", "minimum", "below"), [
    ((2, 3, 1), (2, 3, 1), False), ((2, 3), (2, 3, 0), False), ((2, 3, 0), (2, 3), False),
    ((2, 9), (2, 10), True), ((2, 10), (2, 9), False), ((1, 99, 99), (2,), True),
    ((2, 3), (2, 3, 0, 1), True), ((10,), (9, 99), False),
])
def test_version_ordering_is_numeric_with_missing_parts_as_zero(
        have: tuple[int, ...], minimum: tuple[int, ...], below: bool) -> None:
    assert version_below(have, minimum) is below


def test_parse_version() -> None:
    assert parse_version("2.10.0") == (2, 10, 0)


# -- output format -----------------------------------------------------------------------------

def test_output_format_differs_from_the_configured_one() -> None:
    with reader(output_format="uic") as sim:
        r = check(sim, output_format="idtech")
    assert (r.status, r.reason) == (Status.FAIL, "reader_misconfigured")
    assert r.summary == "reader sends the uic output format, the configuration expects idtech"
    assert r.hints == ("card_reader.restore_settings",)
    assert r.metrics["output_format"] == "uic"


def test_output_format_as_configured_is_ok() -> None:
    with reader(output_format="magtek") as sim:
        r = check(sim, output_format="magtek")
    assert (r.status, r.reason) == (Status.OK, "ok")


def test_findings_come_in_root_cause_order() -> None:
    with reader(reading_enabled=False, output_format="uic") as sim:
        r = check(sim, output_format="idtech", min_firmware="9")
    assert r.reason == "msr_disabled"
    assert [f.reason for f in r.findings] == ["msr_disabled", "reader_misconfigured",
                                              "firmware_outdated"]
    assert r.hints == ("card_reader.enable_reading", "card_reader.restore_settings",
                       "card_reader.update_firmware")


# -- a swipe during the probe ------------------------------------------------------------------

def test_swipe_during_the_probe_leaves_no_card_data() -> None:
    track1 = "%B4111111111111111^PROBE/SWIPE^29121011234567890000000?"
    track2 = ";4111111111111111=2912101987654321?"

    class SwipeAfterFirstReply(IdTechMsrSimulator):
        def _on_read(self, func_id: int) -> None:
            super()._on_read(func_id)
            if func_id == 0x1F:
                self.swipe(track1, track2)

    for fmt in ("idtech", "uic", "magtek"):
        sim = SwipeAfterFirstReply(output_format=fmt)
        with sim:
            r = check(sim)
        assert (r.status, r.reason) == (Status.OK, "ok"), fmt  # the swipe's bytes are dropped
        text = json.dumps(r.to_dict())
        for secret in ("4111111111111111", "PROBE/SWIPE", "1234567890", "987654321",
                       track1, track2):
            assert secret not in text, (fmt, secret)


@pytest.mark.parametrize("fmt", ["idtech", "uic", "magtek"])
@pytest.mark.parametrize(("mode", "on_command"), [
    ("busy", 0), ("busy", 1), ("before_reply", 0), ("after_ack", 0), ("after_ack", 1)])
def test_swipe_in_the_middle_of_a_command_is_a_swipe_not_a_fault(
        fmt: str, mode: str, on_command: int) -> None:
    """Issue 15 item 12: the reader meets a card while a probe command is on the line."""
    track1 = "%B4111111111111111^PROBE/SWIPE^29121011234567890000000?"
    track2 = ";4111111111111111=2912101987654321?"
    sim = IdTechMsrSimulator(output_format=fmt)
    sim.swipe_during_command(track1, track2, on_command=on_command, mode=mode)
    with sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok"), (fmt, mode, r.summary)
    assert r.metrics["swipes_during_probe"] == 1
    assert "a card swiped during the check was ignored" in r.summary
    assert r.metrics["firmware_version"] == "2.3.1"
    text = json.dumps(r.to_dict())
    for secret in ("4111111111111111", "411111", "PROBE/SWIPE", "1234567890", "987654321",
                   track1, track2):
        assert secret not in text, (fmt, mode, secret)


def test_no_swipe_no_note() -> None:
    with reader() as sim:
        r = check(sim)
    assert r.metrics["swipes_during_probe"] == 0
    assert "swiped" not in r.summary


# -- where the reader is -----------------------------------------------------------------------

def test_configured_port_that_does_not_exist_is_no_device(tmp_path: Path) -> None:
    r = check(port=str(tmp_path / "ttyUSB7"))
    assert (r.status, r.reason) == (Status.FAIL, "no_device")
    assert r.hints == ("card_reader.check_connection",)


def test_nothing_configured_nothing_found_not_required_is_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = discover(monkeypatch)
    r = check(required=False)
    assert (r.status, r.reason) == (Status.SKIPPED, "no_device")
    assert asked == ["card_reader"]


def test_nothing_configured_nothing_found_required_is_no_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    discover(monkeypatch)
    r = check()
    assert (r.status, r.reason) == (Status.FAIL, "no_device")
    assert r.summary == "no card reader found on USB"
    assert r.hints == ("card_reader.check_connection",)


def test_reader_found_through_udev(monkeypatch: pytest.MonkeyPatch) -> None:
    with reader() as sim:
        discover(monkeypatch, discovered(
            sim.port, driver="idtech", kind="card_reader", vendor="ID TECH",
            model="IDT1221U USB to RS-232 adapter (MiniMag RS-232)", vid="0acd", pid="0300"))
        r = check(driver="auto")
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["found_via"] == "udev" and r.metrics["port"] == sim.port
    assert r.metrics["device_vendor"] == "ID TECH"


def test_port_held_by_another_process_is_port_busy() -> None:
    with reader() as sim, held_by_another_process(sim.port) as pid:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "port_busy")
    assert f"pid {pid}" in r.summary
    assert r.hints == ("device.free_port",)
    assert r.metrics["port_holder"]


def test_the_port_is_closed_on_every_path() -> None:
    for faults in ({}, {"silent": True}, {"nak": True}, {"bad_lrc": True}):
        with reader(**faults) as sim:
            before = handles_on(sim.port)  # the simulator's own slave handle
            check(sim)
            assert handles_on(sim.port) == before, faults


# -- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [
    ("driver", "magtek"), ("baudrate", 115200), ("min_firmware", "v2.3"),
    ("min_firmware", "2..3"), ("output_format", "ansi"), ("reply_timeout_s", 0.0),
])
def test_bad_config_values_are_config_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as e:
        run_check(SPEC, **{key: value})
    assert e.value.key == f"checks.card_reader.{key}"


def test_defaults() -> None:
    cfg = SPEC.config_type()
    assert (cfg.driver, cfg.baudrate, cfg.min_firmware, cfg.required) == ("auto", 9600, "",
                                                                          False)
    assert SPEC.timeout_s >= 2 * 2.0 + 0.1  # two replies at the largest reply timeout
