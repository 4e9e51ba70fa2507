"""The contactless check against the PN532 simulator on a real pty, in every fault mode, through
the real config builder and runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import run_check
from serialfixtures import discover, discovered, handles_on, held_by_another_process

from posdiag.checks.contactless import SPEC
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status
from simulators.pn532 import Pn532Simulator

GENEROUS_ACK_S = 0.5  # success paths: margin for a loaded test machine
SHORT_ACK_S = 0.2  # timeout paths
SELF_TEST_METRICS = ("self_test_line_ok", "self_test_rom_ok", "self_test_ram_ok",
                     "self_test_antenna_ok")


@contextmanager
def chip(**faults: Any) -> Iterator[Pn532Simulator]:
    sim = Pn532Simulator(**faults)
    with sim:
        yield sim


def check(sim: Pn532Simulator | None = None, **cfg: Any) -> CheckResult:
    if sim is not None:
        cfg.setdefault("port", sim.port)
    cfg.setdefault("required", True)
    cfg.setdefault("ack_timeout_s", GENEROUS_ACK_S)
    return run_check(SPEC, **cfg)


# -- healthy -----------------------------------------------------------------------------------

def test_healthy_chip() -> None:
    with chip() as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["firmware_ic"] == "0x32"
    assert r.metrics["firmware_version"] == "1.6"
    assert r.metrics["firmware_support"] == "0x07"
    assert all(r.metrics[k] is True for k in SELF_TEST_METRICS)
    assert "card_present" not in r.metrics  # no RF scan unless configured
    assert r.metrics["port"] == sim.port and r.metrics["found_via"] == "config"
    assert r.summary == f"PN532 firmware 1.6 on {sim.port}, self-tests passed"
    # SAMConfiguration, firmware, Diagnose line/ROM/RAM/antenna: nothing else.
    assert [c[:2] for c in sim.commands] == [b"\x14\x01", b"\x02", b"\x00\x00", b"\x00\x01",
                                            b"\x00\x02", b"\x00\x07"]


def test_slow_chip_within_the_timeouts_is_ok() -> None:
    with chip(slow_delay_s=0.05) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")


def test_one_off_bad_checksum_is_recovered() -> None:
    with chip(bad_checksum=True, bad_checksum_on_resend=False) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert sim.nacks_received >= 1


# -- communication faults ----------------------------------------------------------------------

@pytest.mark.parametrize("faults", [{"silent": True}, {"no_ack": True},
                                    {"slow_delay_s": 0.5}])
def test_no_ack_in_time_is_timeout(faults: dict[str, Any]) -> None:
    with chip(**faults) as sim:
        r = check(sim, ack_timeout_s=SHORT_ACK_S)
    assert (r.status, r.reason) == (Status.FAIL, "timeout")
    assert r.summary == f"contactless reader did not answer within {SHORT_ACK_S:g} s on {sim.port}"
    assert r.hints == ("contactless.check_connection",)
    assert SHORT_ACK_S * 1000 <= r.duration_ms < SHORT_ACK_S * 1000 + 3000  # ceiling: a hang


def test_persistent_bad_checksum_is_checksum_error() -> None:
    with chip(bad_checksum=True) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "checksum_error")
    assert r.metrics["protocol_error_kind"] == "checksum"


def test_error_frame_is_protocol_error() -> None:
    with chip(error_frame=True) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "protocol_error")
    assert r.metrics["protocol_error_kind"] == "error_frame"


def test_error_frame_to_diagnose_keeps_the_firmware_metrics() -> None:
    with chip(error_frame_codes=frozenset({0x00})) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "protocol_error")
    assert r.metrics["firmware_ic"] == "0x32" and r.metrics["firmware_version"] == "1.6"


def test_unplugged_after_the_ack_is_no_device() -> None:
    with chip(unplug_after_ack=0x00) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "no_device")
    assert r.metrics["firmware_version"] == "1.6"


# -- chip verdicts -----------------------------------------------------------------------------

@pytest.mark.parametrize(("faults", "named", "metrics_false"), [
    ({"rom_fail": True}, "ROM checksum", ("self_test_rom_ok",)),
    ({"ram_fail": True}, "RAM", ("self_test_ram_ok",)),
    ({"rom_fail": True, "ram_fail": True}, "ROM checksum, RAM",
     ("self_test_rom_ok", "self_test_ram_ok")),
])
def test_failed_self_tests_are_named(faults: dict[str, bool], named: str,
                                     metrics_false: tuple[str, ...]) -> None:
    with chip(**faults) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "self_test_failed")
    assert r.summary == f"PN532 self-test failed: {named}"
    assert r.hints == ("contactless.replace_module",)
    for key in SELF_TEST_METRICS:
        assert r.metrics[key] is (key not in metrics_false)


def test_line_test_mismatch_is_self_test_failed() -> None:
    class CrossedLine(Pn532Simulator):
        def _diagnose(self, test: int, params: bytes) -> bytes | None:
            if test == 0x00:
                return b"\x01\x00" + bytes(b ^ 0x01 for b in params)  # one data line stuck
            return super()._diagnose(test, params)

    sim = CrossedLine()
    with sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "self_test_failed")
    assert r.summary == "PN532 self-test failed: communication line"
    assert r.metrics["self_test_line_ok"] is False


def test_antenna_fault() -> None:
    with chip(antenna_fault=True) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "antenna_fault")
    assert r.summary == "PN532 antenna self-test found no antenna (status 0x01)"
    assert r.hints == ("contactless.check_antenna",)
    assert r.metrics["self_test_antenna_ok"] is False
    assert r.metrics["self_test_rom_ok"] is True


def test_self_test_failure_comes_before_the_antenna() -> None:
    with chip(ram_fail=True, antenna_fault=True) as sim:
        r = check(sim)
    assert r.reason == "self_test_failed"
    assert [f.reason for f in r.findings] == ["self_test_failed", "antenna_fault"]
    assert r.hints == ("contactless.replace_module", "contactless.check_antenna")


def test_another_chip_is_unexpected_device() -> None:
    with chip(firmware=(0x33, 0x02, 0x07, 0x07)) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "unexpected_device")
    assert r.summary == f"the chip on {sim.port} reports IC 0x33, not a PN532 (0x32)"
    assert r.metrics["firmware_ic"] == "0x33" and r.metrics["firmware_version"] == "2.7"
    assert r.hints == ("contactless.check_device",)
    assert not any(c[:1] == b"\x00" for c in sim.commands)  # no PN532 self-tests on it


# -- card scan ---------------------------------------------------------------------------------

def test_scan_without_card() -> None:
    with chip() as sim:
        r = check(sim, card_scan=True)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["card_present"] is False and r.metrics["card_scan_aborted"] is False
    assert sim.passive_retries != 0xFF  # finite retries: the scan cannot hang


def test_scan_with_a_card_reports_presence_only() -> None:
    with chip(card_present=True) as sim:
        r = check(sim, card_scan=True)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["card_present"] is True
    assert r.summary.endswith("self-tests passed, a card is on the reader")
    text = json.dumps(r.to_dict()).lower()
    for uid in ("0416c6c2d73881", "04 16 c6", "04:16:c6", "4-22-198"):
        assert uid not in text


def test_scan_that_the_chip_never_answers_is_bounded() -> None:
    with chip(ignore_retry_limit=True) as sim:
        r = check(sim, card_scan=True, card_scan_timeout_s=0.2)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["card_present"] is False and r.metrics["card_scan_aborted"] is True
    assert sim.aborts_received >= 1


# -- where the reader is -----------------------------------------------------------------------

def test_configured_port_that_does_not_exist_is_no_device(tmp_path: Path) -> None:
    r = check(port=str(tmp_path / "ttyUSB8"))
    assert (r.status, r.reason) == (Status.FAIL, "no_device")
    assert r.hints == ("contactless.check_connection",)


def test_nothing_configured_nothing_found_not_required_is_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = discover(monkeypatch)
    r = check(required=False)
    assert (r.status, r.reason) == (Status.SKIPPED, "no_device")
    assert asked == ["contactless"]


def ch340(port: str):  # type: ignore[no-untyped-def]
    return discovered(port, driver="pn532", kind="bridge", vendor="QinHeng Electronics",
                      model="CH340 serial converter", vid="1a86", pid="7523")


def test_pn532_behind_a_discovered_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    with chip() as sim:
        discover(monkeypatch, ch340(sim.port))
        r = check()
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["found_via"] == "udev" and r.metrics["port"] == sim.port
    assert r.metrics["device_model"] == "CH340 serial converter"


def test_nothing_answering_behind_a_bridge_is_not_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with chip(silent=True) as sim:
        discover(monkeypatch, ch340(sim.port))
        optional = check(required=False, ack_timeout_s=SHORT_ACK_S)
        required = check(ack_timeout_s=SHORT_ACK_S)
    assert (optional.status, optional.reason) == (Status.SKIPPED, "no_device")
    assert (required.status, required.reason) == (Status.FAIL, "no_device")
    assert required.summary == (f"nothing answers as a PN532 behind the CH340 serial converter "
                                f"at {sim.port}")
    assert required.hints == ("contactless.check_connection",)


def test_pinned_port_that_stays_silent_is_timeout_not_absent() -> None:
    with chip(silent=True) as sim:
        r = check(sim, required=False, ack_timeout_s=SHORT_ACK_S)
    assert (r.status, r.reason) == (Status.FAIL, "timeout")


def test_port_held_by_another_process_is_port_busy() -> None:
    with chip() as sim, held_by_another_process(sim.port) as pid:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "port_busy")
    assert f"pid {pid}" in r.summary
    assert r.hints == ("device.free_port",)


def test_the_port_is_closed_on_every_path() -> None:
    for faults in ({}, {"silent": True}, {"rom_fail": True}, {"error_frame": True}):
        with chip(**faults) as sim:
            before = handles_on(sim.port)
            check(sim, ack_timeout_s=SHORT_ACK_S if faults.get("silent") else GENEROUS_ACK_S)
            assert handles_on(sim.port) == before, faults


# -- configuration -----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [
    ("driver", "idtech"), ("baudrate", 9601), ("ack_timeout_s", 0.0),
    ("card_scan_timeout_s", 5.0), ("card_scan", "yes"),
])
def test_bad_config_values_are_config_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as e:
        run_check(SPEC, **{key: value})
    assert e.value.key == f"checks.contactless.{key}"


def test_defaults() -> None:
    cfg = SPEC.config_type()
    assert (cfg.driver, cfg.baudrate, cfg.card_scan, cfg.required) == ("auto", 115200, False,
                                                                       False)


# -- frames damaged on the line (issue 10: UM0701-02 §6.2.1 strictness) ------------------------

@pytest.mark.parametrize("fault", ["no_postamble", "bad_postamble", "truncated"])
def test_damaged_frames_once_are_recovered_and_for_good_are_protocol_errors(fault: str) -> None:
    with chip(frame_fault=fault) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.OK, "ok")
    with chip(frame_fault=fault, frame_fault_on_resend=True) as sim:
        r = check(sim)
    assert (r.status, r.reason) == (Status.FAIL, "protocol_error")
    assert r.metrics["protocol_error_kind"] == "framing"
    assert "postamble" in r.summary
