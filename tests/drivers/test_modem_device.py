"""The Modem driver against the Quectel EC25-like simulator on a real pty, in every fault mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import serial

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError
from posdiag.drivers.modem import (
    AtCommandError,
    Identity,
    Modem,
    ModemProbe,
    RegistrationStat,
    SimState,
)
from simulators.modem import CELL_ID, HOME_OPERATOR, IMEI, ROAMING_OPERATOR, TAC, ModemSimulator

FAST = {"timeout_s": 0.3, "sim_timeout_s": 0.3}


@contextmanager
def modem_on(sim: ModemSimulator, *, port_timeout: float | None = 1.0,
             **kwargs: Any) -> Iterator[Modem]:
    with sim:
        port = serial.serial_for_url(sim.port, baudrate=115200, timeout=port_timeout)
        try:
            yield Modem(port, **{**FAST, **kwargs})
        finally:
            port.close()


def probe(*faults: str, **sim_kwargs: Any) -> ModemProbe:
    with modem_on(ModemSimulator(faults=faults, **sim_kwargs)) as modem:
        return modem.probe()


# -- healthy modem -----------------------------------------------------------------------------


def test_healthy_probe() -> None:
    sim = ModemSimulator()
    with modem_on(sim) as modem:
        result = modem.probe()
    assert result.identity == Identity("Quectel", "EC25", "EC25EFAR06A06M4G", IMEI)
    assert result.sim is SimState.READY
    assert (result.signal.rssi_dbm, result.signal.ber) == (-73, None)
    assert (result.signal.rsrp_dbm, result.signal.sinr_db, result.signal.rsrq_db) == (
        -100, 20.0, -10)
    for reg in (result.registration.creg, result.registration.cgreg, result.registration.cereg):
        assert reg is not None and reg.stat is RegistrationStat.HOME and reg.n == 0
    assert result.registration.registered and result.registration.data_registered
    assert not result.registration.roaming
    assert result.operator is not None and result.operator.name == HOME_OPERATOR
    assert result.operator.technology == "E-UTRAN"
    assert result.urcs == ()
    # ModemManager's init: echo off and numeric CME errors, before any query.
    assert bytes(sim.received).startswith(b"AT\rATE0\rAT+CMEE=1\r")
    assert sim.echo is False


def test_echo_left_on_gives_the_same_result() -> None:
    sim = ModemSimulator()
    with modem_on(sim, echo_off=False) as modem:
        result = modem.probe()
    assert sim.echo is True
    assert b"ATE0" not in bytes(sim.received)
    assert result == probe()


def test_modem_with_echo_already_off() -> None:
    assert probe(echo=False) == probe()


def test_commands_are_sent_with_cr_only() -> None:
    sim = ModemSimulator()
    with modem_on(sim) as modem:
        modem.command("AT+CSQ")
    assert bytes(sim.received) == b"AT+CSQ\r"


def test_registration_with_location_n2() -> None:
    with modem_on(ModemSimulator()) as modem:
        modem.command("AT+CEREG=2")
        modem.command("AT+CREG=2")
        regs = modem.registration()
    assert regs.cereg is not None and regs.creg is not None and regs.cgreg is not None
    assert (regs.cereg.n, regs.cereg.area, regs.cereg.cell_id, regs.cereg.technology) == (
        2, TAC, CELL_ID, "E-UTRAN")
    assert regs.creg.n == 2 and regs.cgreg.n == 0
    assert regs.best is regs.cereg and regs.stat is RegistrationStat.HOME


def test_modules_without_cgmi_qcsq_or_cereg() -> None:
    unsupported = {"AT+CGMI", "AT+QCSQ", "AT+CEREG?"}
    sim = ModemSimulator(unsupported=unsupported)
    with modem_on(sim) as modem:
        result = modem.probe()
    assert b"ATI\r" in bytes(sim.received)  # identity fell back to V.250 ATI
    assert result.identity == Identity("Quectel", "EC25", "EC25EFAR06A06M4G", IMEI)
    assert result.signal.rssi_dbm == -73 and result.signal.quectel is None
    assert result.signal.rsrp_dbm is None and result.signal.sinr_db is None
    assert result.registration.cereg is None and result.registration.registered


def test_stale_bytes_are_not_taken_for_the_answer() -> None:
    sim = ModemSimulator()
    with modem_on(sim) as modem:
        sim.send(b"\r\nOK\r\n\r\n+CSQ: 3,99\r\n")  # e.g. the late answer to a timed-out command
        time.sleep(0.1)
        response = modem.command("AT+CSQ")
    assert response.lines == ("+CSQ: 20,99",)


@pytest.mark.parametrize("text", ["HELLO", "AT\rATZ", "AT+CSQ\nAT", "AT+COPS=\u00e9"])
def test_command_refuses_anything_but_one_at_line(text: str) -> None:
    with modem_on(ModemSimulator()) as modem, pytest.raises(ValueError):
        modem.command(text)


@pytest.mark.parametrize("settings", [{"timeout_s": 0}, {"sim_timeout_s": -1},
                                      {"sync_attempts": 0}, {"poll_s": 0}])
def test_bad_settings_are_refused(settings: dict[str, float]) -> None:
    with ModemSimulator() as sim:
        port = serial.serial_for_url(sim.port, baudrate=115200, timeout=0.1)
        try:
            with pytest.raises(ValueError):
                Modem(port, **settings)  # type: ignore[arg-type]
        finally:
            port.close()


# -- SIM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "state"), [
    ("no_sim", SimState.NOT_INSERTED), ("pin_locked", SimState.SIM_PIN),
    ("puk_locked", SimState.SIM_PUK),
])
def test_sim_problems_are_results(fault: str, state: SimState) -> None:
    result = probe(fault)
    assert result.sim is state
    assert not result.sim.usable
    assert result.registration.stat is RegistrationStat.NOT_REGISTERED
    assert not result.registration.registered
    assert result.operator is not None and result.operator.name is None
    assert result.signal.rssi_dbm == -73  # the radio still measures


def test_verbose_cme_no_sim_without_probe_setup() -> None:
    with modem_on(ModemSimulator(faults=("no_sim",), cmee=2)) as modem:
        with pytest.raises(AtCommandError) as info:
            modem.command("AT+CPIN?")
        assert (info.value.code, info.value.text) == (10, "SIM not inserted")
        assert modem.sim_state() is SimState.NOT_INSERTED


def test_plain_error_for_cpin_cannot_be_read_as_a_sim_state() -> None:
    sim = ModemSimulator(faults=("no_sim",), cmee=0)
    with modem_on(sim) as modem, pytest.raises(AtCommandError) as info:
        modem.sim_state()
    assert info.value.kind == "error"
    assert info.value.device is not None


def test_probe_turns_numeric_cme_on_for_a_plain_error_modem() -> None:
    assert probe("no_sim", cmee=0).sim is SimState.NOT_INSERTED


# -- signal ------------------------------------------------------------------------------------


def test_weak_signal_is_a_result() -> None:
    result = probe("weak_signal")
    assert result.signal.rssi_dbm == -101
    assert result.signal.csq.rssi == 6
    assert result.signal.rsrp_dbm == -128 and result.signal.sinr_db == -8.0


@pytest.mark.parametrize(("csq", "dbm", "ber"), [
    ((0, 99), -113, None), ((1, 99), -111, None), ((2, 0), -109, 0), ((30, 7), -53, 7),
    ((31, 3), -51, 3),
])
def test_configured_csq_edges(csq: tuple[int, int], dbm: int, ber: int | None) -> None:
    result = probe("weak_signal", csq=csq)
    assert (result.signal.rssi_dbm, result.signal.ber) == (dbm, ber)


def test_no_signal() -> None:
    result = probe("no_signal")
    assert result.signal.rssi_dbm is None
    assert result.signal.quectel is not None and result.signal.quectel.sysmode == "NOSERVICE"
    assert result.signal.rsrp_dbm is None


# -- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "stat"), [
    ("not_registered", RegistrationStat.NOT_REGISTERED),
    ("searching", RegistrationStat.SEARCHING),
    ("denied", RegistrationStat.DENIED),
])
def test_unregistered_states_are_results(fault: str, stat: RegistrationStat) -> None:
    result = probe(fault)
    regs = result.registration
    assert regs.creg is not None and regs.cgreg is not None and regs.cereg is not None
    assert regs.creg.stat is regs.cgreg.stat is regs.cereg.stat is stat
    assert not regs.registered and not regs.data_registered and regs.stat is stat
    assert result.operator is not None and result.operator.name is None
    assert result.sim is SimState.READY


def test_roaming() -> None:
    result = probe("roaming")
    assert result.registration.stat is RegistrationStat.ROAMING
    assert result.registration.registered and result.registration.roaming
    assert result.operator is not None and result.operator.name == ROAMING_OPERATOR


# -- URCs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("echo_off", [True, False])
def test_urcs_mid_response_are_set_aside(echo_off: bool) -> None:
    with modem_on(ModemSimulator(faults=("urc_mid_response",)), echo_off=echo_off) as modem:
        result = modem.probe()
    clean = probe()
    # The injected URCs say "searching", "denied", CSQ 3: none of that may leak into the result.
    assert (result.identity, result.sim, result.signal, result.registration, result.operator) == (
        clean.identity, clean.sim, clean.signal, clean.registration, clean.operator)
    assert {"RING", "+CEREG: 2", '+QIND: "csq",3,99'} <= set(result.urcs)
    assert result.urcs == modem.urcs


# -- failures that are errors ------------------------------------------------------------------


def test_silent_modem_times_out_quickly() -> None:
    start = time.monotonic()
    sim = ModemSimulator(faults=("silent",))
    with modem_on(sim, timeout_s=0.2) as modem, pytest.raises(DeviceTimeout) as info:
        modem.probe()
    elapsed = time.monotonic() - start
    assert info.value.timeout_s == 0.2
    assert bytes(sim.received).count(b"AT\r") == 2  # two AT attempts of 0.2 s, then it stops
    assert 2 * 0.2 <= elapsed < 2 * 0.2 + 3.0  # the ceiling only catches a hang


def test_port_opened_without_timeout_still_cannot_hang() -> None:
    start = time.monotonic()
    sim = ModemSimulator(faults=("silent",))
    with modem_on(sim, port_timeout=None) as modem, pytest.raises(DeviceTimeout):
        modem.command("AT", timeout_s=0.2)
    assert 0.2 <= time.monotonic() - start < 0.2 + 3.0  # the ceiling only catches a hang


def test_per_command_timeout() -> None:
    # The modem's own timeout is far from the command's, so load cannot blur which one applied.
    with modem_on(ModemSimulator(faults=("silent",)), timeout_s=30.0) as modem:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            modem.command("AT+CPIN?", timeout_s=0.15)
        elapsed = time.monotonic() - start
    assert info.value.timeout_s == 0.15
    assert 0.15 <= elapsed < 0.15 + 3.0


def test_slow_modem_within_the_timeout_works() -> None:
    sim = ModemSimulator(faults=("slow",), slow_delay_s=0.03)
    with modem_on(sim, timeout_s=0.5, sim_timeout_s=0.5) as modem:
        assert modem.probe() == probe()


def test_slow_modem_beyond_the_timeout_times_out() -> None:
    sim = ModemSimulator(faults=("slow",), slow_delay_s=0.7)
    with modem_on(sim, timeout_s=0.2) as modem, pytest.raises(DeviceTimeout):
        modem.probe()


def test_garbled_line_is_a_protocol_error_of_that_command_only() -> None:
    sim = ModemSimulator(faults=("garbled",))
    with modem_on(sim) as modem:
        with pytest.raises(ProtocolError) as info:
            modem.command("AT+CSQ")
        assert info.value.kind == "garbled"
        assert info.value.device == sim.port
        # The answer was read to its final code: the next command gets its own answer.
        assert modem.command("AT+CPIN?").lines == ("+CPIN: READY",)
        result = modem.probe()
    assert result.signal.csq.rssi is None
    assert any(u.startswith("AT+CSQ: control characters") for u in result.unreadable)
    assert result.registration.registered and result.sim is SimState.READY


def test_out_of_spec_value_is_named_and_the_rest_kept() -> None:
    sim = ModemSimulator(csq=(45, 99))  # 32..98 are not 27.007 values
    with modem_on(sim) as modem:
        result = modem.probe()
    assert (result.signal.csq.rssi, result.signal.csq.ber) == (None, 99)
    assert "+CSQ <rssi> '45'" in result.unreadable
    assert result.registration.registered


@pytest.mark.parametrize("command", ["AT+CSQ", "AT+CPIN?", "AT+COPS?"])
def test_unplug_mid_command_is_a_driver_error(command: str) -> None:
    sim = ModemSimulator(faults=("unplug_mid_command",), fault_command=command)
    with modem_on(sim) as modem, pytest.raises(DriverError) as info:
        modem.probe()
    assert isinstance(info.value, DeviceNotFound)
    assert not isinstance(info.value, OSError)
    assert "disconnected" in str(info.value)
    assert info.value.__cause__ is not None


def test_unplugged_before_the_command() -> None:
    sim = ModemSimulator()
    with modem_on(sim) as modem:
        sim.unplug()
        with pytest.raises(DeviceNotFound):
            modem.command("AT")


def test_simulator_rejects_unknown_faults() -> None:
    with pytest.raises(ValueError):
        ModemSimulator(faults=("on_fire",))
