"""Plug and unplug of POS peripherals, from udev's netlink monitor.

A tty's uevent carries the USB ids (ID_VENDOR_ID, ID_MODEL_ID) as properties; a usblp printer's
does not, so on ``add`` they are read from its USB parent. On removal sysfs is already gone: the
watcher describes the node as it was when it appeared (or when the watcher started).
One USB device with several ports (a modem has four) is one plug and one unplug: the first port
that appears and the last that goes are reported, not each of them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from posdiag.drivers.discovery import DeviceTable, forget_devices, list_devices, load_device_table
from posdiag.drivers.errors import NotSupported

log = logging.getLogger(__name__)
# "usb" only for CCID chip readers (no tty: pcscd reaches them through libusb), "input" only
# for keyboard-wedge card readers (their event node).
SUBSYSTEMS = ("tty", "usbmisc", "usb", "input")
CCID_INTERFACE = ":0b"  # ID_USB_INTERFACES lists ":<class><subclass><protocol>:" per interface


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
    transport: str | None = None  # "hid" for a keyboard-mode card reader's input node

    def as_event_device(self) -> dict[str, str | None]:
        return {"kind": self.kind, "vendor": self.vendor, "model": self.model, "vid": self.vid,
                "pid": self.pid, "devnode": self.devnode}


def describe(action: str, properties: Any, table: DeviceTable) -> Hotplug | None:
    """A Hotplug for a USB serial port, printer or HID card reader uevent; None for anything
    else (every other keyboard, mouse or input node included)."""
    if action not in ("add", "remove") or properties.get("ID_BUS") != "usb":
        return None
    if properties.get("SUBSYSTEM") == "usb":
        return _ccid(action, properties)
    vid = (properties.get("ID_VENDOR_ID") or "").lower() or None
    pid = (properties.get("ID_MODEL_ID") or "").lower() or None
    match = table.lookup(vid, pid) if vid and pid else None
    if properties.get("SUBSYSTEM") == "input":
        if not _hid_reader_node(properties, match, vid):
            return None
        return Hotplug(action, properties.get("DEVNAME"), vid, pid,
                       match.vendor if match else properties.get("ID_VENDOR"),
                       match.model if match else properties.get("ID_MODEL"),
                       "card_reader", None, "hid")
    return Hotplug(action, properties.get("DEVNAME"), vid, pid,
                   match.vendor if match else properties.get("ID_VENDOR"),
                   match.model if match else properties.get("ID_MODEL"),
                   match.kind if match else None,
                   match.serves if match else None)


def _ccid(action: str, properties: Any) -> Hotplug | None:
    """A USB device with a smart card (CCID) interface is a chip reader; any other raw USB
    device or interface event is not ours (its tty or usblp node is reported instead)."""
    if properties.get("DEVTYPE") != "usb_device":
        return None
    if CCID_INTERFACE not in (properties.get("ID_USB_INTERFACES") or ""):
        return None
    return Hotplug(action, properties.get("DEVNAME"),
                   (properties.get("ID_VENDOR_ID") or "").lower() or None,
                   (properties.get("ID_MODEL_ID") or "").lower() or None,
                   properties.get("ID_VENDOR"), properties.get("ID_MODEL"), "chip_reader", None)


def _hid_reader_node(properties: Any, match: Any, vid: str | None) -> bool:
    """An input uevent is a card reader's when it is its event node (one per reader, the one
    the swipe test grabs) and the device is a table HID reader or a card maker's keyboard."""
    if not (properties.get("DEVNAME") or "").startswith("/dev/input/event"):
        return False
    if match is not None:
        return match.transport == "hid" and match.kind == "card_reader"
    from posdiag.drivers.hid.udev import load_vendors

    return vid in load_vendors() and properties.get("ID_INPUT_KEYBOARD") == "1"


