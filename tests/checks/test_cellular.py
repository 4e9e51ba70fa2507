"""The cellular check through the real config builder and runner, against the Quectel EC25-like
simulator on a real pty: every fault mode, the signal thresholds, roaming, IMEI handling."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_check

from posdiag.checks.cellular import SPEC, CellularConfig
from posdiag.config import build
from posdiag.drivers import discovery
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status
from simulators.modem import FAULTS, IMEI, ModemSimulator

FAST = 0.3  # command timeout against modems that never answer


def check(sim: ModemSimulator, **cfg: Any) -> CheckResult:
    return run_check(SPEC, port=sim.port, required=True,
                     **{"command_timeout_s": FAST, "sim_timeout_s": FAST, **cfg})


def probed(*faults: str, sim_kwargs: dict[str, Any] | None = None, **cfg: Any) -> CheckResult:
    with ModemSimulator(faults=faults, **(sim_kwargs or {})) as sim:
        return check(sim, **cfg)


def test_healthy_modem_is_ok_with_metrics() -> None:
    result = probed()
    assert (result.status, result.reason) == (Status.OK, "ok")
    assert result.summary == ("registered on Example Mobile, E-UTRAN, signal -73 dBm, "
                              "RSRP -100 dBm")
    assert result.metrics == {
        "port": result.metrics["port"], "found_via": "config", "device_vendor": None,
        "device_model": None,
        "modem_manufacturer": "Quectel", "modem_model": "EC25",
        "modem_revision": "EC25EFAR06A06M4G", "sim_state": "ready",
        "signal_dbm": -73, "signal_percent": 64, "ber": None, "service_mode": "LTE",
        "rsrp_dbm": -100, "rsrq_db": -10, "sinr_db": 20.0,
        "creg_stat": 1, "cgreg_stat": 1, "cereg_stat": 1, "registration": "home",
        "access_technology": "E-UTRAN", "operator": "Example Mobile", "roaming": False,
        "unreadable_fields": None,
    }


def test_imei_is_not_reported_unless_asked() -> None:
    with ModemSimulator() as sim:
        default = check(sim)
        opted_in = check(sim, report_imei=True)
    assert "modem_imei" not in default.metrics
    assert IMEI not in repr(default.to_dict())
    assert opted_in.metrics["modem_imei"] == IMEI


# -- every simulator fault mode ----------------------------------------------------------------

# fault -> (status, reason, summary, hints)
FAULT_TABLE: dict[str, tuple[Status, str, str, tuple[str, ...]]] = {
    "no_sim": (Status.FAIL, "sim_missing", "no SIM card detected (+CME ERROR: 10)",
               ("cellular.insert_sim",)),
    "pin_locked": (Status.FAIL, "sim_locked", "SIM card is locked: SIM PIN required",
                   ("cellular.unlock_sim",)),
    "puk_locked": (Status.FAIL, "sim_locked", "SIM card is locked: SIM PUK required",
                   ("cellular.unlock_sim",)),
    "weak_signal": (Status.WARN, "weak_signal", "mobile signal -101 dBm (warn at -95 dBm)",
                    ("cellular.improve_signal",)),
    "no_signal": (Status.FAIL, "no_signal", "no mobile signal (+CSQ: 99,99)",
                  ("cellular.improve_signal",)),
    "not_registered": (Status.FAIL, "not_registered",
                       "modem not registered and not searching (+CEREG: 0, +CGREG: 0)",
                       ("cellular.wait_for_network",)),
    "searching": (Status.FAIL, "not_registered",
                  "modem not registered, searching for a network (+CEREG: 2, +CGREG: 2)",
                  ("cellular.wait_for_network",)),
    "denied": (Status.FAIL, "registration_denied",
               "mobile network denied registration (+CEREG: 3, +CGREG: 3)",
               ("cellular.contact_operator",)),
    "roaming": (Status.OK, "ok", "registered on Partner Roam, E-UTRAN, signal -73 dBm, "
                "RSRP -100 dBm, roaming", ()),
    "urc_mid_response": (Status.OK, "ok", "registered on Example Mobile, E-UTRAN, "
                         "signal -73 dBm, RSRP -100 dBm", ()),
    "slow": (Status.OK, "ok", "registered on Example Mobile, E-UTRAN, signal -73 dBm, "
             "RSRP -100 dBm", ()),
}
TRANSPORT_FAULTS = {"silent", "garbled", "unplug_mid_command"}


def test_every_simulator_fault_mode_is_covered_here() -> None:
    assert set(FAULT_TABLE) | TRANSPORT_FAULTS == FAULTS


@pytest.mark.parametrize("fault", sorted(FAULT_TABLE))
def test_fault_modes(fault: str) -> None:
    status, reason, summary, hints = FAULT_TABLE[fault]
    sim_kwargs = {"slow_delay_s": 0.02} if fault == "slow" else {}
    result = probed(fault, sim_kwargs=sim_kwargs)
    assert (result.status, result.reason, result.summary) == (status, reason, summary)
    assert result.hints == hints
    if status is not Status.OK:
        assert len(result.findings) == 1  # one root cause, one finding


def test_sim_problems_stop_before_registration() -> None:
    result = probed("no_sim")
    m = result.metrics
    assert (m["sim_state"], m["registration"], m["cereg_stat"]) == (
        "not_inserted", "not_registered", 0)
    assert [f.reason for f in result.findings] == ["sim_missing"]


def test_locked_sim_state_is_a_metric() -> None:
    assert probed("puk_locked").metrics["sim_state"] == "sim_puk"


def test_registration_metrics_per_domain() -> None:
    denied = probed("denied").metrics
    assert (denied["creg_stat"], denied["cgreg_stat"], denied["cereg_stat"]) == (3, 3, 3)
    assert denied["registration"] == "denied" and denied["operator"] is None
    roaming = probed("roaming").metrics
    assert (roaming["registration"], roaming["roaming"], roaming["operator"]) == (
        "roaming", True, "Partner Roam")


def test_roaming_warns_only_when_not_allowed() -> None:
    result = probed("roaming", roaming_allowed=False)
    assert (result.status, result.reason) == (Status.WARN, "roaming")
    assert result.summary == "modem is roaming on operator Partner Roam; roaming_allowed = false"
    assert result.hints == ("cellular.check_roaming",)
    assert probed(roaming_allowed=False).status is Status.OK  # home network


def test_weak_signal_with_no_registration_reports_both_worst_first() -> None:
    result = probed("searching", sim_kwargs={"csq": (3, 99)})
    assert (result.status, result.reason) == (Status.FAIL, "weak_signal")
    assert [(f.status, f.reason) for f in result.findings] == [
        (Status.FAIL, "weak_signal"), (Status.FAIL, "not_registered")]


def test_no_signal_and_not_registered_is_one_finding() -> None:
    result = probed("no_signal", "searching")
    assert [f.reason for f in result.findings] == ["no_signal"]


def test_silent_modem_costs_two_bounded_attempts() -> None:
    with ModemSimulator(faults=["silent"]) as sim:
        start = time.monotonic()
        result = check(sim)
        elapsed = time.monotonic() - start
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert result.summary == f"cellular modem did not answer within {FAST:g} s on " \
                             f"{result.metrics['port']}"
    assert result.hints == ("cellular.check_modem",)
    assert bytes(sim.received).count(b"AT\r") == 2  # AT is tried twice (autobaud), then it stops
    assert 2 * FAST <= elapsed < 2 * FAST + 3.0  # both waited out; the ceiling catches a hang


def test_garbled_csq_line_is_named_and_the_rest_is_kept() -> None:
    # Line noise in the +CSQ answer: the signal is unreadable, registration still decides.
    result = probed("garbled")
    assert (result.status, result.reason) == (Status.OK, "ok")
    assert result.metrics["signal_dbm"] is None and result.metrics["rsrp_dbm"] == -100
    assert "AT+CSQ: control characters" in str(result.metrics["unreadable_fields"])


def test_garbled_csq_without_other_figures_is_a_named_warning() -> None:
    result = probed("garbled", sim_kwargs={"unsupported": {"AT+QCSQ"}})
    assert (result.status, result.reason) == (Status.WARN, "modem_field_unreadable")
    assert result.summary.startswith("could not read the modem's signal: AT+CSQ: control")
    assert result.hints == ("cellular.report_modem_answer",)


def test_unplug_mid_command_is_no_device() -> None:
    result = probed("unplug_mid_command")
    assert (result.status, result.reason) == (Status.FAIL, "no_device")
    assert "disconnected" in result.summary
    assert result.hints == ("cellular.check_modem",)


# -- thresholds --------------------------------------------------------------------------------


@pytest.mark.parametrize(("rssi", "dbm", "status"), [
    (10, -93, Status.OK),
    (9, -95, Status.WARN),  # at the warn threshold: warn
    (5, -103, Status.WARN),
    (4, -105, Status.FAIL),  # at the fail threshold: fail
    (0, -113, Status.FAIL),
])
def test_rssi_thresholds(rssi: int, dbm: int, status: Status) -> None:
    result = probed(sim_kwargs={"csq": (rssi, 99)})
    assert result.status is status
    assert result.metrics["signal_dbm"] == dbm
    if status is not Status.OK:
        assert result.reason == "weak_signal"
        assert f"{dbm} dBm" in result.summary


def test_thresholds_are_configurable() -> None:
    result = probed(sim_kwargs={"csq": (11, 0)}, signal_warn_dbm=-85, signal_fail_dbm=-90)
    assert (result.status, result.reason) == (Status.FAIL, "weak_signal")
    assert result.summary == "mobile signal -91 dBm (fail at -90 dBm)"
    assert result.metrics["ber"] == 0
    result = probed(sim_kwargs={"csq": (12, 0)}, signal_warn_dbm=-85, signal_fail_dbm=-90)
    assert (result.status, result.summary) == (
        Status.WARN, "mobile signal -89 dBm (warn at -85 dBm)")


def test_rsrp_decides_when_its_thresholds_are_set() -> None:
    # Healthy simulator: RSSI -73 dBm (fine), RSRP -100 dBm.
    warn = probed(rsrp_warn_dbm=-100, rsrp_fail_dbm=-110)
    assert (warn.status, warn.reason, warn.summary) == (
        Status.WARN, "weak_signal", "mobile LTE RSRP -100 dBm (warn at -100 dBm)")
    fail = probed(rsrp_fail_dbm=-95)
    assert (fail.status, fail.summary) == (
        Status.FAIL, "mobile LTE RSRP -100 dBm (fail at -95 dBm)")
    assert probed(rsrp_warn_dbm=-110).status is Status.OK


def test_without_qcsq_rssi_decides_even_with_rsrp_thresholds() -> None:
    result = probed("weak_signal", sim_kwargs={"unsupported": {"AT+QCSQ"}},
                    rsrp_warn_dbm=-100, rsrp_fail_dbm=-130)
    assert (result.status, result.reason) == (Status.WARN, "weak_signal")
    assert result.metrics["rsrp_dbm"] is None and result.metrics["service_mode"] is None


def test_unknown_signal_on_a_registered_modem_is_not_judged() -> None:
    # +CSQ 99 without +QCSQ: some LTE modules never fill +CSQ, yet they are registered.
    result = probed(sim_kwargs={"unsupported": {"AT+QCSQ"}, "csq": (99, 99)})
    assert result.status is Status.OK
    assert result.metrics["signal_dbm"] is None


def test_unknown_signal_and_not_registered_is_no_signal() -> None:
    result = probed("no_signal", "not_registered", sim_kwargs={"unsupported": {"AT+QCSQ"}})
    assert (result.status, result.reason, result.summary) == (
        Status.FAIL, "no_signal", "no mobile signal (+CSQ: 99,99)")


# -- modems that differ from the EC25 ----------------------------------------------------------


class QuirkyModem(ModemSimulator):
    """The EC25 simulator with some answers replaced: {command: (info lines, final code)}."""

    def __init__(self, answers: dict[str, tuple[list[str], str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers = answers

    def _answer(self, command: str) -> tuple[list[str], str]:
        if command in self.answers:
            return self.answers[command]
        return super()._answer(command)


def quirky(answers: dict[str, tuple[list[str], str]], **cfg: Any) -> CheckResult:
    with QuirkyModem(answers) as sim:
        return check(sim, **cfg)


def test_cme_error_that_is_not_a_sim_state_is_modem_error() -> None:
    result = quirky({"AT+CSQ": ([], "+CME ERROR: 100")})
    assert (result.status, result.reason) == (Status.FAIL, "modem_error")
    assert result.summary == "modem refused AT+CSQ: +CME ERROR: 100"
    assert (result.metrics["modem_error_command"], result.metrics["modem_error_code"]) == (
        "AT+CSQ", 100)
    assert result.hints == ("cellular.restart_modem",)


def test_plain_error_to_a_basic_command_is_modem_error() -> None:
    result = probed(sim_kwargs={"unsupported": {"AT+CSQ"}})
    assert (result.status, result.reason) == (Status.FAIL, "modem_error")
    assert result.summary == "modem refused AT+CSQ: ERROR"
    assert result.metrics["modem_error_code"] is None


def test_cme_sim_state_on_another_command_is_the_sim_finding() -> None:
    result = quirky({"AT+CSQ": ([], "+CME ERROR: 10")})
    assert (result.status, result.reason) == (Status.FAIL, "sim_missing")


@pytest.mark.parametrize(("code", "status", "summary", "hint"), [
    (13, Status.FAIL, "SIM card does not work (SIM failure)", "cellular.replace_sim"),
    (15, Status.FAIL, "SIM card does not work (SIM wrong)", "cellular.replace_sim"),
    (14, Status.WARN, "SIM card is still starting up (SIM busy)", "cellular.wait_for_network"),
])
def test_sim_errors(code: int, status: Status, summary: str, hint: str) -> None:
    result = quirky({"AT+CPIN?": ([], f"+CME ERROR: {code}")})
    assert (result.status, result.reason, result.summary) == (status, "sim_error", summary)
    assert result.hints == (hint,)


def test_network_lock_names_the_facility() -> None:
    result = quirky({"AT+CPIN?": (['+CPIN: "PH-NET PIN"'], "OK")})
    assert (result.reason, result.summary) == (
        "sim_locked", "SIM card is locked: PH-NET PIN required")
    assert result.metrics["sim_state"] == "ph_net_pin"


def test_registered_for_calls_but_not_data_is_not_registered() -> None:
    result = quirky({"AT+CREG?": (["+CREG: 0,1"], "OK"), "AT+CGREG?": (["+CGREG: 0,0"], "OK"),
                     "AT+CEREG?": (["+CEREG: 0,4"], "OK")})
    assert (result.status, result.reason, result.summary) == (
        Status.FAIL, "not_registered",
        "modem is registered for calls (+CREG) but not for data (+CEREG: 4, +CGREG: 0)")


def test_2g_module_without_packet_domains_is_judged_on_creg() -> None:
    result = probed(sim_kwargs={"unsupported": {"AT+CEREG?", "AT+CGREG?", "AT+QCSQ"}})
    assert result.status is Status.OK
    assert (result.metrics["cereg_stat"], result.metrics["cgreg_stat"],
            result.metrics["creg_stat"]) == (None, None, 1)


def test_modem_refusing_every_registration_query_is_modem_error() -> None:
    result = probed(sim_kwargs={"unsupported": {"AT+CEREG?", "AT+CGREG?", "AT+CREG?"}})
    assert (result.status, result.reason) == (Status.FAIL, "modem_error")
    assert result.summary == "modem answers none of +CREG?, +CGREG?, +CEREG?"


def test_registration_with_location_names_the_technology() -> None:
    result = quirky({"AT+CEREG?": (['+CEREG: 2,1,"D6E7","844D92A",7'], "OK"),
                     "AT+COPS?": (["+COPS: 0"], "OK")})
    assert result.status is Status.OK
    assert result.metrics["access_technology"] == "E-UTRAN"
    assert result.summary == "registered, E-UTRAN, signal -73 dBm, RSRP -100 dBm"


def test_identity_from_ati_on_modules_without_cgmi() -> None:
    result = probed(sim_kwargs={"unsupported": {"AT+CGMI"}})
    assert result.status is Status.OK
    assert (result.metrics["modem_manufacturer"], result.metrics["modem_model"]) == (
        "Quectel", "EC25")


# -- finding the port --------------------------------------------------------------------------


def test_configured_port_that_does_not_exist_is_no_device(tmp_path: Path) -> None:
    result = run_check(SPEC, port=str(tmp_path / "ttyUSB2"))
    assert (result.status, result.reason) == (Status.FAIL, "no_device")
    assert result.hints == ("cellular.check_modem",)


def test_nothing_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "find", lambda kind, **kw: [])
    optional = run_check(SPEC)
    assert (optional.status, optional.reason) == (Status.SKIPPED, "no_device")
    assert "no cellular modem found on USB" in optional.summary
    required = run_check(SPEC, required=True)
    assert (required.status, required.reason) == (Status.FAIL, "no_device")


HOLDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
with open("/proc/self/comm", "w") as comm:
    comm.write("ModemManager")
print("ready", flush=True)
sys.stdin.read()
"""


