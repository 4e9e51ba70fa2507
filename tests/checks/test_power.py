"""The power check through the real config builder and runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_check

from posdiag.checks.power import SPEC
from posdiag.errors import ConfigError
from posdiag.results import Status


@pytest.fixture
def sysfs(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the healthy terminal's power supplies to modify per test."""
    root = tmp_path / "sys"
    shutil.copytree(fixtures_dir / "sysfs/healthy-terminal/class/power_supply",
                    root / "class/power_supply")
    return root


def put(sysfs: Path, name: str, **attrs: str) -> None:
    d = sysfs / "class/power_supply" / name
    d.mkdir(parents=True, exist_ok=True)
    for k, v in attrs.items():
        (d / k).write_text(v + "\n")


def drop(sysfs: Path, name: str, *attrs: str) -> None:
    for a in attrs:
        (sysfs / "class/power_supply" / name / a).unlink()


def test_healthy_terminal(fixtures_dir: Path) -> None:
    r = run_check(SPEC, sysfs=fixtures_dir / "sysfs/healthy-terminal")
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.summary == "on external power (AC), battery BAT0 87% charging"
    m = r.metrics
    assert m["battery_percent"] == 87
    assert m["battery_status"] == "Charging"
    assert m["mains_online"] is True
    assert m["supply_online"] == "AC"
    assert m["battery_voltage_v"] == pytest.approx(8.254)
    assert (m["supplies_count"], m["batteries_count"]) == (2, 1)


def test_on_battery(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status="Discharging", capacity="64")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.WARN, "on_battery")
    assert r.summary == "running on battery BAT0 at 64%: no external supply online"
    assert r.hints == ("power.check_mains_supply",)
    assert r.metrics["mains_online"] is False
    assert r.metrics["battery_percent"] == 64
    assert r.metrics["battery_status"] == "Discharging"


def test_battery_low_while_on_battery(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status="Discharging", capacity="15")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.WARN, "battery_low")
    assert "15%" in r.summary and "low at 20%" in r.summary
    assert "no external supply online" in r.summary
    assert r.hints == ("power.connect_charger",)
    assert [f.reason for f in r.findings] == ["battery_low"]  # not also on_battery
    assert r.metrics["battery_percent"] == 15


def test_battery_critical(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status="Discharging", capacity="4")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.FAIL, "battery_critical")
    assert "4%" in r.summary and "critical at 5%" in r.summary
    assert r.metrics["battery_percent"] == 4


@pytest.mark.parametrize("status", ["Full", "Not charging", "Unknown"])
def test_all_supplies_offline_is_on_battery_whatever_the_status(sysfs: Path, status: str) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status=status, capacity="100")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.WARN, "on_battery")
    assert r.summary == "running on battery BAT0 at 100%: no external supply online"


def test_battery_at_threshold_is_low(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status="Discharging", capacity="20")
    assert run_check(SPEC, sysfs=sysfs).reason == "battery_low"
    put(sysfs, "BAT0", capacity="21")
    assert run_check(SPEC, sysfs=sysfs).reason == "on_battery"


def test_configured_thresholds(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status="Discharging", capacity="35")
    r = run_check(SPEC, sysfs=sysfs, low_percent=50, critical_percent=40)
    assert (r.status, r.reason) == (Status.FAIL, "battery_critical")
    r = run_check(SPEC, sysfs=sysfs, low_percent=50, critical_percent=10)
    assert (r.status, r.reason) == (Status.WARN, "battery_low")


@pytest.mark.parametrize(("cfg", "key"), [
    ({"low_percent": 10, "critical_percent": 10}, "critical_percent"),
    ({"low_percent": 10, "critical_percent": 30}, "critical_percent"),
    ({"low_percent": 0}, "low_percent"),
    ({"critical_percent": 100}, "critical_percent"),
])
def test_invalid_thresholds(cfg: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        run_check(SPEC, sysfs=Path("/nonexistent"), **cfg)
    assert f"checks.power.{key}" in str(exc.value)


def test_low_but_charging_is_fine(sysfs: Path) -> None:
    put(sysfs, "BAT0", status="Charging", capacity="3")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["battery_percent"] == 3


def test_low_and_not_charging_on_mains(sysfs: Path) -> None:
    put(sysfs, "BAT0", status="Not charging", capacity="3")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.FAIL, "battery_critical")
    assert "not charging" in r.summary
    assert r.hints == ("power.check_charger",)


