"""Thermal zones under ``<sysfs>/class/thermal/thermal_zone*/`` (kernel thermal sysfs API).

``temp`` and ``trip_point_<n>_temp`` are millidegrees Celsius; ``trip_point_<n>_type`` is
``critical`` (the kernel shuts down), ``hot``, ``passive`` (the kernel throttles) or ``active``
(a fan step). Reading ``temp`` fails with EINVAL/ENODATA/EAGAIN on some sensors (a Wi-Fi card that
is down): that zone's temperature is None and the others are still read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.kernel_file import read_attribute, read_int

_TRIP_TYPE = re.compile(r"trip_point_([0-9]{1,4})_type")
# Beyond these a reading is a driver's placeholder (e.g. -274000 "invalid"), not a temperature.
_MIN_C, _MAX_C = -100.0, 300.0


def _check_temp(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and _MIN_C <= value <= _MAX_C):
        raise ValueError(f"{name} out of range: {value!r}")


@dataclass(frozen=True)
class TripPoint:
    index: int
    type: str | None  # critical, hot, passive, active
    temp_c: float | None  # None also for the 0 °C placeholders some drivers register

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"trip point index must be >= 0, not {self.index}")
        _check_temp("trip temp_c", self.temp_c)


@dataclass(frozen=True)
class ThermalZone:
    name: str  # thermal_zone0
    type: str | None  # acpitz, x86_pkg_temp, cpu-thermal, soc_thermal…
    temp_c: float | None
    trips: tuple[TripPoint, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"not a thermal zone name: {self.name!r}")
        _check_temp("temp_c", self.temp_c)

    @property
    def label(self) -> str:
        """What a person recognises: the type (``x86_pkg_temp``), else the directory name."""
        return self.type or self.name

    def lowest_trip_c(self, *types: str) -> float | None:
        temps = [t.temp_c for t in self.trips if t.type in types and t.temp_c is not None]
        return min(temps) if temps else None


def _millidegrees(value: int | None) -> float | None:
    if value is None:
        return None
    c = value / 1000
    return c if _MIN_C <= c <= _MAX_C else None


def read_thermal_zone(path: Path) -> ThermalZone:
    trips = []
    try:
        names = [p.name for p in path.iterdir()]
    except OSError:
        names = []
    for n in names:
        m = _TRIP_TYPE.fullmatch(n)
        if not m:
            continue
        i = int(m.group(1))
        temp = _millidegrees(read_int(path / f"trip_point_{i}_temp"))
        # x86_pkg_temp registers passive trips at 0 °C until user space sets them: not a limit.
        trips.append(TripPoint(i, read_attribute(path / n),
                               temp if temp is not None and temp > 0 else None))
    trips.sort(key=lambda t: t.index)
    return ThermalZone(path.name, read_attribute(path / "type"),
                       _millidegrees(read_int(path / "temp")), tuple(trips))


def _zone_number(p: Path) -> int:
    suffix = p.name.removeprefix("thermal_zone")
    return int(suffix) if suffix.isdigit() else 1 << 30


def read_thermal_zones(sysfs: Path) -> tuple[ThermalZone, ...]:
    """All zones in numeric order (zone10 after zone9); empty when there is no thermal class."""
    base = sysfs / "class" / "thermal"
    try:
        entries = [p for p in base.iterdir() if p.name.startswith("thermal_zone")]
    except OSError:
        return ()
    entries.sort(key=lambda p: (_zone_number(p), p.name))
    return tuple(read_thermal_zone(p) for p in entries if p.is_dir())
