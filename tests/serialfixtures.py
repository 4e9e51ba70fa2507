"""Helpers for device-check tests on simulator ptys: another process holding a port, a udev
discovery result pointing at a simulator, and counting this process's handles on a port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from posdiag.drivers import discovery
from posdiag.drivers.discovery import DiscoveredDevice

_HOLDER = """
import sys, time
f = open(sys.argv[1], "rb", buffering=0)
print("holding", flush=True)
time.sleep(30)
"""


@contextmanager
def held_by_another_process(port: str) -> Iterator[int]:
    """A child process keeps ``port`` open (as ModemManager does while probing); yields its pid."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, port], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "holding"
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=5)


def handles_on(path: str) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    real = os.path.realpath(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                count += 1
        except OSError:
            continue
    return count


def discovered(port: str, *, driver: str, kind: str, vendor: str, model: str,
               vid: str, pid: str) -> DiscoveredDevice:
    """What udev discovery would report for a USB device whose tty is ``port``."""
    entry = discovery.load_device_table().lookup(vid, pid)
    assert entry is not None and entry.driver == driver and entry.kind == kind
    return DiscoveredDevice(
        vid=vid, pid=pid, vendor=vendor, model=model, serial=None, devnode=port,
        subsystem="tty", by_id=None, interface_number=0, kernel_driver=None,
        usb_manufacturer=None, usb_product=None, sys_path="/sys/devices/fake",
        modemmanager_ignored=True, match=entry)


def discover(monkeypatch: pytest.MonkeyPatch, *devices: DiscoveredDevice) -> list[str]:
    """Make ``discovery.find`` return ``devices`` for any kind; returns the kinds asked for."""
    asked: list[str] = []

    def find(kind: str, **_: object) -> list[DiscoveredDevice]:
        asked.append(kind)
        return [d for d in devices if d.kind == kind
                or (d.kind == "bridge" and d.match is not None and d.match.serves == kind)]

    monkeypatch.setattr(discovery, "find", find)
    return asked
