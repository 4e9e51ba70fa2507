"""What the four device checks share: finding the port, opening it, and the one place where
driver errors become reason codes.

A device check's config names a ``port`` (device path or pyserial URL) or leaves it empty with
``driver = "auto"``; then udev discovery finds the device by its VID:PID. Whether a missing device
is a failure depends on ``required``: a fleet config sets it for the peripherals a terminal model
has, so "reader unplugged" fails while a model without a printer is not flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posdiag.checks.base import CheckContext
from posdiag.config import CheckConfig, between, rule
from posdiag.drivers.errors import (
    DeviceBusy,
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    NotSupported,
    PermissionDenied,
    ProtocolError,
)
from posdiag.results import CheckResult, Verdict, skipped

# Reads are short polls; every driver keeps its own per-command deadline on top.
POLL_S = 0.05


@dataclass(frozen=True)
class DeviceConfig(CheckConfig):
    """Keys every device check accepts (its own config subclasses this)."""

    driver: str = "auto"
    port: str = ""  # device path (/dev/ttyUSB0, /dev/serial/by-id/…) or pyserial URL; "" = discover
    baudrate: int = rule(between(300, 4_000_000), 9600)
    required: bool = False  # True: no device found is a failure (no_device), not a skip


@dataclass(frozen=True)
class Located:
    """Where the device is, and how it was found."""

    port: str
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    via: str = "config"  # "config" (pinned) or "udev" (discovered)
    bridge: bool = False  # discovered as a generic USB-serial bridge: probe before trusting


def locate(ctx: CheckContext, cfg: DeviceConfig, kind: str, what: str,
           *hints: str, context: Any = None) -> Located | CheckResult:
    """The port to open, or the result to report when there is none.

    ``context`` is an injectable pyudev Context (tests under umockdev pass none: the process's
    own udev view is already the mocked one).
    """
    if cfg.port:
        return Located(cfg.port)
    from posdiag.drivers import discovery

    try:
        found = discovery.find(kind, context=context)
    except NotSupported as e:
        return _absent(ctx, cfg, what, f"cannot discover devices: {e.message}", *hints)
    if not found:
        return _absent(ctx, cfg, what, f"no {what} found on USB", *hints)
    d = found[0]
    return Located(d.port, d.vendor, d.model, d.serial, "udev", d.kind == "bridge")


def _absent(ctx: CheckContext, cfg: DeviceConfig, what: str, summary: str,
            *hints: str) -> CheckResult:
    if cfg.required:
        v = Verdict(ctx.name)
        v.fail("no_device", summary, *hints)
        return v.result("")
    return skipped(ctx.name, "no_device", f"{summary} (not required by the configuration)")


def add_driver_error(v: Verdict, err: DriverError, what: str, *device_hints: str) -> None:
    """The one mapping from the driver exception tree to reason codes for every device check."""
    where = f" on {err.device}" if err.device else ""
    if isinstance(err, DeviceNotFound):
        v.fail("no_device", f"{what} not found{where}: {err.message}", *device_hints)
    elif isinstance(err, DeviceBusy):
        holder = (f"{err.holder_name} (pid {err.holder_pid})" if err.holder_pid
                  else "another process")
        v.metric("port_holder", err.holder_name)
        v.fail("port_busy", f"{what} port{where} is held by {holder}", "device.free_port")
    elif isinstance(err, PermissionDenied):
        group = err.group or "the device's group"
        v.metric("port_group", err.group)
        v.fail("permission_denied", f"no permission to open the {what}{where}; "
               f"posdiag must be in group {group}", "device.fix_permissions")
    elif isinstance(err, DeviceTimeout):
        after = f" within {err.timeout_s:g} s" if err.timeout_s else ""
        v.fail("timeout", f"{what} did not answer{after}{where}", *device_hints)
    elif isinstance(err, ProtocolError):
        reason = {"checksum": "checksum_error", "nak": "nak"}.get(err.kind, "protocol_error")
        v.metric("protocol_error_kind", err.kind)
        v.fail(reason, f"{what} answer broke the protocol ({err.kind}){where}: {err.message}",
               *device_hints)
    elif isinstance(err, NotSupported):
        v.unknown("not_supported", f"{what}: {err.message}")
    else:
        v.fail("device_error", f"{what} error{where}: {err.message}", *device_hints)


def describe(loc: Located) -> dict[str, str | bool | None]:
    """Metrics that say which device was checked (no serial numbers of cards, only devices)."""
    return {"port": loc.port, "found_via": loc.via, "device_vendor": loc.vendor,
            "device_model": loc.model}