@pytest.mark.parametrize(("health", "status", "hint"), [
    ("Dead", Status.FAIL, "power.replace_battery"),
    ("Overheat", Status.FAIL, "power.check_battery_temperature"),
    ("Over voltage", Status.FAIL, "power.replace_battery"),
    ("Unspecified failure", Status.FAIL, "power.replace_battery"),
    ("Cold", Status.WARN, "power.check_battery_temperature"),
    ("Calibration required", Status.WARN, "power.calibrate_battery"),
])
def test_battery_unhealthy(sysfs: Path, health: str, status: Status, hint: str) -> None:
    put(sysfs, "BAT0", health=health)
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (status, "battery_unhealthy")
    assert r.summary == f"battery BAT0 health is {health}"
    assert r.hints == (hint,)
    assert r.metrics["battery_health"] == health


@pytest.mark.parametrize("health", ["Good", "Unknown"])
def test_fine_health(sysfs: Path, health: str) -> None:
    put(sysfs, "BAT0", health=health)
    assert run_check(SPEC, sysfs=sysfs).status is Status.OK


def test_unhealthy_and_critical_report_both(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", health="Dead", status="Discharging", capacity="2")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.FAIL, "battery_unhealthy")  # the root cause
    assert [f.reason for f in r.findings] == ["battery_unhealthy", "battery_critical"]


def test_voltage_below_design_minimum_of_a_gauge(sysfs: Path) -> None:
    # A fuel gauge reporting a real range: its minimum is the empty cut-off.
    put(sysfs, "BAT0", voltage_min_design="6000000", voltage_max_design="8400000",
        voltage_now="5800000")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.WARN, "battery_voltage_low")
    assert r.summary == "battery BAT0 at 5.80 V, below its design minimum 6.00 V"
    assert r.metrics["battery_voltage_v"] == pytest.approx(5.8)


def test_voltage_below_acpi_nominal(sysfs: Path) -> None:
    # ACPI: voltage_min_design is the nominal 7.6 V; 7.2 V is a normal half-empty battery...
    put(sysfs, "BAT0", voltage_now="7200000")
    assert run_check(SPEC, sysfs=sysfs).status is Status.OK
    # ...but 6.5 V (3.25 V per cell) is far below it
    put(sysfs, "BAT0", voltage_now="6500000")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.WARN, "battery_voltage_low")


def test_voltage_unknown_is_not_judged(sysfs: Path) -> None:
    drop(sysfs, "BAT0", "voltage_min_design")
    put(sysfs, "BAT0", voltage_now="1000000")
    assert run_check(SPEC, sysfs=sysfs).status is Status.OK


def test_no_power_supply_dir_is_skipped(tmp_path: Path) -> None:
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.SKIPPED, "not_applicable")


def test_empty_power_supply_dir_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "class/power_supply").mkdir(parents=True)
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.SKIPPED, "not_applicable")


def test_peripheral_battery_alone_is_skipped(tmp_path: Path) -> None:
    put(tmp_path, "hidpp_battery_0", type="Battery", scope="Device", status="Discharging",
        capacity="3")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.SKIPPED, "not_applicable")


def test_require_battery(tmp_path: Path, sysfs: Path) -> None:
    r = run_check(SPEC, sysfs=tmp_path, require_battery=True)
    assert (r.status, r.reason) == (Status.FAIL, "no_battery")
    assert r.hints == ("power.check_battery",)
    put(sysfs, "BAT0", present="0")
    r = run_check(SPEC, sysfs=sysfs, require_battery=True)
    assert (r.status, r.reason) == (Status.FAIL, "no_battery")
    assert r.metrics["batteries_count"] == 0


def test_absent_battery_on_mains_is_ok(sysfs: Path) -> None:
    put(sysfs, "BAT0", present="0", status="Unknown", capacity="0")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.summary == "on external power (AC), no battery"
    assert r.metrics["battery_percent"] is None


def test_axp20x_usb_supply(tmp_path: Path) -> None:
    put(tmp_path, "axp20x-ac", type="Mains", online="0", present="0")
    put(tmp_path, "axp20x-usb", type="USB", online="1", present="1", health="Good")
    put(tmp_path, "axp20x-battery", type="Battery", present="1", status="Charging",
        capacity="58", health="Good", voltage_now="3950000", voltage_min_design="3300000",
        voltage_max_design="4200000")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["supply_online"] == "axp20x-usb"
    assert r.metrics["mains_online"] is True
    assert r.metrics["battery_name"] == "axp20x-battery"


def test_adp1_offline_means_on_battery(tmp_path: Path) -> None:
    """psutil only reads AC/AC0 and would not know; every Mains supply counts here."""
    put(tmp_path, "ADP1", type="Mains", online="0")
    put(tmp_path, "BAT1", type="Battery", present="1", status="Discharging", capacity="70")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.WARN, "on_battery")
    assert "BAT1" in r.summary


