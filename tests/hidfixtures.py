"""The MagTek keyboard-emulation reader under umockdev: its device tree, its EVIOCGNAME record
and evemu swipes (hardware-fixtures/umockdev/magtek-usb-swipe-reader-kbd*), for running real
commands against umockdev's evdev emulation (``umockdev-run -d … -i … -e …``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.hid_keyboard import events_script

UMOCKDEV = Path(__file__).resolve().parent.parent / "hardware-fixtures" / "umockdev"
NODE = "/dev/input/event5"
BY_ID = "/dev/input/by-id/usb-Mag-Tek_USB_Swipe_Reader-event-kbd"
DEVICE = UMOCKDEV / "magtek-usb-swipe-reader-kbd.umockdev"
IOCTL = UMOCKDEV / "magtek-usb-swipe-reader-kbd.ioctl"
HOST = UMOCKDEV / "usb-host-xhci.umockdev"


def swipe_events(tmp: Path, text: str, layout: str = "us", *, alt_ascii: bool = False,
                 name: str = "swipe.events") -> Path:
    path = tmp / name
    path.write_text(events_script(text, layout, alt_ascii=alt_ascii))
    return path


def no_events(tmp: Path) -> Path:
    path = tmp / "silent.events"
    path.write_text("# EVEMU 1.3\n")
    return path


def umockdev_argv(events: Path | None, *, reader: bool = True) -> list[str]:
    tool = shutil.which("umockdev-run")
    if tool is None:
        pytest.fail("umockdev-run not found: install the Debian package 'umockdev'")
    argv = [tool, "-d", str(HOST)]
    if reader:
        argv += ["-d", str(DEVICE), "-i", f"{NODE}={IOCTL}"]
        if events is not None:
            argv += ["-e", f"{NODE}={events}"]
    return argv


def run_posdiag(events: Path | None, *args: str, reader: bool = True,
                env: dict[str, str] | None = None,
                timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [*umockdev_argv(events, reader=reader), "--", sys.executable, "-m", "posdiag", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env,
                          check=False)


def run_python(events: Path | None, code: str, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*umockdev_argv(events), "--", sys.executable, "-c", code, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                          check=False)
