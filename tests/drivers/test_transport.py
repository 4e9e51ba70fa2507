"""Serial transport: URLs, real ptys, error mapping, port holders, unplug, and the spy log."""

from __future__ import annotations

import grp
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posdiag.drivers.errors import (
    DeviceBusy,
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    NotSupported,
    PermissionDenied,
    ProtocolError,
)
from posdiag.drivers.transport import (
    Port,
    PortHolder,
    SpyLog,
    SpyRecord,
    find_port_holders,
    looks_like_track_data,
    open_port,
)
from simulators.pty_device import PtyDevice

FAST = 0.2
TRACK1 = b"%B4111111111111111^TEST/CARD^2512101000000000000000?"
TRACK2 = b";4111111111111111=25121010000000000000?"


class EchoDevice(PtyDevice):
    def on_bytes(self, data: bytes) -> None:
        self.send(data)


@pytest.fixture
def echo() -> Iterator[EchoDevice]:
    with EchoDevice() as sim:
        yield sim


@pytest.fixture
def silent() -> Iterator[EchoDevice]:
    with EchoDevice(silent=True) as sim:
        yield sim


def logged_bytes(records: list[SpyRecord]) -> bytes:
    return b"".join(bytes.fromhex(r.hex) for r in records if r.hex is not None)


# -- URLs and a real pty ------------------------------------------------------------------------


def test_loop_url_round_trip_and_spy_hex() -> None:
    records: list[SpyRecord] = []
    with open_port("loop://", baudrate=9600, timeout_s=FAST, spy=SpyLog(records=records)) as port:
        assert port.write(b"\x02R\x1f\x03L") == 5
        assert port.read_exactly(5) == b"\x02R\x1f\x03L"
        port.write(b"AT\r\nOK\r\n")
        assert port.read_until(b"\r\n") == b"AT\r\n"
        assert port.read_until(b"\r\n") == b"OK\r\n"
    assert not port.is_open
    assert [(r.direction, r.hex) for r in records[:2]] == [("tx", "02 52 1f 03 4c"),
                                                            ("rx", "02 52 1f 03 4c")]
    assert all(r.t_s >= 0 for r in records)
    assert [r.t_s for r in records] == sorted(r.t_s for r in records)


def test_real_pty_echo(echo: EchoDevice) -> None:
    with open_port(echo.port, baudrate=115200, timeout_s=1.0) as port:
        port.write(b"\x00\x00\xff\x00\xff\x00")
        port.flush()
        assert port.read_exactly(6) == b"\x00\x00\xff\x00\xff\x00"
        port.write(b"line\n")
        assert port.read_until(b"\n") == b"line\n"
        assert port.in_waiting == 0
        port.reset_input_buffer()
    assert echo.received == b"\x00\x00\xff\x00\xff\x00line\n"


def test_read_returns_what_arrived_within_timeout(silent: EchoDevice) -> None:
    with open_port(silent.port, baudrate=9600, timeout_s=FAST) as port:
        start = time.monotonic()
        assert port.read(10) == b""
        assert FAST * 0.9 <= time.monotonic() - start < FAST + 3.0  # ceiling: only a hang
        os.write(silent._master, b"ab")  # the device says something short
        assert port.read(10, timeout_s=0.1) == b"ab"


def test_read_exactly_times_out_on_silent_device(silent: EchoDevice) -> None:
    with open_port(silent.port, baudrate=9600, timeout_s=FAST) as port:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            port.read_exactly(4)
        assert info.value.timeout_s == FAST
        assert FAST * 0.9 <= time.monotonic() - start < FAST + 3.0  # ceiling: only a hang
        assert port.is_open  # a timeout is an answer, not a broken port


def test_read_until_timeout_and_overflow(silent: EchoDevice) -> None:
    with open_port(silent.port, baudrate=9600, timeout_s=FAST) as port:
        os.write(silent._master, b"+CSQ: 23,99")  # no CR LF ever comes
        with pytest.raises(DeviceTimeout, match="11 bytes received") as info:
            port.read_until(b"\r\n", timeout_s=0.1)
        assert info.value.timeout_s == 0.1
        os.write(silent._master, b"x" * 40)
        with pytest.raises(ProtocolError) as overflow:
            port.read_until(b"\r\n", max_bytes=32)
        assert overflow.value.kind == "framing"


