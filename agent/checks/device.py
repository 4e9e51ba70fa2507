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
from posdiag.i18n import catalog
from posdiag.results import CheckResult, Verdict, skipped
from posdiag.summary import Summary

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
        return _absent(ctx, cfg, Summary("device.no_discovery", detail=e.message), *hints)
    if not found:
        return _absent(ctx, cfg, Summary("device.not_on_usb", what=device_name(what)), *hints)
    d = found[0]
    return Located(d.port, d.vendor, d.model, d.serial, "udev", d.kind == "bridge")


def _absent(ctx: CheckContext, cfg: DeviceConfig, summary: Summary,
            *hints: str) -> CheckResult:
    if cfg.required:
        v = Verdict(ctx.name)
        v.fail("no_device", summary, *hints)
        return v.result(Summary("device.failed"))
    return skipped(ctx.name, "no_device", Summary("device.not_required", summary=summary))


def device_name(what: str) -> Summary:
    """A check's name for its device ("card reader") in words of every language."""
    if isinstance(what, Summary):
        return what
    key = "device.what." + what.replace(" ", "_").replace("-", "_")
    return Summary(key) if key in catalog("en").get("summary", {}) \
        else Summary("device.what.other", name=what)


def add_driver_error(v: Verdict, err: DriverError, what: str, *device_hints: str) -> None:
    """The one mapping from the driver exception tree to reason codes for every device check."""
    name = device_name(what)
    # Each message has a form with the port ("… on /dev/ttyUSB0") and one without.
    on = "_on" if err.device else ""
    port = {"port": err.device} if err.device else {}
    if isinstance(err, DeviceNotFound):
        v.fail("no_device", Summary("device.not_found" + on, what=name, detail=err.message,
                                    **port), *device_hints)
    elif isinstance(err, DeviceBusy):
        holder = (Summary("device.holder", name=err.holder_name or "?", pid=err.holder_pid)
                  if err.holder_pid else Summary("device.another_process"))
        v.metric("port_holder", err.holder_name)
        v.fail("port_busy", Summary("device.busy" + on, what=name, holder=holder, **port),
               "device.free_port")
    elif isinstance(err, PermissionDenied):
        group = err.group or Summary("device.its_group")
        v.metric("port_group", err.group)
        v.fail("permission_denied", Summary("device.denied" + on, what=name, group=group,
                                            **port), "device.fix_permissions")
    elif isinstance(err, DeviceTimeout):
        said = (Summary("device.timeout_after" + on, what=name, seconds=err.timeout_s, **port)
                if err.timeout_s else Summary("device.timeout" + on, what=name, **port))
        v.fail("timeout", said, *device_hints)
    elif isinstance(err, ProtocolError):
        reason = {"checksum": "checksum_error", "nak": "nak"}.get(err.kind, "protocol_error")
        v.metric("protocol_error_kind", err.kind)
        v.fail(reason, Summary("device.protocol" + on, what=name, code=err.kind,
                               detail=err.message, **port), *device_hints)
    elif isinstance(err, NotSupported):
        v.unknown("not_supported", Summary("device.not_supported", what=name,
                                           detail=err.message))
    else:
        v.fail("device_error", Summary("device.error" + on, what=name, detail=err.message,
                                       **port), *device_hints)


def describe(loc: Located) -> dict[str, str | bool | None]:
    """Metrics that say which device was checked (no serial numbers of cards, only devices)."""
    return {"port": loc.port, "found_via": loc.via, "device_vendor": loc.vendor,
            "device_model": loc.model}
