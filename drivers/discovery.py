"""Find POS peripherals on USB through udev: serial ports (ttyUSB/ttyACM) and usblp printers.

Each port is matched against ``devices.toml`` (VID:PID -> driver, shipped as package data), so
``driver = "auto"`` in the configuration becomes ``find(kind)``: the ports worth opening for a
kind of device, best first. The pyudev ``Context`` is a parameter, so tests run the same code
against umockdev device trees.

The device checks run in parallel and each asks for its own kind: without a context of their own
they share one enumeration (``DeviceListCache``, ``CACHE_TTL_S``) instead of walking udev four
times at once. ``forget_devices()`` drops it when udev reports a plug or unplug.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import re
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posdiag.drivers.errors import NotSupported

__all__ = [
    "CACHE_TTL_S",
    "DRIVERS",
    "KINDS",
    "DeviceEntry",
    "DeviceListCache",
    "DeviceTable",
    "DeviceTableError",
    "DiscoveredDevice",
    "find",
    "forget_devices",
    "list_devices",
    "load_device_table",
]

# Which kind of device each driver talks to; a bridge is probed with its driver for that kind.
DRIVERS: Mapping[str, str] = {
    "idtech": "card_reader",
    "magtek": "card_reader",
    "pn532": "contactless",
    "at_modem": "cellular",
    "escpos": "printer",
}
KINDS = frozenset({"card_reader", "contactless", "cellular", "printer", "bridge"})
TRANSPORTS = frozenset({"tty", "usblp", "hid"})
_HEX4 = re.compile(r"^[0-9a-f]{4}$")
_ENTRY_KEYS = frozenset({"vid", "pid", "vendor", "model", "driver", "kind", "transport",
                         "at_interface"})


class DeviceTableError(ValueError):
    """devices.toml (or a replacement table) is malformed; the message names file and entry."""


@dataclass(frozen=True)
class DeviceEntry:
    """One row of the VID:PID table."""

    vid: str
    pid: str
    vendor: str
    model: str
    driver: str
    kind: str
    transport: str = "tty"
    at_interface: int | None = None

    def __post_init__(self) -> None:
        for name in ("vid", "pid"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _HEX4.match(value):
                raise ValueError(f"{name} must be 4 lower-case hex digits, got {value!r}")
        for name in ("vendor", "model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {sorted(DRIVERS)}, got {self.driver!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if self.kind != "bridge" and DRIVERS[self.driver] != self.kind:
            raise ValueError(f"driver {self.driver!r} serves {DRIVERS[self.driver]!r}, "
                             f"not {self.kind!r}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {sorted(TRANSPORTS)}, "
                             f"got {self.transport!r}")
        if self.at_interface is not None and (
                isinstance(self.at_interface, bool) or not isinstance(self.at_interface, int)
                or not 0 <= self.at_interface <= 255):
            raise ValueError(f"at_interface must be an interface number 0-255, "
                             f"got {self.at_interface!r}")
        if (self.at_interface is not None) != (self.driver == "at_modem"):
            raise ValueError("at_interface is required for at_modem entries and only for them")

    @property
    def serves(self) -> str:
        """The device kind this entry's driver talks to (for a bridge: what may sit behind it)."""
        return DRIVERS[self.driver]


@dataclass(frozen=True)
class DeviceTable:
    entries: tuple[DeviceEntry, ...]

    def __post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for entry in self.entries:
            key = (entry.vid, entry.pid)
            if key in seen:
                raise ValueError(f"duplicate entry {entry.vid}:{entry.pid}")
            seen.add(key)

    def lookup(self, vid: str, pid: str) -> DeviceEntry | None:
        vid, pid = vid.lower(), pid.lower()
        for entry in self.entries:
            if entry.vid == vid and entry.pid == pid:
                return entry
        return None


def load_device_table(path: str | Path | None = None) -> DeviceTable:
    """The shipped ``devices.toml`` (package data of ``posdiag.drivers``), or ``path``."""
    if path is None:
        resource = importlib.resources.files("posdiag.drivers").joinpath("devices.toml")
        name, text = "devices.toml", resource.read_text(encoding="utf-8")
    else:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DeviceTableError(f"{name}: cannot read: {exc.strerror}") from exc
    return parse_device_table(text, name=name)


def parse_device_table(text: str, *, name: str = "<table>") -> DeviceTable:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeviceTableError(f"{name}: not valid TOML: {exc}") from exc
    if data.get("schema") != 1:
        raise DeviceTableError(f"{name}: schema: expected 1, got {data.get('schema')!r}")
    unknown = set(data) - {"schema", "device"}
    if unknown:
        raise DeviceTableError(f"{name}: unknown key(s) {', '.join(sorted(unknown))}")
    rows = data.get("device", [])
    if not isinstance(rows, list):
        raise DeviceTableError(f"{name}: device: expected an array of tables")
    entries = []
    for index, row in enumerate(rows):
        where = f"{name}: device #{index + 1}"
        if not isinstance(row, dict):
            raise DeviceTableError(f"{where}: expected a table")
        unknown = set(row) - _ENTRY_KEYS
        if unknown:
            raise DeviceTableError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            entries.append(DeviceEntry(**row))
        except TypeError as exc:  # a required key is missing
            raise DeviceTableError(f"{where}: {exc}") from exc
        except ValueError as exc:
            raise DeviceTableError(f"{where} ({row.get('vid')}:{row.get('pid')}): {exc}") from exc
    try:
        return DeviceTable(tuple(entries))
    except ValueError as exc:
        raise DeviceTableError(f"{name}: {exc}") from exc


