"""Network interfaces from ``<sysfs>/class/net/<name>/``: link state, type, flags, address.

Each attribute is read on its own and a read error leaves just that attribute ``None``: reading
``carrier`` of an interface that is administratively down fails with EINVAL on real kernels, and
``speed`` does the same for most Wi-Fi and virtual devices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# <linux/if_arp.h> hardware types seen on terminals
ARPHRD_ETHER = 1
ARPHRD_PPP = 512
ARPHRD_RAWIP = 519
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE  # tun, WireGuard, qmi_wwan in raw-IP mode

# <linux/if.h> interface flags
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40

OPERSTATES = frozenset({"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant",
                        "up"})


@dataclass(frozen=True)
class NetInterface:
    """One entry of ``/sys/class/net``. ``None`` means the kernel did not say (or refused)."""

    name: str
    operstate: str | None = None
    carrier: bool | None = None
    arphrd: int | None = None
    flags: int | None = None
    address: str | None = None
    devtype: str | None = None  # DEVTYPE= from uevent: wlan, wwan, bridge, vlan, ...
    has_device: bool = False  # a ``device`` link: backed by hardware (PCI, USB, SDIO, ...)
    has_wireless_dir: bool = False  # ``wireless/`` or ``phy80211``: a Wi-Fi (cfg80211) device
    speed_mbps: int | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"not an interface name: {self.name!r}")
        if self.operstate is not None and self.operstate not in OPERSTATES:
            object.__setattr__(self, "operstate", "unknown")

    @property
    def is_loopback(self) -> bool:
        return self.arphrd == ARPHRD_LOOPBACK or bool((self.flags or 0) & IFF_LOOPBACK)

    @property
    def is_wireless(self) -> bool:
        return self.has_wireless_dir or self.devtype == "wlan"

    @property
    def admin_up(self) -> bool | None:
        return None if self.flags is None else bool(self.flags & IFF_UP)

    @property
    def kind(self) -> str:
        """``loopback``, ``wifi``, ``wwan``, ``ppp``, ``ethernet`` or ``other``."""
        if self.is_loopback:
            return "loopback"
        if self.is_wireless:
            return "wifi"
        if self.devtype == "wwan" or self.arphrd == ARPHRD_RAWIP:
            return "wwan"
        if self.arphrd == ARPHRD_PPP:
            return "ppp"
        if self.arphrd == ARPHRD_ETHER:
            return "ethernet"
        return "other"

    @property
    def link_up(self) -> bool:
        """Administratively up and the link carries traffic.

        ``operstate`` is authoritative when it says ``up``; drivers that do not track it report
        ``unknown`` (ppp, tun, some USB modems), and then the carrier decides. ``dormant`` is a
        Wi-Fi link still waiting for WPA authentication: not usable yet.
        """
        if self.admin_up is False:
            return False
        if self.operstate == "up":
            return self.carrier is not False
        if self.operstate in (None, "unknown"):
            return self.carrier is True
        return False


def _attr(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace").strip()
    except OSError:  # EINVAL for carrier/speed of a down link, ENOENT, EACCES
        return None


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _uevent(path: Path) -> dict[str, str]:
    text = _attr(path) or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def read_interface(sysfs: Path, name: str) -> NetInterface | None:
    """One interface, or None if it does not exist (or the name cannot be one)."""
    if not name or "/" in name or name in (".", ".."):
        return None
    base = sysfs / "class" / "net" / name
    if not base.is_dir():
        return None
    carrier = _attr(base / "carrier")
    speed = _int(_attr(base / "speed"))
    flags = _attr(base / "flags")
    operstate = _attr(base / "operstate")
    return NetInterface(
        name=name,
        operstate=operstate.lower() if operstate else None,
        carrier={"1": True, "0": False}.get(carrier or ""),
        arphrd=_int(_attr(base / "type")),
        flags=_int(flags, 16) if flags and flags.lower().startswith("0x") else _int(flags),
        address=_attr(base / "address") or None,
        devtype=_uevent(base / "uevent").get("DEVTYPE") or None,
        has_device=os.path.lexists(base / "device"),
        has_wireless_dir=(base / "wireless").is_dir() or os.path.lexists(base / "phy80211"),
        speed_mbps=speed if speed is not None and speed > 0 else None,
    )


def read_interfaces(sysfs: Path) -> tuple[NetInterface, ...]:
    """Every interface under ``<sysfs>/class/net``, sorted by name; empty if there is none."""
    try:
        names = sorted(p.name for p in (sysfs / "class" / "net").iterdir())
    except OSError:
        return ()
    found = (read_interface(sysfs, n) for n in names)
    return tuple(i for i in found if i is not None)