def test_write_timeout_when_nobody_reads() -> None:
    master, slave = os.openpty()
    try:
        with open_port(os.ttyname(slave), baudrate=9600, timeout_s=FAST) as port:
            start = time.monotonic()
            with pytest.raises(DeviceTimeout) as info:
                port.write(b"\x1b@" * 500_000)  # far more than a pty buffers
            assert info.value.timeout_s == FAST
            assert FAST * 0.9 <= time.monotonic() - start < FAST + 3.0  # ceiling: only a hang
    finally:
        os.close(master)
        os.close(slave)


# -- errors on open --------------------------------------------------------------------------------


def test_missing_path_is_device_not_found(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match="no such device") as info:
        open_port(str(tmp_path / "ttyUSB9"), baudrate=9600, timeout_s=FAST)
    assert info.value.device == str(tmp_path / "ttyUSB9")


def test_regular_file_is_not_a_serial_device(tmp_path: Path) -> None:
    path = tmp_path / "notatty"
    path.write_text("x")
    with pytest.raises(DeviceNotFound, match="not a serial device"):
        open_port(str(path), baudrate=9600, timeout_s=FAST)


def test_unreachable_network_port_is_device_not_found() -> None:
    with pytest.raises(DeviceNotFound, match="cannot open"):
        open_port("socket://127.0.0.1:1", baudrate=9600, timeout_s=FAST)


def test_spy_url_is_refused_because_it_logs_raw_bytes() -> None:
    with pytest.raises(NotSupported, match="SpyLog"):
        open_port("spy://loop://", baudrate=9600, timeout_s=FAST)


@pytest.mark.parametrize("kwargs", [{"baudrate": 0, "timeout_s": FAST},
                                    {"baudrate": 9600, "timeout_s": 0},
                                    {"baudrate": 9600, "timeout_s": float("inf")},
                                    {"baudrate": 9600, "timeout_s": FAST, "write_timeout_s": -1},
                                    {"baudrate": 9600, "timeout_s": FAST, "timeout": None}])
def test_settings_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        open_port("loop://", **kwargs)  # type: ignore[arg-type]


def test_permission_denied_names_the_owning_group(silent: EchoDevice) -> None:
    os.chmod(silent.port, 0o600 if os.geteuid() == 0 else 0o000)
    expected_group = grp.getgrgid(os.stat(silent.port).st_gid).gr_name
    # Root may open anything, so drop the effective ids to nobody for the attempt.
    dropped = os.geteuid() == 0
    if dropped:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        with pytest.raises(PermissionDenied) as info:
            open_port(silent.port, baudrate=9600, timeout_s=FAST)
    finally:
        if dropped:
            os.seteuid(0)
            os.setegid(0)
    assert info.value.group == expected_group
    assert f"group {expected_group}" in str(info.value)


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
if sys.argv[2] == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
with open("/proc/self/comm", "w") as comm:
    comm.write("mmprobe")
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("mode", ["plain", "flock"])
def test_busy_port_names_the_holder(silent: EchoDevice, mode: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, silent.port, mode],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(DeviceBusy) as info:
            open_port(silent.port, baudrate=9600, timeout_s=FAST)
        assert info.value.holder_pid == child.pid
        assert info.value.holder_name == "mmprobe"
        assert f"mmprobe (pid {child.pid})" in str(info.value)
        others = find_port_holders(silent.port, exclude_pids=[os.getpid()])
        assert others == [PortHolder(child.pid, "mmprobe")]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=5)
    # Once the holder is gone the port opens.
    open_port(silent.port, baudrate=9600, timeout_s=FAST).close()


def test_non_exclusive_open_ignores_other_holders(silent: EchoDevice) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, silent.port, "plain"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        open_port(silent.port, baudrate=9600, timeout_s=FAST, exclusive=False).close()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=5)


# -- unplug ---------------------------------------------------------------------------------------


def test_unplug_mid_read_is_a_driver_error_and_closes_the_port(echo: EchoDevice) -> None:
    # A read timeout far beyond the unplug, so load cannot make one pass for the other.
    port = open_port(echo.port, baudrate=9600, timeout_s=30.0)
    threading.Timer(0.1, echo.unplug).start()
    start = time.monotonic()
    with pytest.raises(DriverError) as info:
        port.read_exactly(16)
    assert isinstance(info.value, DeviceNotFound)
    assert not isinstance(info.value, OSError)
    assert "disconnected" in str(info.value)
    assert time.monotonic() - start < 0.1 + 3.0  # the pulled cable is noticed, not waited out
    assert not port.is_open
    with pytest.raises(DeviceNotFound, match="earlier failure"):
        port.read(1)
    with pytest.raises(DeviceNotFound):
        port.write(b"AT\r")
    port.close()  # still safe