@dataclass(frozen=True)
class DiscoveredDevice:
    """A USB serial port or USB printer node as udev sees it, with its table match.

    ``vendor``/``model`` are the best names known: the table's when matched (USB strings are
    often generic, e.g. a CH340 calls itself "USB Serial"), else the USB strings, else the
    udev hardware database. The raw strings stay in ``usb_manufacturer``/``usb_product``.
    """

    vid: str
    pid: str
    vendor: str | None
    model: str | None
    serial: str | None
    devnode: str
    subsystem: str
    by_id: str | None
    interface_number: int | None
    kernel_driver: str | None
    usb_manufacturer: str | None
    usb_product: str | None
    sys_path: str
    modemmanager_ignored: bool
    match: DeviceEntry | None

    def __post_init__(self) -> None:
        for name in ("vid", "pid"):
            if not _HEX4.match(getattr(self, name)):
                raise ValueError(f"{name} must be 4 lower-case hex digits")
        if self.subsystem not in ("tty", "usbmisc"):
            raise ValueError(f"unexpected subsystem {self.subsystem!r}")
        if not self.devnode.startswith("/"):
            raise ValueError("devnode must be an absolute path")

    @property
    def driver(self) -> str | None:
        return self.match.driver if self.match else None

    @property
    def kind(self) -> str | None:
        return self.match.kind if self.match else None

    @property
    def port(self) -> str:
        """The path to open: the stable by-id link when udev made one, else the node."""
        return self.by_id or self.devnode

    @property
    def is_at_port(self) -> bool:
        """For a modem: is this the interface that carries the primary AT channel?"""
        return (self.match is not None and self.match.at_interface is not None
                and self.match.at_interface == self.interface_number)


# How long one udev enumeration answers later callers: long enough to cover the device checks
# that start together in one run, short enough that a periodic run never sees an old one.
CACHE_TTL_S = 2.0


@dataclass(frozen=True)
class _Snapshot:
    table: DeviceTable | None  # held, so the id() it is filed under cannot be reused meanwhile
    taken_at: float
    devices: tuple[DiscoveredDevice, ...]


