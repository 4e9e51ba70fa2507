"""Keyboard-wedge card readers as udev sees them: presence and USB descriptors, no keystrokes.

An input event node (``/dev/input/eventN``) is a reader when its USB device is in
``devices.toml`` with ``transport = "hid"``, is configured by VID:PID, or comes from a card
reader maker in ``hid_vendors.toml`` and is a keyboard (``ID_INPUT_KEYBOARD``). Everything is
read from sysfs attributes and udev properties: the node itself is never opened here.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from posdiag.drivers.discovery import DeviceTable, load_device_table
from posdiag.drivers.errors import NotSupported

_HEX4 = re.compile(r"^[0-9a-f]{4}$")
MatchedBy = Literal["table", "config", "vendor"]


@dataclass(frozen=True)
class HidReader:
    """One reader's event node and its USB device's descriptors.

    ``firmware`` is the USB ``bcdDevice`` (device release number) as ``major.minor``: the
    firmware revision the maker reports over USB. ``serial`` is the USB serial number of the
    reader (never anything of a card).
    """

    devnode: str
    vid: str
    pid: str
    vendor: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    usb_manufacturer: str | None
    usb_product: str | None
    input_name: str | None
    by_id: str | None
    keyboard: bool
    matched_by: MatchedBy
    sys_path: str

    def __post_init__(self) -> None:
        if not (_HEX4.match(self.vid) and _HEX4.match(self.pid)):
            raise ValueError("vid and pid must be 4 lower-case hex digits")
        if not self.devnode.startswith("/dev/input/"):
            raise ValueError("devnode must be an input node under /dev/input")

    @property
    def port(self) -> str:
        """The stable by-id link when udev made one, else the node."""
        return self.by_id or self.devnode

    @property
    def usb_id(self) -> str:
        return f"{self.vid}:{self.pid}"


def load_vendors() -> Mapping[str, str]:
    """vid → maker name from the shipped ``hid_vendors.toml``."""
    text = importlib.resources.files("posdiag.drivers").joinpath("hid_vendors.toml") \
        .read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if data.get("schema") != 1:
        raise ValueError("hid_vendors.toml: schema: expected 1")
    vendors = {}
    for row in data.get("vendor", []):
        vid, name = row.get("vid"), row.get("name")
        if not isinstance(vid, str) or not _HEX4.match(vid) or not isinstance(name, str):
            raise ValueError(f"hid_vendors.toml: bad entry {row!r}")
        vendors[vid] = name
    return MappingProxyType(vendors)


def parse_usb_id(text: str) -> tuple[str, str]:
    """``"0801:0001"`` → ``("0801", "0001")``; ValueError for anything else."""
    vid, sep, pid = text.strip().lower().partition(":")
    if not sep or not _HEX4.match(vid) or not _HEX4.match(pid):
        raise ValueError(f"{text!r} is not a USB id such as \"0801:0001\"")
    return vid, pid


def find_readers(*, context: Any = None, table: DeviceTable | None = None,
                 usb_ids: Iterable[str] = ()) -> list[HidReader]:
    """Every keyboard-wedge reader's event node, table matches first, then by node name."""
    ctx = context if context is not None else _new_context()
    table = table if table is not None else load_device_table()
    configured = {parse_usb_id(u) for u in usb_ids}
    vendors = load_vendors()
    found = []
    for device in ctx.list_devices(subsystem="input"):
        reader = _describe(device, table, configured, vendors)
        if reader is not None:
            found.append(reader)
    rank = {"table": 0, "config": 1, "vendor": 2}
    return sorted(found, key=lambda r: (rank[r.matched_by], _node_number(r.devnode)))


def reader_at(path: str, *, context: Any = None, table: DeviceTable | None = None,
              usb_ids: Iterable[str] = ()) -> HidReader | None:
    """The reader behind a pinned node or by-id link; None when udev knows no such node."""
    real = os.path.realpath(path)
    for reader in find_readers(context=context, table=table, usb_ids=usb_ids):
        if path in (reader.devnode, reader.by_id) or real == reader.devnode:
            return reader
    return None


def _node_number(devnode: str) -> int:
    digits = re.sub(r"\D", "", devnode)
    return int(digits) if digits else 0


def _new_context() -> Any:
    try:
        import pyudev
        return pyudev.Context()
    except (ImportError, OSError) as exc:
        raise NotSupported(f"udev is not available: {exc}") from exc


def _describe(device: Any, table: DeviceTable, configured: set[tuple[str, str]],
              vendors: Mapping[str, str]) -> HidReader | None:
    try:
        node = device.device_node
        if node is None or not device.sys_name.startswith("event"):
            return None  # the inputN parent, or a mouseN/jsN node: not the one to grab
        usb = device.find_parent("usb", "usb_device")
        if usb is None:
            return None  # a PS/2 or virtual keyboard
        vid, pid = (_attr(usb, "idVendor") or "").lower(), (_attr(usb, "idProduct") or "").lower()
        if not (_HEX4.match(vid) and _HEX4.match(pid)):
            return None
        keyboard = _prop(device, "ID_INPUT_KEYBOARD") == "1"
        entry = table.lookup(vid, pid)
        matched: MatchedBy
        if entry is not None and entry.transport == "hid" and entry.kind == "card_reader":
            matched = "table"
        elif (vid, pid) in configured:
            matched = "config"
        elif vid in vendors and keyboard:
            matched = "vendor"
        else:
            return None
        parent = device.find_parent("input")
        manufacturer, product = _attr(usb, "manufacturer"), _attr(usb, "product")
        return HidReader(
            devnode=str(node), vid=vid, pid=pid,
            vendor=(entry.vendor if entry else None) or vendors.get(vid) or manufacturer,
            model=(entry.model if entry else None) or product,
            serial=_attr(usb, "serial"), firmware=_bcd(_attr(usb, "bcdDevice")),
            usb_manufacturer=manufacturer, usb_product=product,
            input_name=_input_name(parent),
            by_id=_by_id(device), keyboard=keyboard, matched_by=matched,
            sys_path=str(device.sys_path))
    except (OSError, LookupError, ValueError):
        return None  # unplugged while being read


def _input_name(parent: Any) -> str | None:
    if parent is None:
        return None
    return _attr(parent, "name") or (_prop(parent, "NAME") or "").strip('"') or None


def _bcd(raw: str | None) -> str | None:
    """``"0102"`` → ``"1.02"``: USB bcdDevice is binary-coded decimal, major byte first. A
    value that is not BCD is shown as the maker wrote it."""
    if raw is None or not re.fullmatch(r"[0-9a-fA-F]{4}", raw):
        return None
    return f"{int(raw[:2])}.{raw[2:]}" if raw.isdigit() else raw.lower()


def _attr(device: Any, name: str) -> str | None:
    try:
        value = device.attributes.asstring(name)
    except (KeyError, OSError, UnicodeDecodeError):
        return None
    return value.strip() or None


def _prop(device: Any, name: str) -> str | None:
    value = device.properties.get(name)
    return (value.strip() or None) if isinstance(value, str) else None


def _by_id(device: Any) -> str | None:
    links = set((_prop(device, "DEVLINKS") or "").split())
    with contextlib.suppress(OSError):
        links.update(str(link) for link in device.device_links)
    by_id = sorted(link for link in links if link.startswith("/dev/input/by-id/"))
    return by_id[0] if by_id else None