def test_usb_c_source_keeps_terminal_on_external_power(tmp_path: Path) -> None:
    put(tmp_path, "ADP1", type="Mains", online="0")
    put(tmp_path, "ucsi-source-psy-USBC000:001", type="USB", online="1", scope="Unknown")
    put(tmp_path, "BAT0", type="Battery", present="1", status="Charging", capacity="40")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["supply_online"] == "ucsi-source-psy-USBC000:001"


def test_battery_only_board_discharging(tmp_path: Path) -> None:
    put(tmp_path, "bq27542-0", type="Battery", present="1", status="Discharging",
        capacity="80")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.WARN, "on_battery")
    assert r.summary.endswith("no external supply reported")
    assert r.metrics["mains_online"] is None


def test_ups_on_battery(tmp_path: Path) -> None:
    put(tmp_path, "ups0", type="UPS", status="Discharging", capacity="90")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.WARN, "on_battery")
    assert "UPS ups0" in r.summary


def test_unreadable_capacity_falls_back_to_energy(sysfs: Path) -> None:
    bat = sysfs / "class/power_supply/BAT0"
    (bat / "capacity").unlink()
    (bat / "capacity").mkdir()  # EISDIR on read
    r = run_check(SPEC, sysfs=sysfs)
    assert r.status is Status.OK
    assert r.metrics["battery_percent"] == pytest.approx(87.0)  # 35.9136 / 41.28 Wh


def test_unreadable_status_and_online(sysfs: Path) -> None:
    for name, attr in (("AC", "online"), ("BAT0", "status")):
        f = sysfs / "class/power_supply" / name / attr
        f.unlink()
        f.mkdir()
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.metrics["mains_online"] is None
    assert r.metrics["battery_status"] is None
    assert r.metrics["battery_percent"] == 87
    assert r.summary == "external supply state unknown, battery BAT0 87%"


def test_capacity_level_when_no_percentage(sysfs: Path) -> None:
    put(sysfs, "AC", online="0")
    put(sysfs, "BAT0", status="Discharging", capacity_level="Critical")
    drop(sysfs, "BAT0", "capacity", "energy_now", "energy_full")
    r = run_check(SPEC, sysfs=sysfs)
    assert (r.status, r.reason) == (Status.FAIL, "battery_critical")
    assert r.metrics["battery_percent"] is None
    put(sysfs, "BAT0", capacity_level="Low")
    assert run_check(SPEC, sysfs=sysfs).reason == "battery_low"


def test_two_batteries_draining_are_one_on_battery(tmp_path: Path) -> None:
    put(tmp_path, "AC", type="Mains", online="0")
    put(tmp_path, "BAT0", type="Battery", present="1", status="Discharging", capacity="70")
    put(tmp_path, "BAT1", type="Battery", present="1", status="Discharging", capacity="60")
    r = run_check(SPEC, sysfs=tmp_path)
    assert (r.status, r.reason) == (Status.WARN, "on_battery")
    assert [f.reason for f in r.findings] == ["on_battery"]
    assert r.metrics["battery_name"] == "BAT1"


def test_emptiest_battery_gives_the_metrics(sysfs: Path) -> None:
    put(sysfs, "BAT1", type="Battery", present="1", status="Charging", capacity="30")
    r = run_check(SPEC, sysfs=sysfs)
    assert r.metrics["battery_name"] == "BAT1"
    assert r.metrics["battery_percent"] == 30
    assert r.metrics["batteries_count"] == 2


def test_scenario_battery_discharging_low(fixtures_dir: Path) -> None:
    r = run_check(SPEC, sysfs=fixtures_dir / "sysfs/battery-discharging-low")
    assert (r.status, r.reason) == (Status.WARN, "battery_low")
    assert r.summary == ("battery BAT0 at 12% (low at 20%), discharging, "
                         "no external supply online")
    assert (r.metrics["battery_percent"], r.metrics["mains_online"]) == (12, False)
    assert r.metrics["battery_voltage_v"] == pytest.approx(7.398)


def test_scenario_handheld_on_usb(fixtures_dir: Path) -> None:
    r = run_check(SPEC, sysfs=fixtures_dir / "sysfs/handheld-axp20x-usb")
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert r.summary == "on external power (axp20x-usb), battery axp20x-battery 58% charging"
    assert r.metrics["supplies_count"] == 3
    assert r.metrics["battery_health"] == "Good"
