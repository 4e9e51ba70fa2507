"""Thermal zone reader: temperatures, trip points, unreadable sensors."""

from __future__ import annotations

from pathlib import Path

import pytest

from posdiag.drivers.sysfs.thermal import ThermalZone, TripPoint, read_thermal_zones


def _zone(root: Path, n: int, **attrs: str) -> Path:
    d = root / "class" / "thermal" / f"thermal_zone{n}"
    d.mkdir(parents=True)
    for k, v in attrs.items():
        (d / k).write_text(v + "\n")
    return d


def test_healthy_fixture(fixtures_dir: Path) -> None:
    acpi, pkg = read_thermal_zones(fixtures_dir / "sysfs/healthy-terminal")
    assert (acpi.name, acpi.type, acpi.temp_c) == ("thermal_zone0", "acpitz", 27.8)
    assert acpi.trips == (TripPoint(0, "critical", 105.0),)
    assert acpi.lowest_trip_c("critical") == 105.0
    assert pkg.label == "x86_pkg_temp" and pkg.temp_c == 47.0
    # x86_pkg_temp's 0 °C passive trips are unset placeholders, not limits
    assert [t.temp_c for t in pkg.trips] == [None, None]
    assert pkg.lowest_trip_c("passive") is None


def test_cooling_devices_are_not_zones(fixtures_dir: Path) -> None:
    names = [z.name for z in read_thermal_zones(fixtures_dir / "sysfs/healthy-terminal")]
    assert names == ["thermal_zone0", "thermal_zone1"]


def test_numeric_order_and_trip_order(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        _zone(tmp_path, n, type=f"z{n}", temp="40000")
    _zone(tmp_path, 3, type="cpu-thermal", temp="52500",
          trip_point_2_type="critical", trip_point_2_temp="110000",
          trip_point_0_type="passive", trip_point_0_temp="70000",
          trip_point_1_type="hot", trip_point_1_temp="95000",
          trip_point_10_type="active", trip_point_10_temp="60000")
    zones = read_thermal_zones(tmp_path)
    assert [z.name for z in zones] == ["thermal_zone1", "thermal_zone2", "thermal_zone3",
                                       "thermal_zone10"]
    cpu = zones[2]
    assert [t.index for t in cpu.trips] == [0, 1, 2, 10]
    assert cpu.lowest_trip_c("passive", "hot") == 70.0
    assert cpu.lowest_trip_c("critical") == 110.0


@pytest.mark.parametrize("raw", ["", "hot", "-274000", "2147483647", "4.5e4"])
def test_unreadable_or_garbage_temp_is_none(tmp_path: Path, raw: str) -> None:
    _zone(tmp_path, 0, type="iwlwifi_1", temp=raw)
    _zone(tmp_path, 1, type="acpitz", temp="30000")
    a, b = read_thermal_zones(tmp_path)
    assert a.temp_c is None and a.type == "iwlwifi_1"
    assert b.temp_c == 30.0


def test_temp_read_error_is_none(tmp_path: Path) -> None:
    d = _zone(tmp_path, 0, type="soc_thermal")
    (d / "temp").mkdir()  # EISDIR: as fast as a driver's EINVAL/ENODATA
    (z,) = read_thermal_zones(tmp_path)
    assert z.temp_c is None and z.type == "soc_thermal"


def test_negative_temperature_is_kept(tmp_path: Path) -> None:
    _zone(tmp_path, 0, type="ambient", temp="-15500")
    assert read_thermal_zones(tmp_path)[0].temp_c == -15.5


def test_no_thermal_class(tmp_path: Path) -> None:
    assert read_thermal_zones(tmp_path) == ()


def test_dataclass_validates() -> None:
    with pytest.raises(ValueError):
        ThermalZone("thermal_zone0", "x", 1000.0)
    with pytest.raises(ValueError):
        ThermalZone("", "x", 10.0)
    with pytest.raises(ValueError):
        TripPoint(-1, "critical", 100.0)
    with pytest.raises(ValueError):
        TripPoint(0, "critical", float("inf"))
