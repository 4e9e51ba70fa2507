"""The printer check through the real config builder and runner, against the TM-T20-class
simulator on a real pty: every fault mode, both transports (serial and usblp), port problems."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_check

from posdiag.checks.printer import SPEC, PrinterConfig
from posdiag.config import build
from posdiag.drivers import discovery
from posdiag.drivers.discovery import DiscoveredDevice, load_device_table
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status
from simulators.escpos_printer import FAULTS, EscPosPrinterSimulator

FAST = 0.3  # reply timeout against simulators that never answer


def check(sim: EscPosPrinterSimulator, **cfg: Any) -> CheckResult:
    return run_check(SPEC, port=sim.port, required=True, **{"reply_timeout_s": FAST, **cfg})


def probed(*faults: str, **cfg: Any) -> CheckResult:
    with EscPosPrinterSimulator(faults=faults) as sim:
        return check(sim, **cfg)


FLAGS = ("online", "paper_near_end", "paper_end", "cover_open", "error", "cutter_error",
         "unrecoverable_error", "auto_recoverable_error")


def flags(result: CheckResult) -> set[str]:
    return {name for name in FLAGS if result.metrics[name]}


@pytest.mark.parametrize("transport", ["serial", "usblp"])
def test_ready_printer_is_ok_with_every_flag(transport: str) -> None:
    sim = EscPosPrinterSimulator()
    with sim:
        result = check(sim, transport=transport)
    assert (result.status, result.reason) == (Status.OK, "ok")
    assert result.summary == "receipt printer online, paper loaded, cover closed, no error"
    assert bytes(sim.received) == b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"
    m = result.metrics
    assert m["printer_transport"] == transport
    assert (m["port"], m["found_via"]) == (sim.port, "config")
    assert m["status_bytes"] == "12121212"
    assert flags(result) == {"online"}
    assert m["feed_button"] is m["drawer_pin_high"] is m["mechanical_error"] is False


def test_auto_transport_picks_serial_for_a_tty() -> None:
    assert probed().metrics["printer_transport"] == "serial"


def test_drawer_pin_is_reported_without_a_finding() -> None:
    with EscPosPrinterSimulator(drawer_pin_high=True) as sim:
        result = check(sim)
    assert result.status is Status.OK
    assert result.metrics["drawer_pin_high"] is True
    assert result.metrics["status_bytes"] == "16121212"


# fault -> (status, reason, summary fragment, hint, flags set)
STATE_FAULTS = {
    "paper_out": (Status.FAIL, "paper_out", "out of paper", "printer.load_paper",
                  {"paper_end"}),
    "paper_near_end": (Status.WARN, "paper_low", "nearly used up", "printer.replace_paper_soon",
                       {"online", "paper_near_end"}),
    "cover_open": (Status.FAIL, "cover_open", "cover is open", "printer.close_cover",
                   {"cover_open"}),
    "offline": (Status.FAIL, "printer_offline", "offline and reports no cause",
                "printer.bring_online", set()),
    "cutter_error": (Status.FAIL, "printer_error", "auto-cutter error", "printer.clear_cutter",
                     {"error", "cutter_error"}),
    "unrecoverable_error": (Status.FAIL, "printer_error", "unrecoverable error",
                            "printer.service", {"error", "unrecoverable_error"}),
    "auto_recoverable_error": (Status.FAIL, "printer_error", "auto-recoverable error",
                               "printer.wait_to_cool", {"error", "auto_recoverable_error"}),
}


@pytest.mark.parametrize("transport", ["serial", "usblp"])
@pytest.mark.parametrize("fault", sorted(STATE_FAULTS))
def test_printer_states(fault: str, transport: str) -> None:
    status, reason, fragment, hint, expected_flags = STATE_FAULTS[fault]
    result = probed(fault, transport=transport)
    assert (result.status, result.reason) == (status, reason)
    assert fragment in result.summary
    assert result.hints == (hint,)
    assert flags(result) == expected_flags
    assert len(result.findings) == 1  # one root cause, one finding


def test_every_simulator_fault_mode_is_covered_here() -> None:
    # State faults above; transport faults in the tests below.
    assert set(STATE_FAULTS) | {"corrupted", "silent", "slow", "unplug"} == FAULTS


def test_cover_open_and_paper_out_both_reported_cover_first() -> None:
    result = probed("paper_out", "cover_open")
    assert (result.status, result.reason) == (Status.FAIL, "cover_open")
    assert [f.reason for f in result.findings] == ["cover_open", "paper_out"]
    assert result.hints == ("printer.close_cover", "printer.load_paper")
    assert "printer_offline" not in {f.reason for f in result.findings}


def test_error_with_paper_low_fails_and_keeps_the_warning() -> None:
    result = probed("paper_near_end", "cutter_error")
    assert (result.status, result.reason) == (Status.FAIL, "printer_error")
    assert [(f.status, f.reason) for f in result.findings] == [
        (Status.FAIL, "printer_error"), (Status.WARN, "paper_low")]


def test_paper_out_supersedes_paper_low() -> None:
    result = probed("paper_out", "paper_near_end")
    assert [f.reason for f in result.findings] == ["paper_out"]


def test_corrupted_replies_are_a_protocol_error() -> None:
    result = probed("corrupted")
    assert (result.status, result.reason) == (Status.FAIL, "protocol_error")
    assert result.metrics["protocol_error_kind"] == "framing"
    assert "0xx1xx10" in result.summary
    assert "online" not in result.metrics  # no status was decoded


@pytest.mark.parametrize("transport", ["serial", "usblp"])
def test_silent_printer_costs_one_reply_timeout(transport: str) -> None:
    with EscPosPrinterSimulator(faults=["silent"]) as sim:
        start = time.monotonic()
        result = check(sim, transport=transport)
        elapsed = time.monotonic() - start
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert result.summary == f"receipt printer did not answer within {FAST:g} s on " \
                             f"{result.metrics['port']}"
    assert result.hints == ("printer.check_connection",)
    assert bytes(sim.received) == b"\x10\x04\x01"  # one request: the probe stops at its timeout
    assert FAST <= elapsed < FAST + 3.0  # waited out; the ceiling catches a hang


def test_slow_printer_within_its_timeout_is_ok() -> None:
    with EscPosPrinterSimulator(faults=["slow"], slow_delay_s=0.1) as sim:
        result = check(sim)
    assert result.status is Status.OK
    assert result.duration_ms >= 4 * 100


@pytest.mark.parametrize("transport", ["serial", "usblp"])
def test_unplugged_mid_probe_is_no_device(transport: str) -> None:
    with EscPosPrinterSimulator(faults=["unplug"], unplug_at=2) as sim:
        result = check(sim, transport=transport)
    assert (result.status, result.reason) == (Status.FAIL, "no_device")
    assert "disconnected" in result.summary
    assert result.hints == ("printer.check_connection",)


# -- finding the port ------------------------------------------------------------------------


def test_configured_port_that_does_not_exist_is_no_device(tmp_path: Path) -> None:
    result = run_check(SPEC, port=str(tmp_path / "ttyUSB9"))
    assert (result.status, result.reason) == (Status.FAIL, "no_device")
    assert result.metrics["found_via"] == "config"


def test_configured_usblp_node_that_does_not_exist_is_no_device(tmp_path: Path) -> None:
    result = run_check(SPEC, port=str(tmp_path / "lp0"), transport="usblp")
    assert (result.status, result.reason) == (Status.FAIL, "no_device")
    assert "no such printer node" in result.summary


@pytest.fixture
def no_usb_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "find", lambda kind, **kw: [])


@pytest.mark.usefixtures("no_usb_devices")
def test_nothing_discovered_and_not_required_is_skipped() -> None:
    result = run_check(SPEC)
    assert (result.status, result.reason) == (Status.SKIPPED, "no_device")
    assert "no receipt printer found on USB" in result.summary


@pytest.mark.usefixtures("no_usb_devices")
def test_nothing_discovered_but_required_fails() -> None:
    result = run_check(SPEC, required=True)
    assert (result.status, result.reason) == (Status.FAIL, "no_device")
    assert result.hints == ("printer.check_connection",)


def test_discovered_printer_is_probed_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = load_device_table().lookup("04b8", "0202")
    with EscPosPrinterSimulator(faults=["paper_near_end"]) as sim:
        found = DiscoveredDevice(
            vid="04b8", pid="0202", vendor="Seiko Epson", model=entry.model if entry else None,
            serial="J7RF012345", devnode=sim.port, subsystem="usbmisc", by_id=None,
            interface_number=0, kernel_driver="usblp", usb_manufacturer="EPSON",
            usb_product="TM-T70", sys_path="/sys/fake", modemmanager_ignored=False,
            match=entry)
        kinds: list[str] = []
        monkeypatch.setattr(discovery, "find",
                            lambda kind, **kw: kinds.append(kind) or [found])
        result = run_check(SPEC, reply_timeout_s=FAST)
    assert kinds == ["printer"]
    assert (result.status, result.reason) == (Status.WARN, "paper_low")
    m = result.metrics
    assert (m["found_via"], m["port"]) == ("udev", sim.port)
    assert (m["device_vendor"], m["device_model"]) == (
        "Seiko Epson", "TM series receipt printer (M129C/TM-T70)")


HOLDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
with open("/proc/self/comm", "w") as comm:
    comm.write("cupsd")
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held(request: pytest.FixtureRequest) -> Iterator[tuple[EscPosPrinterSimulator, int]]:
    with EscPosPrinterSimulator() as sim:
        child = subprocess.Popen([sys.executable, "-c", HOLDER, sim.port],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            yield sim, child.pid
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=5)


@pytest.mark.parametrize("transport", ["serial", "usblp"])
def test_port_held_by_another_process_is_port_busy(
        held: tuple[EscPosPrinterSimulator, int], transport: str) -> None:
    sim, pid = held
    result = check(sim, transport=transport)
    assert (result.status, result.reason) == (Status.FAIL, "port_busy")
    assert result.metrics["port_holder"] == "cupsd"
    assert f"cupsd (pid {pid})" in result.summary
    assert result.hints == ("device.free_port",)
    assert bytes(sim.received) == b""  # nothing was sent into someone else's print job


# -- configuration ---------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = PrinterConfig()
    assert (cfg.driver, cfg.transport, cfg.baudrate, cfg.reply_timeout_s) == (
        "auto", "auto", 9600, 1.0)
    assert cfg.required is False and cfg.port == ""
    # The check's own deadline covers four full reply timeouts.
    assert SPEC.timeout_s > 4 * cfg.reply_timeout_s


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("driver", "star", "must be one of 'auto', 'escpos'"),
    ("transport", "usb", "must be one of 'auto', 'serial', 'usblp'"),
    ("reply_timeout_s", 0.0, "must be between 0.05 and 10"),
    ("baudrate", 0, "must be between 300"),
])
def test_bad_config_is_rejected(key: str, value: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build({"checks": {"printer": {key: value}}}, {"printer": PrinterConfig})
