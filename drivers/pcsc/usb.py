"""CCID readers as udev knows them: USB interfaces of class 0x0B (smart card, CCID spec §5.1).

pcscd's CCID driver serves these; one that udev sees but pcscd does not list means pcscd has no
driver for it, or was started before it was plugged in and missed it. The pyudev context is a
parameter, so tests run this against umockdev device trees.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from posdiag.drivers.errors import NotSupported

CCID_CLASS = "0b"


@dataclass(frozen=True)
class CcidDevice:
    vid: str
    pid: str
    vendor: str | None
    product: str | None
    sys_path: str

    @property
    def label(self) -> str:
        name = " ".join(p for p in (self.vendor, self.product) if p) or "CCID reader"
        return f"{name} ({self.vid}:{self.pid})"


def ccid_devices(context: Any = None) -> tuple[CcidDevice, ...]:
    try:
        import pyudev
    except ImportError as e:
        raise NotSupported(f"pyudev missing: {e}") from None
    try:
        ctx = context or pyudev.Context()
        interfaces = list(ctx.list_devices(subsystem="usb", DEVTYPE="usb_interface"))
    except Exception as e:  # no udev database (container without /run/udev): nothing known
        raise NotSupported(f"cannot enumerate USB devices: {e}") from None
    found: dict[str, CcidDevice] = {}
    for itf in interfaces:
        if _attr(itf, "bInterfaceClass") != CCID_CLASS:
            continue
        usb = itf.find_parent("usb", "usb_device")
        if usb is None or usb.sys_path in found:
            continue
        found[usb.sys_path] = CcidDevice((_attr(usb, "idVendor") or "").lower(),
                                         (_attr(usb, "idProduct") or "").lower(),
                                         _attr(usb, "manufacturer"), _attr(usb, "product"),
                                         usb.sys_path)
    return tuple(found.values())


def _attr(device: Any, name: str) -> str | None:
    with contextlib.suppress(KeyError, UnicodeDecodeError, AttributeError):
        value = device.attributes.asstring(name).strip()
        return value or None
    return None


def served_by(device: CcidDevice, reader_names: tuple[str, ...]) -> bool:
    """pcscd names a CCID reader after the USB product string ("<product> [<interface>] 00 00")."""
    if not device.product:
        return bool(reader_names)  # cannot tell which; assume served if pcscd lists any
    return any(device.product.lower() in name.lower() for name in reader_names)
