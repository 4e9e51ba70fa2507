"""Power supplies under ``<sysfs>/class/power_supply/<name>/`` (kernel ABI: sysfs-class-power).

Every entry is read, whatever its name (``AC``, ``ADP1``, ``axp20x-usb``,
``ucsi-source-psy-USBC000:001``, ``BAT0``, ``hidpp_battery_0``): psutil only looks at ``AC``/``AC0``
and ``BAT*``, which misses most embedded boards. Units are converted once here (µV → V, µWh → Wh,
µAh → Ah, 0.1 °C → °C). An attribute that is missing, unreadable (EIO, ENODATA, ENODEV) or garbage
is None on its own; the rest of the supply is still read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.kernel_file import read_attribute, read_int

# Sources that feed the terminal from outside. Newer kernels split USB into USB_DCP, USB_C, USB_PD…
_EXTERNAL_TYPES = frozenset({"Mains", "Wireless", "BrickID"})
# Stores of energy the terminal runs from when the external supply is gone.
_STORAGE_TYPES = frozenset({"Battery", "UPS"})


def _optional_range(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None and not (lo <= value <= hi and math.isfinite(value)):
        raise ValueError(f"{name} out of range {lo:g}..{hi:g}: {value!r}")


@dataclass(frozen=True)
class PowerSupply:
    """One ``power_supply`` class device; None means "not reported or not readable"."""

    name: str
    type: str | None = None  # Mains, USB, USB_C…, Battery, UPS, Wireless, Unknown
    online: int | None = None  # 0 offline, 1 online (fixed), 2 online (programmable)
    present: bool | None = None
    status: str | None = None  # Charging, Discharging, Not charging, Full, Unknown
    capacity_percent: int | None = None
    capacity_level: str | None = None  # Critical, Low, Normal, High, Full, Unknown
    health: str | None = None  # Good, Overheat, Dead, Over voltage, Cold, …
    technology: str | None = None
    scope: str | None = None  # System, Device (a peripheral's own battery), Unknown
    voltage_now_v: float | None = None
    voltage_min_design_v: float | None = None
    voltage_max_design_v: float | None = None
    energy_now_wh: float | None = None
    energy_full_wh: float | None = None
    charge_now_ah: float | None = None
    charge_full_ah: float | None = None
    temp_c: float | None = None
    manufacturer: str | None = None
    model_name: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"not a power_supply name: {self.name!r}")
        _optional_range("capacity_percent", self.capacity_percent, 0, 100)
        _optional_range("online", self.online, 0, 255)
        for key in ("voltage_now_v", "voltage_min_design_v", "voltage_max_design_v",
                    "energy_now_wh", "energy_full_wh", "charge_now_ah", "charge_full_ah"):
            _optional_range(key, getattr(self, key), 0, 1e6)
        _optional_range("temp_c", self.temp_c, -100, 200)

    @property
    def is_external(self) -> bool:
        """Mains, USB (any flavour) or wireless charger: power from outside."""
        t = self.type or ""
        return t in _EXTERNAL_TYPES or t == "USB" or t.startswith("USB_")

    @property
    def is_storage(self) -> bool:
        """A battery or UPS the terminal can run from."""
        return (self.type or "") in _STORAGE_TYPES

    @property
    def is_online(self) -> bool | None:
        return None if self.online is None else self.online > 0

    @property
    def is_system_scope(self) -> bool:
        """False for a peripheral's own battery (a wireless mouse or scanner), which does not
        power the terminal."""
        return self.scope != "Device"

    @property
    def percent(self) -> float | None:
        """State of charge: ``capacity`` if the driver gives it, else now/full energy or charge."""
        if self.capacity_percent is not None:
            return float(self.capacity_percent)
        for now, full in ((self.energy_now_wh, self.energy_full_wh),
                          (self.charge_now_ah, self.charge_full_ah)):
            if now is not None and full:
                return min(100.0, 100.0 * now / full)
        return None


def _micro(value: int | None) -> float | None:
    """µ-units → units; 0 or negative is "not measured" for these quantities."""
    return value / 1_000_000 if value is not None and value > 0 else None


def _micro_or_zero(value: int | None) -> float | None:
    """Like ``_micro`` but an empty battery's 0 µWh is a real reading."""
    return value / 1_000_000 if value is not None and value >= 0 else None


def read_power_supply(path: Path) -> PowerSupply:
    """Read one ``power_supply`` directory; it never fails, unreadable parts are None."""

    def text(attr: str) -> str | None:
        return read_attribute(path / attr)

    def number(attr: str) -> int | None:
        return read_int(path / attr)

    online = number("online")
    present = number("present")
    capacity = number("capacity")
    temp = number("temp")
    temp_c = temp / 10 if temp is not None and -1000 <= temp <= 2000 else None
    return PowerSupply(
        name=path.name,
        type=text("type"),
        online=online if online is not None and 0 <= online <= 255 else None,
        present={0: False, 1: True}.get(present) if present is not None else None,
        status=text("status"),
        capacity_percent=capacity if capacity is not None and 0 <= capacity <= 100 else None,
        capacity_level=text("capacity_level"),
        health=text("health"),
        technology=text("technology"),
        scope=text("scope"),
        voltage_now_v=_bounded(_micro(number("voltage_now"))),
        voltage_min_design_v=_bounded(_micro(number("voltage_min_design"))),
        voltage_max_design_v=_bounded(_micro(number("voltage_max_design"))),
        energy_now_wh=_bounded(_micro_or_zero(number("energy_now"))),
        energy_full_wh=_bounded(_micro(number("energy_full"))),
        charge_now_ah=_bounded(_micro_or_zero(number("charge_now"))),
        charge_full_ah=_bounded(_micro(number("charge_full"))),
        temp_c=temp_c,
        manufacturer=text("manufacturer"),
        model_name=text("model_name"),
    )


def _bounded(value: float | None) -> float | None:
    # A 19-digit garbage number is "a number" to the parser but no real supply's value.
    return value if value is not None and value <= 1e6 else None


def read_power_supplies(sysfs: Path) -> tuple[PowerSupply, ...]:
    """All supplies, sorted by name; empty when the class directory is missing (containers,
    boards without a power_supply driver) or unreadable."""
    base = sysfs / "class" / "power_supply"
    try:
        entries = sorted(base.iterdir(), key=lambda p: p.name)
    except OSError:
        return ()
    supplies = []
    for entry in entries:
        try:
            if not entry.is_dir():  # the class entries are symlinks to device directories
                continue
        except OSError:
            continue
        supplies.append(read_power_supply(entry))
    return tuple(supplies)