def test_port_held_by_modemmanager_is_port_busy() -> None:
    with ModemSimulator() as sim:
        child = subprocess.Popen([sys.executable, "-c", HOLDER, sim.port],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            result = check(sim)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=5)
        assert bytes(sim.received) == b""
    assert (result.status, result.reason) == (Status.FAIL, "port_busy")
    assert result.metrics["port_holder"] == "ModemManager"
    assert f"ModemManager (pid {child.pid})" in result.summary


# -- configuration -----------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = CellularConfig()
    assert (cfg.driver, cfg.baudrate, cfg.signal_warn_dbm, cfg.signal_fail_dbm) == (
        "auto", 115200, -95, -105)
    assert cfg.rsrp_warn_dbm is None and cfg.rsrp_fail_dbm is None
    assert cfg.roaming_allowed is True and cfg.report_imei is False
    # The check's deadline covers a silent modem (2 AT attempts) and a slow SIM.
    assert SPEC.timeout_s > 2 * cfg.command_timeout_s
    assert SPEC.timeout_s >= cfg.sim_timeout_s + 2 * cfg.command_timeout_s


@pytest.mark.parametrize(("table", "problem"), [
    ({"signal_warn_dbm": -105, "signal_fail_dbm": -95}, "signal_fail_dbm: must be below"),
    ({"signal_warn_dbm": -100, "signal_fail_dbm": -100}, "signal_fail_dbm: must be below"),
    ({"rsrp_warn_dbm": -120, "rsrp_fail_dbm": -110}, "rsrp_fail_dbm: must be below"),
    ({"rsrp_warn_dbm": -30}, "must be between -140 and -44"),
    ({"signal_warn_dbm": -120}, "must be between -113 and -51"),
    ({"driver": "qmi"}, "must be one of 'auto', 'at_modem'"),
    ({"command_timeout_s": 0}, "must be between 0.1 and 30"),
])
def test_bad_config_is_rejected(table: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build({"checks": {"cellular": table}}, {"cellular": CellularConfig})
