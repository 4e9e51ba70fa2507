"""The printer-node transport (usblp / parallel lp): bounded I/O, typed errors, and the ESC/POS
driver running over it unchanged.

A real pty stands in for the kernel's usblp node (same read/write/poll semantics with
O_NONBLOCK); /dev/null stands in for a node that reads as end-of-file.
"""

from __future__ import annotations

import grp
import os
import resource
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from posdiag.drivers import usblp
from posdiag.drivers.errors import (
    DeviceBusy,
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    NotSupported,
    PermissionDenied,
    ProtocolError,
)
from posdiag.drivers.escpos import EscPosPrinter
from posdiag.drivers.usblp import UsbLpPort, is_printer_node, open_usblp
from simulators.escpos_printer import EscPosPrinterSimulator
from simulators.pty_device import PtyDevice

FAST = 0.2


class Silent(PtyDevice):
    def on_bytes(self, data: bytes) -> None:
        pass


@pytest.fixture
def silent() -> Iterator[Silent]:
    with Silent() as device:
        yield device


# -- the ESC/POS driver over a printer node ---------------------------------------------------


def test_escpos_probe_over_the_node() -> None:
    with EscPosPrinterSimulator(faults=["paper_near_end"]) as sim, \
            open_usblp(sim.port, timeout_s=0.05) as port:
        status = EscPosPrinter(port, timeout_s=1.0).probe()
    assert status.raw == b"\x12\x12\x12\x1e"
    assert status.paper_near_end and status.online


def test_driver_errors_keep_their_meaning_over_the_node() -> None:
    with EscPosPrinterSimulator(faults=["corrupted"]) as sim, \
            open_usblp(sim.port, timeout_s=0.05) as port, \
            pytest.raises(ProtocolError) as info:
        EscPosPrinter(port, timeout_s=1.0).probe()
    assert info.value.kind == "framing" and info.value.device == sim.port


def test_stale_bytes_are_drained_before_a_request() -> None:
    with EscPosPrinterSimulator() as sim, open_usblp(sim.port, timeout_s=0.05) as port:
        sim.send(b"\x1a\x1a\x1a")  # late replies of an earlier, timed-out round
        time.sleep(0.05)
        assert EscPosPrinter(port, timeout_s=1.0).probe().online


# -- bounded reads and writes -----------------------------------------------------------------


def test_read_returns_empty_at_its_timeout(silent: Silent) -> None:
    with open_usblp(silent.port, timeout_s=FAST) as port:
        start = time.monotonic()
        assert port.read(4) == b""
        assert FAST <= time.monotonic() - start < FAST + 3.0  # the ceiling only catches a hang
        port.timeout = None  # never "forever": counts as 0
        start = time.monotonic()
        assert port.read(1) == b""
        assert time.monotonic() - start < FAST  # returned at once, not after the timeout


def test_read_returns_what_arrived(silent: Silent) -> None:
    with open_usblp(silent.port, timeout_s=1.0) as port:
        silent.send(b"\x12")
        assert port.read(8) == b"\x12"
        assert port.read(0) == b""


def test_end_of_file_node_waits_out_the_timeout_without_spinning() -> None:
    # Everybody holds /dev/null open, hence not exclusive.
    with open_usblp("/dev/null", timeout_s=0.3, exclusive=False) as port:
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        assert port.read(1) == b""
        wall = time.monotonic() - start
        used = resource.getrusage(resource.RUSAGE_SELF)
        assert 0.3 <= wall < 0.3 + 3.0  # not spinning is what the CPU time below shows
        assert (used.ru_utime + used.ru_stime) - (cpu.ru_utime + cpu.ru_stime) < 0.15
        with pytest.raises(DeviceTimeout, match="no reply to DLE EOT 1"):
            EscPosPrinter(port, timeout_s=FAST).probe()


def test_write_times_out_when_the_printer_takes_nothing() -> None:
    master, slave = os.openpty()  # nobody reads the master side: the pty buffer fills up
    try:
        with open_usblp(os.ttyname(slave), timeout_s=FAST, write_timeout_s=FAST) as port:
            start = time.monotonic()
            with pytest.raises(DeviceTimeout) as info:
                port.write(b"\x00" * (1 << 20))
            assert FAST <= time.monotonic() - start < FAST + 3.0  # ceiling: only a hang
    finally:
        os.close(master)
        os.close(slave)
    assert info.value.timeout_s == FAST
    assert "of 1048576 bytes" in info.value.message


def test_unplug_is_device_not_found_and_closes(silent: Silent) -> None:
    port = open_usblp(silent.port, timeout_s=FAST)
    silent.unplug()
    with pytest.raises(DeviceNotFound, match="disconnected while reading"):
        port.read(1)
    assert not port.is_open
    with pytest.raises(DriverError, match="closed"):
        port.write(b"\x10\x04\x01")


