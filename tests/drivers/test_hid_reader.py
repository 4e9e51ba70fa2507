"""The HID reader driver: udev discovery and the evdev read against umockdev's emulation, and
the grab at its seam.

Under umockdev (``hidfixtures``) the production code opens the mocked node, asks its name
(EVIOCGNAME, from the recorded ioctl file), grabs it and reads the replayed evemu swipe. With
``UMOCKDEV_DEBUG=ioctl`` umockdev logs every emulated ioctl, which shows the grab being given
back. umockdev answers EVIOCGRAB with success whatever the state ("hardware independent"
ioctl): a grab refused with EBUSY because another program holds one cannot happen there, so
that one call is tested at the seam (``ioctl=``), on a real pipe carrying input_event records.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from hidfixtures import BY_ID, NODE, no_events, run_python, swipe_events

from posdiag.drivers.errors import DeviceBusy, DeviceNotFound, PermissionDenied
from posdiag.drivers.hid import read_swipe
from posdiag.drivers.hid.input_device import EVENT, EVIOCGRAB, InputDevice, eviocgname
from posdiag.drivers.hid.keycodes import CODES
from posdiag.drivers.hid.udev import parse_usb_id
from simulators.hid_keyboard import key_events

TRACK2 = ";4111111111111111=49121015550000000?"
DEBUG_IOCTL = {**os.environ, "UMOCKDEV_DEBUG": "ioctl"}  # umockdev logs each emulated ioctl

FIND = """
import dataclasses, json, sys
from posdiag.drivers.hid import find_readers, reader_at
ids = sys.argv[1:]
print(json.dumps({"all": [dataclasses.asdict(r) for r in find_readers(usb_ids=ids)],
                  "by_id": getattr(reader_at(BY_ID), "devnode", None),
                  "missing": reader_at("/dev/input/event99")}))
""".replace("BY_ID", repr(BY_ID))

READ = """
import json
from posdiag.drivers.hid import read_swipe
s = read_swipe(NODE, TIMEOUT)
sw = s.swipe
print(json.dumps({"name": s.device_name, "layout": sw and sw.layout,
                  "masked": sw and sw.swipe and sw.swipe.masked_pan,
                  "presses": sw and sw.presses}))
