"""Power: is the terminal on external power, and can its battery carry it if that goes away?

Reads every ``power_supply`` class device (any name: ``AC``, ``ADP1``, ``axp20x-usb``, ``BAT0``…).
External supplies are Mains, USB (any flavour) and Wireless; batteries are Battery and UPS devices
of system scope (a wireless scanner's own battery does not power the terminal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, between, rule
from posdiag.drivers.sysfs.power_supply import PowerSupply, read_power_supplies
from posdiag.results import CheckResult, MetricValue, Verdict, skipped
from posdiag.summary import Summary

_CHARGING = frozenset({"Charging", "Full"})
_HEALTH_FINE = frozenset({"Good", "Unknown"})
# Conditions that pause charging or call for attention but do not mean a broken battery.
_HEALTH_WARN = frozenset({"Warm", "Cool", "Cold", "Calibration required"})
_HEALTH_THERMAL = frozenset({"Overheat", "Hot", "Warm", "Cool", "Cold"})
# ACPI reports its "design voltage" (the nominal voltage, e.g. 11.4 V for 3 Li-ion cells) as
# voltage_min_design, and a healthy half-empty battery sits below nominal. Without a
# voltage_max_design beside it the minimum is taken as nominal and only a reading this far below
# it counts (3.42 V per cell for 3.8 V cells: nearly empty).
_NOMINAL_TOLERANCE = 0.10


@dataclass(frozen=True)
class PowerConfig(CheckConfig):
    low_percent: int = rule(between(1, 100), 20)
    critical_percent: int = rule(between(0, 99), 5)
    # Handheld/mobile terminals cannot work without their battery: a missing one fails.
    require_battery: bool = False

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.critical_percent >= self.low_percent:
            yield ("critical_percent",
                   f"must be below low_percent ({self.low_percent}), not {self.critical_percent}")


def _label(s: PowerSupply) -> Summary:
    return Summary("power.ups" if s.type == "UPS" else "power.battery", name=s.name)


def _state(status: str | None) -> Summary:
    """The kernel's status word (Charging, Discharging, Not charging, Full, Unknown) in words."""
    known = {"charging", "discharging", "not charging", "full", "unknown"}
    word = (status or "").lower()
    if word in known:
        return Summary("power.state." + word.replace(" ", "_"))
    return Summary("power.state.other", status=status or "?")


def _metric_percent(b: PowerSupply) -> MetricValue:
    if b.capacity_percent is not None:
        return b.capacity_percent
    p = b.percent
    return round(p, 1) if p is not None else None


def _mains_online(external: list[PowerSupply]) -> bool | None:
    """True if any external supply is online; False if all say offline; None if none can tell."""
    states = [s.is_online for s in external]
    if any(states):
        return True
    if states and all(st is False for st in states):
        return False
    return None


def _level_finding(v: Verdict, b: PowerSupply, cfg: PowerConfig, source: str | None,
                   external_online: bool) -> bool:
    """battery_low / battery_critical for a battery that is not being charged; True if added.

    ``source`` is set when the terminal runs from this battery: the finding then says so itself
    instead of a separate on_battery finding (one root cause, one line).
    """
    if b.status in _CHARGING:
        return False  # a low battery that charges is recovering, not a problem yet
    state = _state(b.status) if b.status else Summary("power.state.none")
    tail: Summary | tuple[Summary, ...] = (state, source) if source else state
    hint = "power.check_charger" if external_online else "power.connect_charger"
    p = b.percent
    if p is not None:
        if p <= cfg.critical_percent:
            v.fail("battery_critical",
                   Summary("power.battery_critical", battery=_label(b), percent=p,
                           limit=cfg.critical_percent, tail=tail), hint)
            return True
        if p <= cfg.low_percent:
            v.warn("battery_low",
                   Summary("power.battery_low", battery=_label(b), percent=p,
                           limit=cfg.low_percent, tail=tail), hint)
            return True
        return False
    if b.capacity_level == "Critical":  # no percentage, but the gauge says how bad it is
        v.fail("battery_critical", Summary("power.level_critical", battery=_label(b),
                                           tail=tail), hint)
        return True
    if b.capacity_level == "Low":
        v.warn("battery_low", Summary("power.level_low", battery=_label(b), tail=tail), hint)
        return True
    return False


