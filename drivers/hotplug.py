"""Plug and unplug of POS peripherals, from udev's netlink monitor.

On removal the device's sysfs is already gone, so the description comes from the uevent's
properties (ID_VENDOR_ID, ID_MODEL_ID), matched against the same VID:PID table as discovery.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from posdiag.drivers.discovery import DeviceTable, forget_devices, load_device_table
from posdiag.drivers.errors import NotSupported

log = logging.getLogger(__name__)
SUBSYSTEMS = ("tty", "usbmisc")


@dataclass(frozen=True)
class Hotplug:
    action: str  # "add" or "remove"
    devnode: str | None
    vid: str | None
    pid: str | None
    vendor: str | None
    model: str | None
    kind: str | None  # card_reader, contactless, cellular, printer, bridge; None when unknown
    serves: str | None  # for a bridge, the kind of device usually behind it

    def as_event_device(self) -> dict[str, str | None]:
        return {"kind": self.kind, "vendor": self.vendor, "model": self.model, "vid": self.vid,
                "pid": self.pid, "devnode": self.devnode}


def describe(action: str, properties: Any, table: DeviceTable) -> Hotplug | None:
    """A Hotplug for a USB serial port or printer uevent; None for anything else."""
    if action not in ("add", "remove") or properties.get("ID_BUS") != "usb":
        return None
    vid = (properties.get("ID_VENDOR_ID") or "").lower() or None
    pid = (properties.get("ID_MODEL_ID") or "").lower() or None
    match = table.lookup(vid, pid) if vid and pid else None
    return Hotplug(action, properties.get("DEVNAME"), vid, pid,
                   match.vendor if match else properties.get("ID_VENDOR"),
                   match.model if match else properties.get("ID_MODEL"),
                   match.kind if match else None,
                   match.serves if match else None)


class Watcher:
    """Runs a udev monitor in a daemon thread and calls ``on_event`` for each relevant uevent."""

    def __init__(self, on_event: Callable[[Hotplug], None], *, context: Any = None,
                 table: DeviceTable | None = None) -> None:
        self.on_event = on_event
        self.table = table or load_device_table()
        try:
            import pyudev

            self._context = context or pyudev.Context()
            self._monitor = pyudev.Monitor.from_netlink(self._context)
            for subsystem in SUBSYSTEMS:
                self._monitor.filter_by(subsystem)
        except (ImportError, OSError) as e:
            raise NotSupported(f"cannot watch udev events: {e}") from e
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="udev-watch", daemon=True)

    def start(self) -> Watcher:
        self._monitor.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                device = self._monitor.poll(timeout=0.5)
            except OSError as e:  # the netlink socket broke: say so once, stop watching
                log.warning("udev monitor stopped: %s", e)
                return
            if device is None:
                continue
            # Before anyone hears of it: a check started for this event must see the new state,
            # not the device list discovery may still hold from just before.
            forget_devices()
            event = describe(device.action or "", device.properties, self.table)
            if event is not None:
                self.on_event(event)