def test_write_after_unplug_is_device_not_found(silent: Silent) -> None:
    port = open_usblp(silent.port, timeout_s=FAST)
    silent.unplug()
    time.sleep(0.1)  # the simulator's reader thread lets go of the pty within one 50 ms poll
    with pytest.raises(DeviceNotFound, match="disconnected while writing"):
        port.write(b"\x10\x04\x01")


def test_unreadable_node_is_not_supported() -> None:
    # An eventfd answers a 1-byte read with EINVAL, as usblp does on a unidirectional printer.
    port = UsbLpPort(os.eventfd(0, os.EFD_NONBLOCK), "/dev/usb/lp0", timeout_s=FAST,
                     write_timeout_s=FAST)
    with pytest.raises(NotSupported, match="unidirectional") as info:
        port.read(1)
    assert info.value.device == "/dev/usb/lp0"
    assert not port.is_open


def test_close_is_idempotent(silent: Silent) -> None:
    port = open_usblp(silent.port, timeout_s=FAST)
    with port as same:
        assert same is port and port.is_open
    port.close()
    assert not port.is_open and "closed" in repr(port)


# -- opening ------------------------------------------------------------------------------------


def test_missing_node_is_device_not_found(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match="no such printer node"):
        open_usblp(str(tmp_path / "lp0"), timeout_s=FAST)


def test_regular_file_is_not_a_printer_node(tmp_path: Path) -> None:
    path = tmp_path / "lp0"
    path.write_bytes(b"")
    with pytest.raises(DeviceNotFound, match="not a device node"):
        open_usblp(str(path), timeout_s=FAST)


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"timeout_s": -1.0},
                                    {"timeout_s": float("nan")}, {"timeout_s": True},
                                    {"timeout_s": FAST, "write_timeout_s": 0}])
def test_timeouts_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        open_usblp("/dev/null", exclusive=False, **kwargs)  # type: ignore[arg-type]


def test_permission_denied_names_the_group(silent: Silent) -> None:
    os.chmod(silent.port, 0o600 if os.geteuid() == 0 else 0o000)
    expected = grp.getgrgid(os.stat(silent.port).st_gid).gr_name
    dropped = os.geteuid() == 0  # root opens anything: drop to nobody for the attempt
    if dropped:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        with pytest.raises(PermissionDenied) as info:
            open_usblp(silent.port, timeout_s=FAST)
    finally:
        if dropped:
            os.seteuid(0)
            os.setegid(0)
    assert info.value.group == expected
    assert f"group '{expected}'" in info.value.message


HOLDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
with open("/proc/self/comm", "w") as comm:
    comm.write("usb-backend")
print("ready", flush=True)
sys.stdin.read()
"""


def test_node_in_use_by_another_process_is_busy(silent: Silent) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, silent.port],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(DeviceBusy) as info:
            open_usblp(silent.port, timeout_s=FAST)
        assert (info.value.holder_pid, info.value.holder_name) == (child.pid, "usb-backend")
        open_usblp(silent.port, timeout_s=FAST, exclusive=False).close()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=5)
    open_usblp(silent.port, timeout_s=FAST).close()  # free again once the holder is gone


# -- which nodes are printer nodes ------------------------------------------------------------


def _stat(mode: int, rdev: int) -> os.stat_result:
    # os.stat_result takes st_rdev through its dict argument.
    return os.stat_result((mode, 1, 1, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": rdev})


@pytest.mark.parametrize(("mode", "major", "expected"), [
    (stat.S_IFCHR | 0o660, 180, True),   # /dev/usb/lp0 (usblp)
    (stat.S_IFCHR | 0o660, 6, True),     # /dev/lp0 (parallel)
    (stat.S_IFCHR | 0o660, 188, False),  # /dev/ttyUSB0
    (stat.S_IFCHR | 0o660, 166, False),  # /dev/ttyACM0
    (stat.S_IFBLK | 0o660, 180, False),  # a block device with the same number
    (stat.S_IFREG | 0o644, 0, False),
])
def test_printer_nodes_are_told_by_their_major(monkeypatch: pytest.MonkeyPatch, mode: int,
                                               major: int, expected: bool) -> None:
    monkeypatch.setattr(usblp.os, "stat", lambda path: _stat(mode, os.makedev(major, 0)))
    assert is_printer_node("/dev/usb/lp0") is expected


def test_real_nodes_that_are_not_printers(silent: Silent, tmp_path: Path) -> None:
    assert not is_printer_node("/dev/null")
    assert not is_printer_node(silent.port)
    assert not is_printer_node(str(tmp_path / "missing"))
    assert not is_printer_node("bad\0path")