class DeviceListCache:
    """One enumeration shared by the callers that ask for it within ``ttl_s`` of each other.

    Entries are keyed by the identity of the device table (``None``: the shipped one). Callers
    that arrive while an enumeration runs wait for it rather than start their own. An error
    is not cached: the next caller tries again. ``forget()`` drops every entry, and an
    enumeration that was already running when it was called is returned to its caller but not
    kept (it may predate the plug event that caused the ``forget``).
    """

    def __init__(self, ttl_s: float = CACHE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._state = threading.Lock()  # guards _entries and _generation; never held for I/O
        self._enumerating = threading.Lock()  # one enumeration at a time; waiters queue here
        self._entries: dict[int, _Snapshot] = {}
        self._generation = 0

    def devices(self, table: DeviceTable | None,
                enumerate_devices: Callable[[], list[DiscoveredDevice]]) -> list[DiscoveredDevice]:
        """The fresh cached list for ``table``, else what ``enumerate_devices()`` returns now."""
        cached = self._fresh(table)
        if cached is not None:
            return list(cached)
        with self._enumerating:
            cached = self._fresh(table)  # the enumeration we waited for may be the answer
            if cached is not None:
                return list(cached)
            with self._state:
                generation = self._generation
                taken_at = self._clock()  # the list can be no older than its start
            found = enumerate_devices()
            with self._state:
                if self._generation == generation:
                    self._entries[id(table)] = _Snapshot(table, taken_at, tuple(found))
            return found

    def forget(self) -> None:
        with self._state:
            self._generation += 1
            self._entries.clear()

    def _fresh(self, table: DeviceTable | None) -> tuple[DiscoveredDevice, ...] | None:
        with self._state:
            now = self._clock()
            for key, snapshot in list(self._entries.items()):
                if now - snapshot.taken_at >= self.ttl_s:
                    del self._entries[key]
            entry = self._entries.get(id(table))
            return entry.devices if entry is not None and entry.table is table else None


_CACHE = DeviceListCache()


def forget_devices() -> None:
    """Drop the shared enumeration: a device was plugged or unplugged."""
    _CACHE.forget()


def list_devices(context: Any = None, table: DeviceTable | None = None) -> list[DiscoveredDevice]:
    """All USB serial ports and usblp printers, sorted by device node.

    ``context`` is a ``pyudev.Context``. Without one, the process's own udev is asked and the
    answer is shared for ``CACHE_TTL_S`` (see ``DeviceListCache``); a given context is always
    enumerated afresh. A device that disappears while it is being read is skipped, not an error.
    """
    if context is None:
        return _CACHE.devices(table, lambda: _enumerate(_new_context(), table))
    return _enumerate(context, table)


def _enumerate(ctx: Any, table: DeviceTable | None) -> list[DiscoveredDevice]:
    table = table if table is not None else load_device_table()
    found: list[DiscoveredDevice] = []
    for subsystem in ("tty", "usbmisc"):
        for device in ctx.list_devices(subsystem=subsystem):
            if subsystem == "usbmisc" and not device.sys_name.startswith("lp"):
                continue
            discovered = _describe(device, subsystem, table)
            if discovered is not None:
                found.append(discovered)
    return sorted(found, key=lambda d: d.devnode)


def find(kind: str, *, context: Any = None, table: DeviceTable | None = None,
         include_bridges: bool = True) -> list[DiscoveredDevice]:
    """Ports worth opening for ``kind`` (``driver = "auto"``), best first; empty if none.

    - devices the table names as ``kind`` come first; for a modem only its AT interface;
    - then, with ``include_bridges``, generic USB-serial bridges whose table entry says a
      device of this kind is commonly behind them (``kind == "bridge"`` on the result: the
      caller must probe before trusting it).
    """
    if kind not in KINDS - {"bridge"}:
        raise ValueError(f"kind must be one of {sorted(KINDS - {'bridge'})}, got {kind!r}")
    devices = list_devices(context, table)
    exact = [d for d in devices if d.match is not None and d.match.kind == kind
             and d.match.transport != "hid"
             and (d.match.at_interface is None or d.is_at_port)]
    bridges = [d for d in devices if include_bridges and d.match is not None
               and d.match.kind == "bridge" and d.match.serves == kind]
    return exact + bridges


# -- udev -------------------------------------------------------------------------------------


def _new_context() -> Any:
    try:
        import pyudev
        return pyudev.Context()
    except (ImportError, OSError) as exc:
        raise NotSupported(f"udev is not available: {exc}") from exc


def _describe(device: Any, subsystem: str, table: DeviceTable) -> DiscoveredDevice | None:
    try:
        usb = device.find_parent("usb", "usb_device")
        if usb is None or device.device_node is None:
            return None  # a virtual or on-board port, not USB
        vid = _attr(usb, "idVendor") or _prop(device, "ID_VENDOR_ID")
        pid = _attr(usb, "idProduct") or _prop(device, "ID_MODEL_ID")
        if not vid or not pid or not _HEX4.match(vid.lower()) or not _HEX4.match(pid.lower()):
            return None
        vid, pid = vid.lower(), pid.lower()
        interface = device.find_parent("usb", "usb_interface")
        match = table.lookup(vid, pid)
        manufacturer = _attr(usb, "manufacturer")
        product = _attr(usb, "product")
        vendor = (match.vendor if match else None) or manufacturer \
            or _prop(device, "ID_VENDOR_FROM_DATABASE")
        model = (match.model if match else None) or product \
            or _prop(device, "ID_MODEL_FROM_DATABASE")
        return DiscoveredDevice(
            vid=vid, pid=pid, vendor=vendor, model=model,
            serial=_attr(usb, "serial") or _prop(device, "ID_SERIAL_SHORT"),
            devnode=str(device.device_node), subsystem=subsystem,
            by_id=_by_id(device),
            interface_number=_interface_number(device, interface),
            kernel_driver=(_driver(interface) if interface is not None else None)
            or _prop(device, "ID_USB_DRIVER"),
            usb_manufacturer=manufacturer, usb_product=product,
            sys_path=str(device.sys_path),
            modemmanager_ignored=_prop(device, "ID_MM_DEVICE_IGNORE") == "1",
            match=match)
    except (OSError, LookupError, ValueError):
        # Unplugged while we were reading it (pyudev raises DeviceNotFoundError, a LookupError).
        return None


def _attr(device: Any, name: str) -> str | None:
    try:
        value = device.attributes.asstring(name)
    except (KeyError, OSError, UnicodeDecodeError):
        return None
    value = value.strip()
    return value or None


def _prop(device: Any, name: str) -> str | None:
    value = device.properties.get(name)
    return (value.strip() or None) if isinstance(value, str) else None


def _driver(device: Any) -> str | None:
    try:
        return device.driver or None
    except OSError:
        return None


def _by_id(device: Any) -> str | None:
    links = set((_prop(device, "DEVLINKS") or "").split())
    with contextlib.suppress(OSError):
        links.update(str(link) for link in device.device_links)
    by_id = sorted(link for link in links if link.startswith("/dev/serial/by-id/"))
    return by_id[0] if by_id else None


def _interface_number(device: Any, interface: Any) -> int | None:
    raw = _attr(interface, "bInterfaceNumber") if interface is not None else None
    raw = raw or _prop(device, "ID_USB_INTERFACE_NUM")
    if raw is None:
        return None
    try:
        return int(raw, 16)  # sysfs prints it as two hex digits
    except ValueError:
        return None
