"""Device checks on a whole mocked terminal: udev discovery under umockdev, then the open/probe.

``posdiag selftest --json`` runs in a child started by ``umockdev-run`` (Debian package
``umockdev``) with every tree in ``hardware-fixtures/umockdev/``: libudev sees the ID TECH reader,
the PN532 board's CH340, the Quectel EC25 and the Epson printer, and /dev has their nodes. Each
check must find its device through udev (``found_via = "udev"``, vendor and model from
``devices.toml``); what follows is asserted as it really happens there:

- the printer node is a usblp node (major 180), opened with posdiag's usblp transport: without a
  dialogue nothing answers and the check costs one reply timeout; with the scripted dialogue in
  ``hardware-fixtures/serial/epson-tm-usblp/`` it decodes the printer's state;
- umockdev (0.17) emulates a tty's termios but answers FIONREAD/TIOCOUTQ with ENOTTY (umockdev
  issue #99), and the serial transport reads that as the device having gone: ``no_device``. So
  the modem's scripted dialogue cannot run under umockdev; it is replayed byte-exactly against
  the production drivers on a real pty below instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, run_check

from posdiag.checks import cellular, printer
from posdiag.results import Status
from simulators.pty_device import PtyDevice

UMOCKDEV = FIXTURES / "umockdev"
SCRIPTS = FIXTURES / "serial"
MODEM_SCRIPT = SCRIPTS / "quectel-ec25" / "healthy.script"
PRINTER_SCRIPT = SCRIPTS / "epson-tm-usblp" / "paper-near-end.script"
DEVICES = ("usb-host-xhci.umockdev", "idtech-minimag-idt1221u.umockdev", "pn532-ch340.umockdev",
           "quectel-ec25.umockdev", "epson-tm-usblp.umockdev")
CHECKS = ("card_reader", "contactless", "printer", "cellular")

# Runs the real CLI; the device checks are put in the registry if it does not list them yet
# (a no-op once it does).
CHILD = """
import sys
from posdiag import checks, cli
from posdiag.checks import card_reader, cellular, contactless, printer
listed = {spec.name for spec in checks.REGISTRY}
checks.REGISTRY += tuple(module.SPEC for module in (card_reader, contactless, printer, cellular)
                         if module.SPEC.name not in listed)
sys.exit(cli.main(sys.argv[1:]))
"""

CONFIG = """
[terminal]
id = "T-UMOCKDEV"
[checks.card_reader]
required = true
[checks.contactless]
required = true
[checks.printer]
required = true
reply_timeout_s = 0.4
[checks.cellular]
required = true
command_timeout_s = 0.4
"""

# What discovery must name, from devices.toml.
FOUND = {
    "card_reader": ("/dev/serial/by-id/usb-ID_TECH_IDT1221U_ID0A4B71-if00-port0", "ID TECH",
                    "IDT1221U USB to RS-232 adapter (MiniMag RS-232)"),
    "contactless": ("/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0", "QinHeng Electronics",
                    "CH340 serial converter"),
    "printer": ("/dev/usb/lp0", "Seiko Epson", "TM series receipt printer (M129C/TM-T70)"),
    "cellular": ("/dev/serial/by-id/usb-Android_Android-if02-port0", "Quectel", "EC25/EG25"),
}


def selftest_under_umockdev(tmp_path: Path, *scripts: str) -> tuple[int, dict[str, Any]]:
    tool = shutil.which("umockdev-run")
    if tool is None:
        pytest.fail("umockdev-run not found: install the Debian package 'umockdev'")
    config = tmp_path / "posdiag.toml"
    config.write_text(CONFIG)
    args = [tool]
    for name in DEVICES:
        args += ["-d", str(UMOCKDEV / name)]
    for script in scripts:
        args += ["-s", script]
    args += ["--", sys.executable, "-c", CHILD, "selftest", "--json", "--config", str(config)]
    for name in CHECKS:
        args += ["--check", name]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    return done.returncode, {c["name"]: c for c in report["checks"]}


def assert_found(checks: dict[str, Any]) -> None:
    assert sorted(checks) == sorted(CHECKS)
    for name, (port, vendor, model) in FOUND.items():
        m = checks[name]["metrics"]
        assert (m["found_via"], m["port"], m["device_vendor"], m["device_model"]) == (
            "udev", port, vendor, model), name


def test_every_device_is_discovered_and_a_dead_node_costs_one_timeout(tmp_path: Path) -> None:
    rc, checks = selftest_under_umockdev(tmp_path)
    assert_found(checks)
    assert rc == 2  # fail
    p = checks["printer"]
    assert (p["status"], p["reason"]) == ("fail", "timeout")
    assert p["summary"] == "receipt printer did not answer within 0.4 s on /dev/usb/lp0"
    assert p["metrics"]["printer_transport"] == "usblp"
    # The reply timeout was waited out; finishing at all means within the check's 6 s deadline
    # (the runner would have answered "no answer within 6 s"). That the probe stops after the
    # first unanswered request is shown byte for byte in test_printer.py; here the child process
    # shares a loaded machine with umockdev, so wall time gets only a hang-catching ceiling.
    assert 400 <= p["duration_ms"] < 6000
    # umockdev's ttys answer no ioctl (FIONREAD, TIOCOUTQ: ENOTTY); the transport treats that as
    # "no such feature", not as an unplug, so a node with nothing scripted behind it is silent.
    for name, what, limit in (("card_reader", "card reader", "0.5"),
                              ("cellular", "cellular modem", "0.4")):
        r = checks[name]
        assert (r["status"], r["reason"]) == ("fail", "timeout"), name
        assert r["summary"] == f"{what} did not answer within {limit} s on {FOUND[name][0]}"
    # A generic bridge is only trusted once a PN532 answers behind it.
    r = checks["contactless"]
    assert (r["status"], r["reason"]) == ("fail", "no_device")
    assert r["summary"] == ("nothing answers as a PN532 behind the CH340 serial converter at "
                            f"{FOUND['contactless'][0]}")


def test_scripted_printer_dialogue_runs_through_the_usblp_node(tmp_path: Path) -> None:
    rc, checks = selftest_under_umockdev(tmp_path, f"/dev/usb/lp0={PRINTER_SCRIPT}",
                                         f"/dev/ttyUSB4={MODEM_SCRIPT}")
    assert_found(checks)
    assert rc == 2
    p = checks["printer"]
    assert (p["status"], p["reason"], p["summary"]) == (
        "warn", "paper_low", "printer paper roll is nearly used up")
    assert (p["metrics"]["status_bytes"], p["metrics"]["printer_transport"]) == (
        "1212121e", "usblp")
    # The recorded EC25 dialogue runs through the production modem driver under umockdev.
    c = checks["cellular"]
    assert (c["status"], c["reason"]) == ("ok", "ok")
    assert c["summary"] == "registered on Example Mobile, E-UTRAN, signal -73 dBm, RSRP -100 dBm"


# -- the dialogues, replayed against the production drivers on a real pty -------------------------


def unescape(text: str) -> bytes:
    """umockdev script data: ``^`` + c is the byte ord(c) - 64, and ``^``` is ``^`` itself."""
    out = bytearray()
    chars = iter(text)
    for char in chars:
        if char == "^":
            nxt = next(chars)
            out.append(ord("^") if nxt == "`" else ord(nxt) - 64)
        else:
            out += char.encode("ascii")
    return bytes(out)


