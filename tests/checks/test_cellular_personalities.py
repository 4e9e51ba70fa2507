"""The cellular check end to end on a real pty against every recorded module personality
(hardware-fixtures/serial/<product>-<firmware>/<scenario>.at): real firmware's finals, URCs,
character sets and quirks must give the diagnosis the recording shows, never "no answer"."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run_check

from posdiag.checks.cellular import SPEC
from posdiag.results import CheckResult, Status
from simulators.modem import RecordedModem, load_personality, personality_names

FAST = {"command_timeout_s": 0.5, "sim_timeout_s": 0.5}

# personality -> (status, reason, metrics that must hold)
EXPECTED: dict[str, tuple[Status, str, dict[str, Any]]] = {
    "quectel-ec25-EC25EFAR06A06M4G/urc-during-creg": (Status.OK, "ok", {
        "creg_stat": 1, "cereg_stat": 1, "operator": "CHINA MOBILE", "signal_dbm": -65,
        "modem_revision": "Revision: EC25EFAR06A06M4G", "access_technology": "E-UTRAN"}),
    "quectel-ec25-EC25EFAR06A06M4G/denied-noservice": (Status.FAIL, "registration_denied", {
        "signal_dbm": -61, "service_mode": "NOSERVICE", "registration": "denied"}),
    "quectel-bg96-BG96MAR02A07M1G/searching-noservice": (Status.FAIL, "not_registered", {
        "signal_dbm": -79, "service_mode": "NOSERVICE", "registration": "searching",
        "modem_manufacturer": "Quectel", "modem_model": "BG96",
        "modem_revision": "Revision: BG96MAR02A07M1G BG96MAR02A07M1G_01.016.01.016"}),
    "huawei-me909s-11.617.01.00.00/ucs2-operator": (Status.OK, "ok", {
        "operator": "中国移动", "creg_stat": 1, "cgreg_stat": 1, "cereg_stat": 1,
        "modem_manufacturer": "Huawei Technologies Co., Ltd.", "unreadable_fields": None}),
    "simcom-sim800-R14.18/numeric-v0": (Status.OK, "ok", {
        "creg_stat": 1, "cgreg_stat": 1, "cereg_stat": None, "signal_dbm": -75, "ber": 0,
        "operator": "CHINA MOBILE", "modem_model": "SIMCOM_SIM800C"}),
    "wavecom-m1306b-430e09gm.3/cpin-no-ok": (Status.OK, "ok", {
        "sim_state": "ready", "modem_manufacturer": "WAVECOM MODEM",
        "modem_model": "MULTIBAND 900E 1800", "operator": "Orange F", "cereg_stat": None}),
    "quectel-rm500q-RM500QGLABR11A06M4G/nr5g-sa-registered": (Status.OK, "ok", {
        "c5greg_stat": 1, "cereg_stat": 0, "registration": "home", "modem_model": "RM500Q-GL",
        "operator": "CHINA MOBILE", "unreadable_fields": None}),
    "ublox-sara-u201-23.60/verbose-cme-no-sim": (Status.FAIL, "sim_missing", {
        "sim_state": "not_inserted", "modem_model": "SARA-U201"}),
}


def checked(name: str) -> tuple[CheckResult, RecordedModem]:
    with RecordedModem(name) as sim:
        return run_check(SPEC, port=sim.port, required=True, **FAST), sim


def test_every_recording_has_an_expectation() -> None:
    assert sorted(EXPECTED) == personality_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_module(name: str) -> None:
    status, reason, metrics = EXPECTED[name]
    result, _ = checked(name)
    assert (result.status, result.reason) == (status, reason), result.summary
    for key, value in metrics.items():
        assert result.metrics[key] == value, key
    assert result.reason not in ("timeout", "protocol_error")


def test_every_recording_cites_its_source() -> None:
    for name in personality_names():
        personality = load_personality(name)
        assert personality.source.strip(), name
        assert personality.answers, name


def test_numeric_personality_speaks_v0_framing_byte_exact() -> None:
    with RecordedModem("simcom-sim800-R14.18/numeric-v0") as sim:
        import serial

        port = serial.serial_for_url(sim.port, timeout=0.5)
        try:
            port.write(b"AT+CSQ\r")
            data = b""
            while not data.endswith(b"0\r"):
                chunk = port.read(64)
                assert chunk, data
                data += chunk
        finally:
            port.close()
    assert data == b"+CSQ: 19,0\r\n0\r"


def test_denial_beats_a_good_signal_and_a_vendor_noservice_report() -> None:
    result, _ = checked("quectel-ec25-EC25EFAR06A06M4G/denied-noservice")
    assert result.summary == ("mobile network denied registration (+CEREG: 3, +CGREG: 3)")
    assert [f.reason for f in result.findings] == ["registration_denied"]


def test_searching_with_signal_is_not_no_signal() -> None:
    result, _ = checked("quectel-bg96-BG96MAR02A07M1G/searching-noservice")
    assert [f.reason for f in result.findings] == ["not_registered"]
    assert "searching" in result.summary


def test_cpin_without_ok_costs_the_grace_time_not_a_timeout() -> None:
    result, sim = checked("wavecom-m1306b-430e09gm.3/cpin-no-ok")
    assert result.status is Status.OK
    # After the unterminated +CPIN? the next command got its own answer.
    assert b"AT+CPIN?\rAT+CSQ\r" in bytes(sim.received).replace(b"ATE0\r", b"")


def test_verbose_cme_text_is_read_as_its_code() -> None:
    result, sim = checked("ublox-sara-u201-23.60/verbose-cme-no-sim")
    assert result.summary == "no SIM card detected (+CME ERROR: 10)"
    assert b"AT+CMEE=1\r" in bytes(sim.received)  # refused, and the probe went on


def test_silent_recorded_modem_still_costs_one_bounded_timeout() -> None:
    with RecordedModem("huawei-me909s-11.617.01.00.00/ucs2-operator", faults=["silent"]) as sim:
        result = run_check(SPEC, port=sim.port, required=True, **FAST)
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert bytes(sim.received).count(b"AT\r") == 2


def test_c5greg_is_asked_of_5g_modules_only() -> None:
    _, nr = checked("quectel-rm500q-RM500QGLABR11A06M4G/nr5g-sa-registered")
    _, lte = checked("quectel-ec25-EC25EFAR06A06M4G/urc-during-creg")
    assert b"AT+C5GREG?\r" in nr.received
    assert b"C5GREG" not in lte.received  # a 4G module would spend a command on ERROR