def test_write_after_unplug_is_a_driver_error(echo: EchoDevice) -> None:
    port = open_port(echo.port, baudrate=9600, timeout_s=FAST)
    echo.unplug()
    with pytest.raises(DeviceNotFound):
        port.write(b"AT\r")
        port.read_exactly(3)
    assert not port.is_open


def test_second_exclusive_open_in_the_same_process_is_busy(silent: EchoDevice) -> None:
    with open_port(silent.port, baudrate=9600, timeout_s=FAST) as first:
        with pytest.raises(DeviceBusy, match="another handle of this process") as info:
            open_port(silent.port, baudrate=9600, timeout_s=FAST)
        assert info.value.holder_pid == os.getpid()
        assert first.is_open


def test_closed_port_refuses_io() -> None:
    port = open_port("loop://", baudrate=9600, timeout_s=FAST)
    port.close()
    port.close()
    with pytest.raises(DriverError, match="closed"):
        port.write(b"x")
    assert repr(port) == "Port('loop://', closed)"


# -- port holders from a procfs tree -----------------------------------------------------------


def make_proc(root: Path, pid: str, comm: str | None, fds: dict[str, str]) -> None:
    (root / pid / "fd").mkdir(parents=True)
    if comm is not None:
        (root / pid / "comm").write_text(comm + "\n")
    for fd, target in fds.items():
        (root / pid / "fd" / fd).symlink_to(target)


def test_find_port_holders_reads_a_procfs_tree(tmp_path: Path) -> None:
    make_proc(tmp_path, "812", "ModemManager", {"0": "/dev/null", "11": "/dev/ttyUSB0"})
    make_proc(tmp_path, "77", "posdiag", {"3": "/dev/ttyUSB0", "4": "/dev/ttyUSB0"})
    make_proc(tmp_path, "90", None, {"5": "/dev/ttyUSB0"})
    make_proc(tmp_path, "91", "getty", {"0": "/dev/ttyUSB1"})
    (tmp_path / "self").mkdir()
    (tmp_path / "sys").mkdir()
    assert find_port_holders("/dev/ttyUSB0", str(tmp_path)) == [
        PortHolder(77, "posdiag"), PortHolder(90, "unknown"), PortHolder(812, "ModemManager")]
    assert find_port_holders("/dev/ttyUSB0", str(tmp_path), exclude_pids=[77, 90]) == [
        PortHolder(812, "ModemManager")]
    assert find_port_holders("/dev/ttyACM0", str(tmp_path)) == []
    assert find_port_holders("/dev/ttyUSB0", str(tmp_path / "missing")) == []


def test_find_port_holders_follows_symlinked_device_paths(tmp_path: Path) -> None:
    make_proc(tmp_path / "proc", "500", "cardd", {"7": "/dev/ttyACM0"})
    by_id = tmp_path / "usb-IDTECH-if00"
    by_id.symlink_to("/dev/ttyACM0")
    assert find_port_holders(str(by_id), str(tmp_path / "proc")) == [PortHolder(500, "cardd")]


def test_port_holder_validates() -> None:
    with pytest.raises(ValueError):
        PortHolder(0, "x")
    with pytest.raises(ValueError):
        PortHolder(1, "")


# -- spy log ----------------------------------------------------------------------------------


def test_spy_withholds_whole_tracks_and_resumes_after() -> None:
    records: list[SpyRecord] = []
    spy = SpyLog(records=records)
    with open_port("loop://", baudrate=9600, timeout_s=FAST, spy=spy) as port:
        port.write(b"\x02" + TRACK1 + TRACK2 + b"\x03")
        assert port.read_until(b"\x03") == b"\x02" + TRACK1 + TRACK2 + b"\x03"
        port.write(b"\x06")
        assert port.read(1) == b"\x06"
    assert [r.redacted for r in records[:2]] == ["looks like card track data"] * 2
    assert records[0].length == len(TRACK1 + TRACK2) + 2
    assert [(r.direction, r.hex) for r in records[2:]] == [("tx", "06"), ("rx", "06")]
    assert b"4111" not in logged_bytes(records)


def test_spy_catches_a_track_split_into_single_bytes() -> None:
    records: list[SpyRecord] = []
    spy = SpyLog(records=records)
    for byte in b"\x02" + TRACK2 + b"\x03\x06":
        spy.record("rx", bytes([byte]))
    logged = logged_bytes(records)
    assert not any(chr(b).isdigit() for b in logged)
    assert logged.startswith(b"\x02;")  # the sentinel alone carries no card data
    assert logged.endswith(b"\x03\x06")  # logging resumes after the end sentinel