def load_script(path: Path) -> list[tuple[str, bytes]]:
    ops = []
    for line in path.read_text(encoding="ascii").splitlines():
        op, delay, data = line.split(" ", 2)
        assert op in ("r", "w") and delay.isdigit(), line
        ops.append((op, unescape(data)))
    return ops


class ScriptedDevice(PtyDevice):
    """Replays an umockdev script: each expected write must arrive byte-exactly, then the
    reads that follow it are sent. A mismatch is recorded and the device falls silent."""

    def __init__(self, script: Path) -> None:
        super().__init__()
        self.ops = load_script(script)
        self.position = 0
        self.mismatch: tuple[bytes, bytes] | None = None
        self._pending = bytearray()

    def on_bytes(self, data: bytes) -> None:
        self._pending += data
        while self.mismatch is None and self.position < len(self.ops):
            op, expected = self.ops[self.position]
            if op == "r":
                # Counted before it is sent: once the driver has the last reply, the test may
                # look at ``position`` before this thread runs again.
                self.position += 1
                self.send(expected)
                continue
            got = bytes(self._pending[:len(expected)])
            if not expected.startswith(got):
                self.mismatch = (expected, bytes(self._pending))
                return
            if len(got) < len(expected):
                return  # the rest of this write is still coming
            del self._pending[:len(expected)]
            self.position += 1
        if self._pending and self.mismatch is None:
            self.mismatch = (b"", bytes(self._pending))  # written past the end of the script


def test_unescape_and_load() -> None:
    assert unescape("AT^M^J^`x") == b"AT\r\n^x"
    ops = load_script(PRINTER_SCRIPT)
    assert ops[0] == ("w", b"\x10\x04\x01") and ops[-1] == ("r", b"\x1e")


def test_modem_dialogue_matches_the_driver_byte_for_byte() -> None:
    with ScriptedDevice(MODEM_SCRIPT) as device:
        result = run_check(cellular.SPEC, port=device.port, required=True, command_timeout_s=1.0)
        assert device.mismatch is None
        assert device.position == len(device.ops)  # the whole dialogue, nothing more
    assert (result.status, result.reason) == (Status.OK, "ok")
    assert result.summary == ("registered on Example Mobile, E-UTRAN, signal -73 dBm, "
                              "RSRP -100 dBm")
    m = result.metrics
    assert (m["modem_model"], m["sim_state"], m["rsrp_dbm"], m["sinr_db"], m["cereg_stat"]) == (
        "EC25", "ready", -100, 20.0, 1)


def test_printer_dialogue_matches_the_driver_over_the_usblp_transport() -> None:
    with ScriptedDevice(PRINTER_SCRIPT) as device:
        result = run_check(printer.SPEC, port=device.port, required=True, transport="usblp")
        assert device.mismatch is None
        assert device.position == len(device.ops)
    assert (result.status, result.reason) == (Status.WARN, "paper_low")
    assert result.metrics["status_bytes"] == "1212121e"
