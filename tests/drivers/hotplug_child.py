"""Child of test_hotplug.py: real uevents from a umockdev testbed into ``hotplug.Watcher``.

Runs under ``umockdev-wrapper`` (its LD_PRELOAD gives the process a mock /sys, /dev and udev
netlink) with Debian's python, because the GObject bindings of umockdev (``gir1.2-umockdev-1.0``,
``python3-gi``) are Debian packages the virtualenv's python cannot import. The virtualenv's
site-packages comes first on sys.path, its ``.pth`` files included: that is where pyudev is and
where the editable install's finder maps ``posdiag`` to ``agent/`` and ``drivers/``.

    umockdev-wrapper /usr/bin/python3 hotplug_child.py <venv site-packages> <umockdev dir>

Prints one JSON object on its last line: the Hotplug events received, in order, and what
discovery listed around the unplug.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import site
import sys
import threading
import time
from pathlib import Path
from typing import Any

WAIT_S = 5.0  # for each expected event; netlink delivery inside one process takes milliseconds

USB1 = "/sys/devices/pci0000:00/0000:00:14.0/usb1"
READER_TTY = f"{USB1}/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0"
BRIDGE_TTY = f"{USB1}/1-2/1-2:1.0/ttyUSB1/tty/ttyUSB1"
MODEM_TTYS = tuple(f"{USB1}/1-3/1-3:1.{i}/ttyUSB{i + 2}/tty/ttyUSB{i + 2}" for i in range(4))
PRINTER_LP = f"{USB1}/1-4/1-4:1.0/usbmisc/lp0"
UNKNOWN_TTY = f"{USB1}/1-5/1-5:1.0/tty/ttyACM0"
ONBOARD_TTY = "/sys/devices/platform/serial8250/tty/ttyS0"
FIXTURES = ("usb-host-xhci.umockdev", "idtech-minimag-idt1221u.umockdev", "pn532-ch340.umockdev",
            "quectel-ec25.umockdev", "epson-tm-usblp.umockdev")

# Not in hardware-fixtures: a USB CDC-ACM port whose VID:PID the table does not know (1209:0001,
# pid.codes' test PID) and the mainboard's 16550 UART, which udev gives no ID_BUS.
EXTRA = f"""P: {UNKNOWN_TTY[4:]}
N: ttyACM0
E: DEVNAME=/dev/ttyACM0
E: ID_BUS=usb
E: ID_MODEL=Test_Board
E: ID_MODEL_ID=0001
E: ID_USB_DRIVER=cdc_acm
E: ID_USB_INTERFACE_NUM=00
E: ID_VENDOR=Generic
E: ID_VENDOR_ID=1209
E: MAJOR=166
E: MINOR=0
E: SUBSYSTEM=tty
A: dev=166:0

P: {ONBOARD_TTY[4:]}
N: ttyS0
E: DEVNAME=/dev/ttyS0
E: MAJOR=4
E: MINOR=64
E: SUBSYSTEM=tty
A: dev=4:64
"""


def load_venv(site_packages: str) -> None:
    sys.path.insert(0, site_packages)  # before Debian's dist-packages
    site.addsitedir(site_packages)  # already on the path: this only runs its .pth files


def main(site_packages: str, umockdev_dir: Path) -> dict[str, Any]:
    load_venv(site_packages)
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    # The testbed first: the preload library serves /sys and netlink only once it exists.
    testbed = UMockdev.Testbed.new()
    for name in FIXTURES:
        testbed.add_from_file(str(umockdev_dir / name))
    testbed.add_from_string(EXTRA)

    from posdiag.drivers import discovery
    from posdiag.drivers.hotplug import Hotplug, Watcher

    received: queue.Queue[Hotplug] = queue.Queue()
    hold, release = threading.Event(), threading.Event()

    def on_event(event: Hotplug) -> None:
        received.put(event)
        if event.devnode == "/dev/ttyACM0":
            # Keep the watcher from reading on until the reader's sysfs is gone, as it is when
            # the kernel reports a real unplug.
            hold.set()
            release.wait(WAIT_S)

    def until(last: str, action: str) -> list[dict[str, Any]]:
        """Events up to and including the first ``action`` on ``last``; fewer after WAIT_S."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                event = received.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            out.append(dataclasses.asdict(event))
            if (event.devnode, event.action) == (last, action):
                break
        return out

    result: dict[str, Any] = {}
    # Not seeded from the devices already there: the uevents below re-announce them, as a
    # `udevadm trigger` would, and this test is about how each uevent is handled.
    watcher = Watcher(on_event, seed=False).start()
    try:
        # Sent in this order, each filtered one before an event that does arrive: netlink keeps
        # the order, so a filtered uevent that leaked through would show up in the list.
        testbed.uevent(ONBOARD_TTY, "add")  # a tty, but not USB
        testbed.uevent(f"{USB1}/1-1", "add")  # the USB device itself: not a subsystem watched
        for syspath in (READER_TTY, BRIDGE_TTY, PRINTER_LP, *MODEM_TTYS, UNKNOWN_TTY):
            testbed.uevent(syspath, "add")
        events = until("/dev/ttyACM0", "add")
        hold.wait(WAIT_S)
        result["readers_before"] = [d.devnode for d in discovery.find("card_reader")]
        cached_at = time.monotonic()
        testbed.uevent(READER_TTY, "change")  # neither plug nor unplug
        for syspath in (PRINTER_LP, READER_TTY):
            testbed.uevent(syspath, "remove")
            testbed.remove_device(syspath)
        result["sysfs_gone"] = not any(os.path.exists(p) for p in (PRINTER_LP, READER_TTY))
        release.set()
        events += until("/dev/ttyUSB0", "remove")
        # Within the cache's lifetime: only the watcher's forget_devices() can make this fresh.
        result["readers_after"] = [d.devnode for d in discovery.find("card_reader")]
        result["after_s"] = time.monotonic() - cached_at
        result["cache_ttl_s"] = discovery.CACHE_TTL_S
    finally:
        release.set()
        watcher.stop()
    result["events"] = events
    result["watch_threads_left"] = [t.name for t in threading.enumerate() if t.name == "udev-watch"]
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