class Watcher:
    """Runs a udev monitor in a daemon thread and calls ``on_event`` for each relevant uevent."""

    def __init__(self, on_event: Callable[[Hotplug], None], *, context: Any = None,
                 table: DeviceTable | None = None, seed: bool = True) -> None:
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
        self.ports = PortBook()
        # Devices already plugged in when we start can still be unplugged: know them now.
        with contextlib.suppress(NotSupported, OSError):
            if not seed:
                return
            for d in list_devices(self._context, self.table):
                m = d.match
                self.ports.seed(d.devnode, _device_key({
                    "ID_VENDOR_ID": d.vid, "ID_MODEL_ID": d.pid, "ID_SERIAL_SHORT": d.serial}),
                    Hotplug("add", d.devnode, d.vid, d.pid, d.vendor, d.model,
                            m.kind if m else None, m.serves if m else None))
            from posdiag.drivers.hid.udev import find_readers

            for r in find_readers(context=self._context, table=self.table):
                self.ports.seed(r.devnode, _device_key({
                    "ID_VENDOR_ID": r.vid, "ID_MODEL_ID": r.pid, "ID_SERIAL_SHORT": r.serial}),
                    Hotplug("add", r.devnode, r.vid, r.pid, r.vendor, r.model, "card_reader",
                            None, "hid"))

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
            for event in self.ports.update(device.action or "", _properties(device), self.table):
                self.on_event(event)


class PortBook:
    """Which USB device each known port node belongs to, so plugs are reported per device and
    removals can be described after sysfs is gone."""

    def __init__(self) -> None:
        self.by_node: dict[str, tuple[str, Hotplug]] = {}
        self.by_device: dict[str, set[str]] = {}
        self.announced: dict[str, Hotplug] = {}  # per device: how its plug was reported

    def seed(self, devnode: str, key: str, hotplug: Hotplug) -> None:
        self.by_node[devnode] = (key, hotplug)
        self.by_device.setdefault(key, set()).add(devnode)
        self.announced.setdefault(key, hotplug)

    def update(self, action: str, properties: Any, table: DeviceTable) -> list[Hotplug]:
        devnode = properties.get("DEVNAME")
        if action == "add":
            event = describe(action, properties, table)
            if event is None or not devnode:
                return [event] if event is not None else []
            key = _device_key(properties)
            first = not self.by_device.get(key)
            self.seed(devnode, key, event)
            return [event] if first else []
        if action == "remove":
            known = self.by_node.pop(devnode, None) if devnode else None
            if known is None:
                event = describe(action, properties, table)
                return [event] if event is not None else []
            key, added = known
            ports = self.by_device.get(key, set())
            ports.discard(devnode)
            if ports:
                return []  # other ports of the same USB device are still there
            self.by_device.pop(key, None)
            return [replace(self.announced.pop(key, added), action="remove")]
        return []


def _device_key(properties: Any) -> str:
    """Identifies the USB device a port belongs to: its ids and serial number. (Two identical
    devices without serial numbers count as one; their ports still each get checked.)"""
    parts = (properties.get(k) or "" for k in ("ID_VENDOR_ID", "ID_MODEL_ID", "ID_SERIAL_SHORT"))
    return ":".join(p.lower() for p in parts)


def _properties(device: Any) -> dict[str, str]:
    """The uevent's properties, completed from the USB parent when udev put no ids on the node
    (usblp printers) — only possible while the device is still in sysfs, i.e. on add."""
    props = dict(device.properties)
    if props.get("ID_BUS") == "usb" or (device.action or "") != "add":
        return props
    try:
        usb = device.find_parent("usb", "usb_device")
        if usb is None:
            return props
        attrs = usb.attributes
        props.update(ID_BUS="usb", ID_VENDOR_ID=attrs.asstring("idVendor").strip(),
                     ID_MODEL_ID=attrs.asstring("idProduct").strip())
        for key, attr in (("ID_VENDOR", "manufacturer"), ("ID_MODEL", "product"),
                          ("ID_SERIAL_SHORT", "serial")):
            with contextlib.suppress(KeyError, OSError, UnicodeDecodeError):
                props.setdefault(key, attrs.asstring(attr).strip())
    except (KeyError, OSError, LookupError, UnicodeDecodeError):
        return dict(device.properties)  # gone again already: what the uevent itself said
    return props