""".replace("NODE", repr(NODE))


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_the_reader_is_found_with_its_usb_descriptors(tmp_path: Path) -> None:
    done = run_python(None, FIND)
    assert done.returncode == 0, done.stderr
    got = last_json(done.stdout)
    (reader,) = got["all"]
    assert reader["devnode"] == NODE and reader["by_id"] == BY_ID
    assert (reader["vid"], reader["pid"], reader["matched_by"]) == ("0801", "0001", "table")
    assert reader["vendor"] == "MagTek" and reader["usb_product"] == "USB Swipe Reader"
    assert reader["firmware"] == "1.00"  # bcdDevice 0100
    assert reader["input_name"] == "Mag-Tek USB Swipe Reader" and reader["keyboard"] is True
    assert got["by_id"] == NODE and got["missing"] is None


def test_swipe_read_through_umockdev_and_the_grab_given_back(tmp_path: Path) -> None:
    events = swipe_events(tmp_path, TRACK2 + "\r")
    done = run_python(events, READ.replace("TIMEOUT", "5"), env=DEBUG_IOCTL)
    assert done.returncode == 0, done.stderr
    got = last_json(done.stdout)
    assert got == {"name": "Mag-Tek USB Swipe Reader", "layout": "us",
                   "masked": "411111******1111", "presses": len(key_events(TRACK2 + "\r")) // 2}
    grabs = [line for line in done.stderr.splitlines()
             if f"request {EVIOCGRAB:X}: emulated" in line]
    assert len(grabs) == 2, done.stderr  # grab, then release
    assert f"request {eviocgname():X}: emulated, result 25" in done.stderr


def test_a_german_layout_swipe_through_umockdev(tmp_path: Path) -> None:
    events = swipe_events(tmp_path, TRACK2 + "\r", "de")
    done = run_python(events, READ.replace("TIMEOUT", "5"))
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["layout"] == "de"
    assert last_json(done.stdout)["masked"] is None


def test_no_swipe_times_out_and_releases(tmp_path: Path) -> None:
    done = run_python(no_events(tmp_path), READ.replace("TIMEOUT", "0.5"),
                      env=DEBUG_IOCTL)
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["layout"] is None
    assert sum(f"request {EVIOCGRAB:X}: emulated" in line
               for line in done.stderr.splitlines()) == 2


# -- at the seam: a real pipe for the node, the ioctl recorded ---------------------------------

class Seam:
    def __init__(self, grab_errno: int | None = None) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.calls: list[tuple[int, object]] = []
        self.grab_errno = grab_errno

    def opener(self, path: str, flags: int) -> int:
        os.set_blocking(self.read_fd, False)
        return self.read_fd

    def ioctl(self, fd: int, request: int, arg: object) -> int:
        self.calls.append((request, arg))
        if request == EVIOCGRAB and arg == 1 and self.grab_errno is not None:
            raise OSError(self.grab_errno, os.strerror(self.grab_errno))
        if request == eviocgname():
            raise OSError(errno.ENOTTY, "not a tty")  # no name: not required
        return 0

    def type(self, text: str) -> None:
        for code, value in key_events(text):
            os.write(self.write_fd, EVENT.pack(0, 0, 1, code, value) + EVENT.pack(0, 0, 0, 0, 0))

    def grabs(self) -> list[object]:
        return [arg for request, arg in self.calls if request == EVIOCGRAB]


def test_a_grab_held_by_another_program_is_device_busy() -> None:
    seam = Seam(grab_errno=errno.EBUSY)
    with pytest.raises(DeviceBusy) as caught:
        read_swipe("/dev/input/event5", 1, ioctl=seam.ioctl, opener=seam.opener)
    assert caught.value.device == "/dev/input/event5"
    assert seam.grabs() == [1]  # never grabbed, so nothing to give back
    os.close(seam.write_fd)


def test_the_grab_is_given_back_on_ctrl_c() -> None:
    seam = Seam()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read_swipe("/dev/input/event5", 1, ioctl=seam.ioctl, opener=seam.opener,
                   on_ready=interrupted)
    assert seam.grabs() == [1, 0]
    os.close(seam.write_fd)


def test_seam_swipe_ends_at_enter_and_is_judged_after_release() -> None:
    seam = Seam()
    seam.type(TRACK2 + "\r")
    session = read_swipe("/dev/input/event5", 5, ioctl=seam.ioctl, opener=seam.opener)
    assert seam.grabs() == [1, 0]
    assert session.device_name is None
    assert session.swipe is not None and session.swipe.swipe is not None
    assert session.swipe.swipe.masked_pan == "411111******1111"
    assert "4111111111111111" not in repr(session)
    os.close(seam.write_fd)


def test_an_unplug_mid_wait_is_device_not_found() -> None:
    seam = Seam()
    os.write(seam.write_fd, EVENT.pack(0, 0, 1, CODES["KEY_SEMICOLON"], 1))
    os.close(seam.write_fd)  # the node hangs up, as a removed evdev device does
    with pytest.raises(DeviceNotFound):
        read_swipe("/dev/input/event5", 5, ioctl=seam.ioctl, opener=seam.opener)


def test_open_errors_are_driver_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound):
        InputDevice(str(tmp_path / "event9"))

    def denied(path: str, flags: int) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionDenied):
        InputDevice("/dev/input/event5", opener=denied)


def test_usb_ids_are_checked() -> None:
    assert parse_usb_id("0801:0001") == ("0801", "0001")
    for bad in ("0801", "801:1", "zzzz:0001", "0801-0001"):
        with pytest.raises(ValueError):
            parse_usb_id(bad)


def test_ioctl_numbers_are_the_kernels() -> None:
    # linux/input.h: EVIOCGRAB _IOW('E', 0x90, int); EVIOCGNAME(len) _IOC(_IOC_READ, 'E', 0x06,
    # len); struct input_event is a struct timeval and three fields (24 bytes on 64-bit).
    assert EVIOCGRAB == 0x40044590
    assert eviocgname(256) == 0x81004506
    assert EVENT.size == (24 if os.sysconf("SC_LONG_BIT") == 64 else 16)
