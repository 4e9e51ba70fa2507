"""The EscPosPrinter driver against the TM-T20-class simulator on a real pty, every fault mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import serial

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError
from posdiag.drivers.escpos import EscPosPrinter, PrinterStatus, StatusKind
from simulators.escpos_printer import EscPosPrinterSimulator

REQUESTS = b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"


@contextmanager
def printer_on(sim: EscPosPrinterSimulator, *, port_timeout: float | None = 1.0,
               **kwargs: Any) -> Iterator[EscPosPrinter]:
    with sim:
        port = serial.serial_for_url(sim.port, baudrate=19200, timeout=port_timeout)
        try:
            yield EscPosPrinter(port, **{"timeout_s": 0.3, **kwargs})
        finally:
            port.close()


def status(*faults: str, **sim_kwargs: Any) -> PrinterStatus:
    with printer_on(EscPosPrinterSimulator(faults=faults, **sim_kwargs)) as printer:
        return printer.probe()


def test_ready_printer() -> None:
    sim = EscPosPrinterSimulator()
    with printer_on(sim) as printer:
        result = printer.probe()
    assert bytes(sim.received) == REQUESTS  # byte-exact, one request per status
    assert result.raw == b"\x12\x12\x12\x12"
    assert result.online and not result.error
    assert not (result.paper_end or result.paper_near_end or result.cover_open)


# (faults, raw replies n=1..4, flags that must be set)
FAULT_TABLE = [
    (("paper_out",), b"\x1a\x32\x12\x72", {"paper_end"}),
    (("paper_near_end",), b"\x12\x12\x12\x1e", {"paper_near_end"}),
    (("cover_open",), b"\x1a\x16\x12\x12", {"cover_open"}),
    (("offline",), b"\x1a\x12\x12\x12", set()),
    (("cutter_error",), b"\x1a\x52\x1a\x12", {"cutter_error", "error"}),
    (("unrecoverable_error",), b"\x1a\x52\x32\x12", {"unrecoverable_error", "error"}),
    (("auto_recoverable_error",), b"\x1a\x52\x52\x12", {"auto_recoverable_error", "error"}),
    (("paper_out", "cover_open"), b"\x1a\x36\x12\x72", {"paper_end", "cover_open"}),
    (("paper_near_end", "cutter_error"), b"\x1a\x52\x1a\x1e",
     {"paper_near_end", "cutter_error", "error"}),
]
FLAGS = ("paper_end", "paper_near_end", "cover_open", "cutter_error", "unrecoverable_error",
         "auto_recoverable_error", "mechanical_error", "error", "feed_button", "drawer_pin_high")


@pytest.mark.parametrize(("faults", "raw", "flags"), FAULT_TABLE)
def test_printer_states_are_results(faults: tuple[str, ...], raw: bytes, flags: set[str]) -> None:
    result = status(*faults)
    assert result.raw == raw
    assert {flag for flag in FLAGS if getattr(result, flag)} == flags
    assert result.online is (faults == ("paper_near_end",))


def test_drawer_pin() -> None:
    result = status(drawer_pin_high=True)
    assert result.drawer_pin_high and result.online
    assert result.raw[0] == 0x16


def test_single_query() -> None:
    sim = EscPosPrinterSimulator(faults=("paper_out",))
    with printer_on(sim) as printer:
        paper = printer.query(StatusKind.PAPER_SENSOR)
    assert bytes(sim.received) == b"\x10\x04\x04"
    assert paper.paper_end and paper.raw == 0x72


def test_stale_byte_is_not_taken_for_the_reply() -> None:
    sim = EscPosPrinterSimulator()
    with printer_on(sim) as printer:
        sim.send(b"\x93")  # e.g. a late or corrupted reply from before
        time.sleep(0.1)
        assert printer.probe().raw == b"\x12\x12\x12\x12"


def test_corrupted_reply_is_a_framing_error() -> None:
    sim = EscPosPrinterSimulator(faults=("corrupted",))
    with printer_on(sim) as printer, pytest.raises(ProtocolError) as info:
        printer.probe()
    assert info.value.kind == "framing"
    assert info.value.device == sim.port


def test_silent_printer_times_out_quickly() -> None:
    start = time.monotonic()
    sim = EscPosPrinterSimulator(faults=("silent",))
    with printer_on(sim, timeout_s=0.2) as printer, pytest.raises(DeviceTimeout) as info:
        printer.probe()
    assert info.value.timeout_s == 0.2
    assert 0.2 <= time.monotonic() - start < 0.2 + 3.0  # the ceiling only catches a hang
    assert bytes(sim.received) == REQUESTS[:3]  # the first missing reply ends the probe


def test_port_opened_without_timeout_still_cannot_hang() -> None:
    start = time.monotonic()
    sim = EscPosPrinterSimulator(faults=("silent",))
    with printer_on(sim, port_timeout=None, timeout_s=0.2) as printer, \
            pytest.raises(DeviceTimeout):
        printer.query(1)
    assert 0.2 <= time.monotonic() - start < 0.2 + 3.0  # the ceiling only catches a hang


def test_slow_printer_within_the_timeout_works() -> None:
    sim = EscPosPrinterSimulator(faults=("slow", "paper_near_end"), slow_delay_s=0.05)
    with printer_on(sim, timeout_s=0.3) as printer:
        assert printer.probe().paper_near_end


def test_slow_printer_beyond_the_timeout_times_out() -> None:
    sim = EscPosPrinterSimulator(faults=("slow",), slow_delay_s=0.5)
    with printer_on(sim, timeout_s=0.2) as printer, pytest.raises(DeviceTimeout):
        printer.probe()


@pytest.mark.parametrize("unplug_at", [1, 2, 4])
def test_unplug_is_a_driver_error(unplug_at: int) -> None:
    sim = EscPosPrinterSimulator(faults=("unplug",), unplug_at=unplug_at)
    with printer_on(sim) as printer, pytest.raises(DriverError) as info:
        printer.probe()
    assert isinstance(info.value, DeviceNotFound)
    assert not isinstance(info.value, OSError)
    assert "disconnected" in str(info.value)


def test_unplugged_before_the_query() -> None:
    sim = EscPosPrinterSimulator()
    with printer_on(sim) as printer:
        sim.unplug()
        with pytest.raises(DeviceNotFound):
            printer.query(1)


def test_bad_settings_are_refused() -> None:
    with EscPosPrinterSimulator() as sim:
        port = serial.serial_for_url(sim.port, baudrate=19200, timeout=0.1)
        try:
            with pytest.raises(ValueError):
                EscPosPrinter(port, timeout_s=0)
        finally:
            port.close()


# -- the simulator is byte-exact too -----------------------------------------------------------


@contextmanager
def raw_port(sim: EscPosPrinterSimulator) -> Iterator[serial.Serial]:
    with sim:
        port = serial.serial_for_url(sim.port, baudrate=19200, timeout=0.2)
        try:
            yield port
        finally:
            port.close()


def test_simulator_recognises_a_request_split_across_writes() -> None:
    with raw_port(EscPosPrinterSimulator(faults=("cover_open",))) as port:
        for piece in (b"\x1b@\x10", b"\x04", b"\x02"):
            port.write(piece)
            time.sleep(0.02)
        assert port.read(2) == b"\x16"


def test_simulator_ignores_print_data_and_other_n() -> None:
    with raw_port(EscPosPrinterSimulator()) as port:
        port.write(b"Hello\n\x10\x04\x05\x10\x04\x00" + b"\x1dV\x00")
        assert port.read(1) == b""


def test_simulator_rejects_unknown_faults() -> None:
    with pytest.raises(ValueError):
        EscPosPrinterSimulator(faults=("jammed",))
