"""Child of test_hotplug.py: ``posdiag run`` on a umockdev testbed the test plugs a reader into.

Started like ``hotplug_child.py`` (``umockdev-wrapper``, Debian's python, the virtualenv's
site-packages first on sys.path):

    umockdev-wrapper /usr/bin/python3 hotplug_daemon_child.py <venv site-packages> \
        <umockdev dir> <posdiag.toml>

The daemon runs in the main thread (it installs signal handlers; SIGTERM ends it). Each line
on stdin is an order carried out on the testbed: ``plug`` loads the ID TECH reader's tree,
which makes umockdev send its add uevents; ``unplug`` takes it away again.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from hotplug_child import USB1, load_venv

READER_USB = f"{USB1}/1-1"
# Innermost first, as the kernel tears them down.
READER_TREE = (f"{READER_USB}/1-1:1.0/ttyUSB0/tty/ttyUSB0", f"{READER_USB}/1-1:1.0/ttyUSB0",
               f"{READER_USB}/1-1:1.0", READER_USB)


def plug(testbed: Any, tree: Path) -> None:
    # umockdev adds the devices of a description in its order, sending each one's add uevent
    # as it goes; the file lists the port first. The kernel adds the USB device first and the
    # port last, so a port's uevent finds its VID:PID on the parents: load it in that order.
    blocks = tree.read_text(encoding="utf-8").strip().split("\n\n")
    testbed.add_from_string("\n\n".join(reversed(blocks)) + "\n")


def unplug(testbed: Any) -> None:
    # The kernel has removed a port before it reports the removal; umockdev needs the port's
    # sysfs to send the uevent. Dropping its class link first hides it from udev enumeration,
    # so a check the daemon re-runs on this uevent cannot still find the reader.
    os.unlink(os.path.join(testbed.get_sys_dir(), "class", "tty", "ttyUSB0"))
    testbed.uevent(READER_TREE[0], "remove")
    for syspath in READER_TREE:
        testbed.remove_device(syspath)


def follow_orders(testbed: Any, reader: Path) -> None:
    for line in sys.stdin:
        order = line.strip()
        if order == "plug":
            plug(testbed, reader)
        elif order == "unplug":
            unplug(testbed)
        print(f"done {order}", file=sys.stderr, flush=True)


def main(site_packages: str, umockdev_dir: Path, config: str) -> int:
    load_venv(site_packages)
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()
    testbed.add_from_file(str(umockdev_dir / "usb-host-xhci.umockdev"))
    threading.Thread(target=follow_orders, name="orders", daemon=True,
                     args=(testbed, umockdev_dir / "idtech-minimag-idt1221u.umockdev")).start()

    from posdiag.cli import main as posdiag_main

    try:
        return posdiag_main(["run", "--config", config])
    finally:
        # The testbed removes its directory when it is freed, which an exiting interpreter
        # does not promise (the orders thread still holds it): remove it here.
        shutil.rmtree(testbed.get_root_dir(), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