def _health_finding(v: Verdict, b: PowerSupply) -> None:
    if b.health is None or b.health in _HEALTH_FINE:
        return
    if b.health in _HEALTH_THERMAL:
        hint = "power.check_battery_temperature"
    elif b.health == "Calibration required":
        hint = "power.calibrate_battery"
    else:
        hint = "power.replace_battery"
    health = {"Overheat": "overheat", "Dead": "dead", "Over voltage": "over_voltage",
              "Unspecified failure": "failure", "Cold": "cold", "Watchdog timer expire":
              "watchdog", "Safety timer expire": "safety_timer", "Over current": "over_current",
              "Calibration required": "calibration", "Warm": "warm", "Cool": "cool",
              "Hot": "hot"}.get(b.health)
    summary = Summary("power.health", battery=_label(b),
                      health=Summary("power.health." + health) if health
                      else Summary("power.state.other", status=b.health))
    if b.health in _HEALTH_WARN:
        v.warn("battery_unhealthy", summary, hint)
    else:
        v.fail("battery_unhealthy", summary, hint)


def _voltage_finding(v: Verdict, b: PowerSupply) -> None:
    now, lo = b.voltage_now_v, b.voltage_min_design_v
    if now is None or lo is None:
        return
    floor = lo if b.voltage_max_design_v is not None else lo * (1 - _NOMINAL_TOLERANCE)
    if now < floor:
        v.warn("battery_voltage_low",
               Summary("power.voltage_low", battery=_label(b), volts=now, minimum=lo),
               "power.replace_battery")


def run(ctx: CheckContext, cfg: PowerConfig) -> CheckResult:
    supplies = read_power_supplies(ctx.roots.sysfs)
    external = [s for s in supplies if s.is_external]
    batteries = [s for s in supplies if s.is_storage and s.is_system_scope
                 and s.present is not False and s.health != "No battery"]
    if not external and not batteries and not cfg.require_battery:
        return skipped(ctx.name, "not_applicable",
                       Summary("power.no_supply", entries=len(supplies)))

    v = Verdict(ctx.name)
    mains = _mains_online(external)
    online = next((s for s in external if s.is_online), None)
    # The emptiest battery speaks for all: it is the one that runs out first.
    primary = min(batteries, key=lambda b: (b.percent is None, b.percent or 0.0, b.name),
                  default=None)
    v.metric("supplies_count", len(supplies))
    v.metric("batteries_count", len(batteries))
    v.metric("mains_online", mains)
    v.metric("supply_online", online.name if online else None)
    v.metric("battery_name", primary.name if primary else None)
    v.metric("battery_percent", _metric_percent(primary) if primary else None)
    v.metric("battery_status", primary.status if primary else None)
    v.metric("battery_health", primary.health if primary else None)
    v.metric("battery_voltage_v", primary.voltage_now_v if primary else None)
    v.metric("battery_temp_c", primary.temp_c if primary else None)

    if cfg.require_battery and not batteries:
        v.fail("no_battery", Summary("power.no_battery"),
               "power.check_battery")

    for b in batteries:
        _health_finding(v, b)
    source = Summary("power.no_external_online" if external else "power.no_external")
    announced = False
    for b in batteries:
        # Every external supply saying offline settles it, whatever a battery's (often stale,
        # "Full" right after unplugging) status; otherwise only a discharging battery tells.
        runs_from = (mains is False and b.status != "Charging") or (
            mains is None and b.status == "Discharging")
        if _level_finding(v, b, cfg, source if runs_from else None, mains is True):
            continue
        if runs_from and not announced:
            announced = True  # two batteries draining are one power cut
            at = Summary("power.on_battery_at", battery=_label(b), percent=b.percent) \
                if b.percent is not None else _label(b)
            v.warn("on_battery", Summary("power.on_battery", battery=at, source=source),
                   "power.check_mains_supply")
    for b in batteries:
        _voltage_finding(v, b)

    if online is not None:
        feed = Summary("power.feed_online", name=online.name)
    elif mains is False:
        feed = Summary("power.feed_offline")
    else:
        feed = Summary("power.feed_unknown")
    if primary is None:
        return v.result(Summary("power.ok_no_battery", feed=feed))
    p = primary.percent
    battery: Summary = _label(primary)
    if p is not None:
        battery = Summary("power.battery_percent", battery=battery, percent=p)
    if primary.status:
        battery = Summary("power.battery_state", battery=battery, state=_state(primary.status))
    return v.result(Summary("power.ok", feed=feed, battery=battery))


SPEC = CheckSpec("power", run, PowerConfig, timeout_s=5.0)
