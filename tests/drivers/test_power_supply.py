"""power_supply class reader: every supply whatever its name, units, per-attribute failures."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posdiag.drivers import kernel_file
from posdiag.drivers.sysfs.power_supply import PowerSupply, read_power_supplies, read_power_supply

HEALTHY = Path(__file__).resolve().parents[2] / "hardware-fixtures/sysfs/healthy-terminal"


def _supply(root: Path, name: str, **attrs: str) -> Path:
    d = root / "class" / "power_supply" / name
    d.mkdir(parents=True)
    for k, v in attrs.items():
        (d / k).write_text(v + "\n")
    return d


def test_healthy_fixture(fixtures_dir: Path) -> None:
    ac, bat = read_power_supplies(fixtures_dir / "sysfs/healthy-terminal")
    assert (ac.name, ac.type, ac.online, ac.is_external, ac.is_online) == ("AC", "Mains", 1,
                                                                           True, True)
    assert ac.capacity_percent is None and not ac.is_storage
    assert bat.name == "BAT0" and bat.is_storage and not bat.is_external
    assert bat.status == "Charging"
    assert bat.capacity_percent == 87 and bat.percent == 87.0
    assert bat.present is True
    assert bat.voltage_now_v == pytest.approx(8.254)
    assert bat.voltage_min_design_v == pytest.approx(7.6)
    assert bat.energy_now_wh == pytest.approx(35.9136)
    assert bat.energy_full_wh == pytest.approx(41.28)
    assert bat.technology == "Li-ion" and bat.capacity_level == "Normal"
    assert bat.health is None  # ACPI batteries have no health attribute
    assert bat.model_name == "POS-BT2S1P"


def test_unusual_names_and_types(tmp_path: Path) -> None:
    _supply(tmp_path, "axp20x-usb", type="USB", online="1", health="Good",
            voltage_min="4000000")
    _supply(tmp_path, "ADP1", type="Mains", online="0")
    _supply(tmp_path, "ucsi-source-psy-USBC000:001", type="USB", online="2",
            usb_type="C [PD] PD_PPS", scope="Unknown")
    _supply(tmp_path, "hidpp_battery_0", type="Battery", scope="Device", capacity_level="Normal")
    _supply(tmp_path, "ups0", type="UPS", status="Discharging", capacity="40")
    _supply(tmp_path, "qi-charger", type="Wireless", online="0")
    _supply(tmp_path, "rt9455-charger", type="USB_DCP", online="1")
    got = {s.name: s for s in read_power_supplies(tmp_path)}
    assert sorted(got) == sorted(["axp20x-usb", "ADP1", "ucsi-source-psy-USBC000:001",
                                  "hidpp_battery_0", "ups0", "qi-charger", "rt9455-charger"])
    assert got["axp20x-usb"].is_external and got["axp20x-usb"].is_online is True
    assert got["ADP1"].is_external and got["ADP1"].is_online is False
    assert got["ucsi-source-psy-USBC000:001"].online == 2
    assert got["ucsi-source-psy-USBC000:001"].is_online is True
    assert got["qi-charger"].is_external and got["rt9455-charger"].is_external
    assert got["hidpp_battery_0"].is_storage and not got["hidpp_battery_0"].is_system_scope
    assert got["ups0"].is_storage and got["ups0"].percent == 40.0


def test_no_power_supply_class_is_empty(tmp_path: Path) -> None:
    assert read_power_supplies(tmp_path) == ()
    (tmp_path / "class" / "power_supply").mkdir(parents=True)
    assert read_power_supplies(tmp_path) == ()


def test_stray_file_in_class_dir_is_ignored(tmp_path: Path) -> None:
    _supply(tmp_path, "BAT0", type="Battery")
    (tmp_path / "class" / "power_supply" / "README").write_text("not a supply\n")
    assert [s.name for s in read_power_supplies(tmp_path)] == ["BAT0"]


_BATTERY_ATTRS = ("type", "online", "present", "status", "capacity", "capacity_level",
                  "health", "technology", "voltage_now", "voltage_min_design", "energy_now",
                  "energy_full", "temp")
_FIELD_OF = {"type": "type", "online": "online", "present": "present", "status": "status",
             "capacity": "capacity_percent", "capacity_level": "capacity_level",
             "health": "health", "technology": "technology", "voltage_now": "voltage_now_v",
             "voltage_min_design": "voltage_min_design_v", "energy_now": "energy_now_wh",
             "energy_full": "energy_full_wh", "temp": "temp_c"}


def _full_battery(tmp_path: Path) -> Path:
    return _supply(tmp_path, "BAT0", type="Battery", online="0", present="1",
                   status="Discharging", capacity="55", capacity_level="Normal", health="Good",
                   technology="Li-poly", voltage_now="3800000", voltage_min_design="3300000",
                   energy_now="5500000", energy_full="10000000", temp="312")


@pytest.mark.parametrize("attr", _BATTERY_ATTRS)
def test_unreadable_attribute_is_none_alone(tmp_path: Path, attr: str) -> None:
    """A directory in place of the attribute file fails the read fast (EISDIR)."""
    d = _full_battery(tmp_path)
    baseline = read_power_supply(d)
    (d / attr).unlink()
    (d / attr).mkdir()
    got = read_power_supply(d)
    assert getattr(got, _FIELD_OF[attr]) is None
    for other, field in _FIELD_OF.items():
        if other != attr:
            assert getattr(got, field) == getattr(baseline, field), other


@pytest.mark.parametrize("code", [errno.EIO, errno.ENODATA, errno.ENODEV])
def test_errno_on_one_attribute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                code: int) -> None:
    d = _full_battery(tmp_path)
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/voltage_now"):
            raise OSError(code, os.strerror(code))
        return real_read(fd, n)

    monkeypatch.setattr(kernel_file.os, "read", read)
    got = read_power_supply(d)
    assert got.voltage_now_v is None
    assert got.capacity_percent == 55 and got.status == "Discharging"


def test_units(tmp_path: Path) -> None:
    got = read_power_supply(_full_battery(tmp_path))
    assert got.voltage_now_v == pytest.approx(3.8)
    assert got.voltage_min_design_v == pytest.approx(3.3)
    assert got.energy_now_wh == pytest.approx(5.5)
    assert got.temp_c == pytest.approx(31.2)
    assert got.present is True and got.online == 0 and got.is_online is False


@pytest.mark.parametrize(("attr", "raw"), [
    ("capacity", "150"), ("capacity", "-3"), ("capacity", "eighty"), ("capacity", ""),
    ("online", "-1"), ("online", "yes"), ("present", "2"), ("present", "true"),
    ("voltage_now", "0"), ("voltage_now", "-3800000"), ("voltage_now", "3.8"),
    ("voltage_now", "99999999999999999"), ("temp", "5000"), ("temp", "NaN"),
    ("status", "\x00\x01"), ("health", ""), ("energy_full", "0"),
])
def test_garbage_value_is_none(tmp_path: Path, attr: str, raw: str) -> None:
    d = _full_battery(tmp_path)
    (d / attr).write_text(raw)
    assert getattr(read_power_supply(d), _FIELD_OF[attr]) is None


def test_binary_garbage_is_none(tmp_path: Path) -> None:
    d = _full_battery(tmp_path)
    (d / "status").write_bytes(b"\xff\xfeDis\x80")
    assert read_power_supply(d).status is None


def test_percent_falls_back_to_energy_then_charge(tmp_path: Path) -> None:
    d = _supply(tmp_path, "BAT1", type="Battery", energy_now="2000000", energy_full="8000000")
    assert read_power_supply(d).percent == pytest.approx(25.0)
    d = _supply(tmp_path, "BAT2", type="Battery", charge_now="1500000", charge_full="2000000")
    assert read_power_supply(d).percent == pytest.approx(75.0)
    d = _supply(tmp_path, "BAT3", type="Battery", energy_now="0", energy_full="8000000")
    assert read_power_supply(d).percent == 0.0
    d = _supply(tmp_path, "BAT4", type="Battery", energy_now="9000000", energy_full="8000000")
    assert read_power_supply(d).percent == 100.0  # a gauge over 100 % is capped, not trusted
    d = _supply(tmp_path, "BAT5", type="Battery", energy_now="100")
    assert read_power_supply(d).percent is None


@pytest.mark.parametrize("bad", [
    {"name": ""}, {"name": "a/b"}, {"capacity_percent": 101}, {"capacity_percent": -1},
    {"online": -1}, {"voltage_now_v": -1.0}, {"voltage_now_v": float("nan")},
    {"temp_c": 500.0},
])
def test_dataclass_validates(bad: dict) -> None:
    kwargs = {"name": "BAT0", **bad}
    with pytest.raises(ValueError):
        PowerSupply(**kwargs)


def test_dataclass_is_frozen() -> None:
    s = PowerSupply("BAT0", type="Battery")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.status = "Full"  # type: ignore[misc]


_attr_bytes = st.one_of(st.binary(max_size=24), st.integers(-10**20, 10**20).map(
    lambda n: f"{n}\n".encode()), st.sampled_from([b"Battery\n", b"Mains\n", b"USB\n", b""]))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_BATTERY_ATTRS), _attr_bytes, max_size=len(_BATTERY_ATTRS)))
def test_any_bytes_never_raise(tmp_path: Path, contents: dict[str, bytes]) -> None:
    d = tmp_path / "class" / "power_supply" / "X"
    shutil.rmtree(tmp_path / "class", ignore_errors=True)
    d.mkdir(parents=True)
    for k, v in contents.items():
        (d / k).write_bytes(v)
    (got,) = read_power_supplies(tmp_path)
    assert got.capacity_percent is None or 0 <= got.capacity_percent <= 100
    assert got.percent is None or 0.0 <= got.percent <= 100.0
    assert got.type is None or isinstance(got.type, str)