def test_spy_false_alarm_expires_but_a_later_track_in_the_same_read_is_still_caught() -> None:
    records: list[SpyRecord] = []
    spy = SpyLog(records=records)
    noise = b";5" + b"\xaa" * 150  # binary frame that happens to contain ';5', no '?'
    spy.record("rx", noise + b";4111")
    spy.record("rx", b"111111111111=2512101?")
    spy.record("rx", b"\xd5\x03")
    assert [r.hex for r in records] == [None, None, "d5 03"]
    spy.record("rx", noise)
    spy.record("rx", b"\x00\xff")  # the false alarm has run out: logging resumes
    assert records[-1].hex == "00 ff"


def test_redact_context_and_flag_record_counts_only() -> None:
    records: list[SpyRecord] = []
    spy = SpyLog(records=records)
    with open_port("loop://", baudrate=9600, timeout_s=FAST, spy=spy) as port:
        with port.redact():
            assert spy.redacting
            port.write(b"\x02\x52\x1f\x03\x4c")
            port.read(5)
        assert not spy.redacting
        spy.redacting = True
        port.write(b"\x06")
        spy.redacting = False
        port.write(b"\x15")
    assert [(r.length, r.hex, r.redacted) for r in records] == [
        (5, None, "redaction requested"), (5, None, "redaction requested"),
        (1, None, "redaction requested"), (1, "15", None)]


def test_redact_without_spy_is_a_no_op() -> None:
    with open_port("loop://", baudrate=9600, timeout_s=FAST) as port, port.redact():
        port.write(b"x")
        assert port.read(1) == b"x"


def test_spy_logger_output_never_contains_track_data(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("posdiag.test.spy")
    spy = SpyLog(logger=logger)
    with caplog.at_level(logging.DEBUG, logger="posdiag.test.spy"):
        spy.record("rx", b"OK\r\n")
        spy.record("rx", TRACK1)
    assert "4f 4b 0d 0a" in caplog.text
    assert "withheld: looks like card track data" in caplog.text
    assert "34 31 31 31" not in caplog.text and "4111" not in caplog.text


def test_track_detection() -> None:
    assert looks_like_track_data(TRACK1)
    assert looks_like_track_data(TRACK2)
    assert looks_like_track_data(b"junk;5")
    assert not looks_like_track_data(b"+CSQ: 23,99\r\nOK\r\n")
    assert not looks_like_track_data(b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00")


def test_spy_record_validates() -> None:
    with pytest.raises(ValueError):
        SpyRecord(0.0, "up", 1, "00")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SpyRecord(0.0, "rx", 1, "00", "both")
    with pytest.raises(ValueError):
        SpyRecord(0.0, "rx", -1, "00")


TEST_PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]
FILLER = st.binary(max_size=24).map(lambda b: bytes(x for x in b if not 0x30 <= x <= 0x39))


@settings(max_examples=150, deadline=None)
@given(pan=st.sampled_from(TEST_PANS), track1=st.booleans(), before=FILLER, after=FILLER,
       cuts=st.lists(st.integers(min_value=1, max_value=80), max_size=12))
def test_no_pan_digit_is_ever_logged(pan: str, track1: bool, before: bytes, after: bytes,
                                     cuts: list[int]) -> None:
    track = (f"%B{pan}^TEST/CARD^2512101?" if track1 else f";{pan}=2512101?").encode()
    # Filler could itself close a track early; keep it free of '?' so the test is about the PAN.
    stream = before.replace(b"?", b"") + track + after.replace(b"?", b"")
    records: list[SpyRecord] = []
    spy = SpyLog(records=records)
    pos = 0
    for cut in sorted(set(cuts)):
        if pos < cut < len(stream):
            spy.record("rx", stream[pos:cut])
            pos = cut
    spy.record("rx", stream[pos:])
    assert not any(0x30 <= b <= 0x39 for b in logged_bytes(records))
    assert sum(r.length for r in records) == len(stream)


def test_port_is_a_context_manager_that_closes() -> None:
    port = open_port("loop://", baudrate=9600, timeout_s=FAST)
    assert isinstance(port, Port)
    with port as same:
        assert same is port and port.is_open
    assert not port.is_open


def test_non_tty_character_device_is_not_supported() -> None:
    # /dev/null stands in for a usblp printer node: a character device without termios.
    with pytest.raises(NotSupported, match="not a tty"):
        open_port("/dev/null", baudrate=9600, timeout_s=FAST)
