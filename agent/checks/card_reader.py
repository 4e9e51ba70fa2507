"""Card reader: the magnetic stripe reader is there, answers, has reading switched on, is set to
the output format the payment application parses, and runs at least the fleet's firmware.

Only setup commands are sent (Review Settings, firmware version); nothing is changed on the
reader, and no swipe is waited for. A card swiped during the probe is a swipe, not a fault: the
driver drops its bytes unread (DESIGN §6), sends the command again, and says only how many
swipes it dropped (``swipes_during_probe``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.checks.device import POLL_S, DeviceConfig, add_driver_error, describe, locate
from posdiag.config import between, rule
from posdiag.drivers.errors import DriverError
from posdiag.results import CheckResult, Verdict
from posdiag.summary import Summary

if TYPE_CHECKING:
    from posdiag.drivers.msr import MsrFirmware, MsrProbe, SwipeResult

WHAT = "card reader"
HINT_CONNECTION = "card_reader.check_connection"
# The MiniMag RS-232 can be set to these line speeds (FuncID 0x41, protocols.md §2.1).
READER_BAUD_RATES = (2400, 4800, 9600, 19200)
_DOTTED = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# Firmware texts ("ID TECH MiniMag Swipe Reader 2.3.1") hold no track sentinels or separators
# and no long digit runs. Should a swipe ever be taken for a reply frame, its text is dropped
# instead of becoming a metric.
_CARD_LIKE = re.compile(r"[%;^=?]|\d{8,}")
_FIRMWARE_TEXT_MAX = 80


def _baud_rate(v: int) -> str | None:
    if v in READER_BAUD_RATES:
        return None
    return f"must be a rate the reader supports ({', '.join(map(str, READER_BAUD_RATES))}), not {v}"


def _version_or_empty(v: str) -> str | None:
    if v == "" or _DOTTED.match(v):
        return None
    return f"must be a dotted version such as \"2.3.1\" (or empty for no minimum), not {v!r}"


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.3.1"`` → ``(2, 3, 1)``; the config rule has already checked the form."""
    return tuple(int(p) for p in text.split("."))


def version_below(have: tuple[int, ...], minimum: tuple[int, ...]) -> bool:
    """Numeric, component by component, with missing components counted as 0.

    So ``2.10`` is above ``2.9`` (a string comparison would say the opposite) and ``2.3`` equals
    ``2.3.0`` (plain tuple comparison would put ``(2, 3)`` below ``(2, 3, 0)``).
    """
    n = max(len(have), len(minimum))
    return have + (0,) * (n - len(have)) < minimum + (0,) * (n - len(minimum))


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _firmware_text(firmware: MsrFirmware | None) -> str | None:
    if firmware is None or _CARD_LIKE.search(firmware.text):
        return None
    return firmware.text[:_FIRMWARE_TEXT_MAX]


@dataclass(frozen=True)
class CardReaderConfig(DeviceConfig):
    driver: Literal["auto", "idtech"] = "auto"
    baudrate: int = rule(_baud_rate, 9600)  # MiniMag factory setting
    # Firmware baseline of the fleet: a reader reporting a lower version fails.
    min_firmware: str = rule(_version_or_empty, "")
    # Output format the payment application parses; "" accepts any.
    output_format: Literal["", "idtech", "uic", "magtek"] = ""
    # The reader answers within 5 ms; the rest is margin for USB-serial adapters.
    reply_timeout_s: float = rule(between(0.05, 2.0), 0.5)
    # Off by default: waiting would take a merchant's swipe. A technician sets it to have the
    # periodic check read one test swipe (verdicts only, DESIGN §6).
    swipe_wait_s: float = rule(between(0.0, 2.0), 0.0)


def run(ctx: CheckContext, cfg: CardReaderConfig) -> CheckResult:
    where = locate(ctx, cfg, "card_reader", WHAT, HINT_CONNECTION)
    if isinstance(where, CheckResult):
        return where
    v = Verdict(ctx.name)
    for key, value in describe(where).items():
        v.metric(key, value)
    try:
        probe, swipe = _probe(ctx, cfg, where.port)
    except DriverError as err:
        add_driver_error(v, err, WHAT, HINT_CONNECTION)
        return v.result("")
    if swipe is not None:
        judge_swipe(v, swipe)
    return _judge(v, cfg, probe, where.port)


def _probe(ctx: CheckContext, cfg: CardReaderConfig,
           port_name: str) -> tuple[MsrProbe, SwipeResult | None]:
    # The driver is imported only here: a terminal without a reader never loads it.
    from posdiag.drivers.msr import IdTechMsr
    from posdiag.drivers.msr.idtech import WRITE_TIMEOUT_S
    from posdiag.drivers.transport import open_port

    with open_port(port_name, baudrate=cfg.baudrate, timeout_s=POLL_S,
                   write_timeout_s=WRITE_TIMEOUT_S, proc_root=str(ctx.roots.procfs)) as port:
        reader = IdTechMsr(port, device=port_name, reply_timeout_s=cfg.reply_timeout_s)
        # A swipe arriving now is consumed and wiped by the driver, never returned.
        with port.redact():
            probe = reader.probe()
            swipe = None
            if cfg.swipe_wait_s > 0 and probe.reading_enabled is not False:
                swipe = reader.wait_for_swipe(cfg.swipe_wait_s)
            return probe, swipe


def judge_swipe(v: Verdict, swipe: SwipeResult) -> None:
    """A swipe whose tracks cannot all be read: name the tracks and fields (never their data)."""
    bad = [t.track for t in swipe.tracks
           if t.present and not (t.structure_ok and t.lrc_ok is not False)]
    v.metric("swipe_tracks_read", sum(1 for t in swipe.tracks if t.present))
    v.metric("unreadable_tracks", ",".join(map(str, bad)) if bad else None)
    v.metric("unreadable_fields", ", ".join(swipe.unreadable_fields) or None)
    if not any(t.present for t in swipe.tracks):
        v.warn("msr_track_unreadable", Summary("card_reader.no_track_read"),
               "card_reader.clean_head")
    elif bad:
        # A dirty or worn card gives the same verdict: warn, the technician swipes another.
        v.warn("msr_track_unreadable", Summary("card_reader.track_unreadable",
                                               tracks=tuple(bad)), "card_reader.clean_head")


def _judge(v: Verdict, cfg: CardReaderConfig, probe: MsrProbe, port: str) -> CheckResult:
    settings = probe.settings
    firmware = probe.firmware
    version = firmware.version if firmware else None
    v.metric("reading_enabled", settings.reading_enabled)
    v.metric("output_format", settings.output_format)
    v.metric("reader_baud", settings.baud_rate)
    v.metric("firmware_version", _dotted(version) if version else None)
    v.metric("firmware_text", _firmware_text(firmware))
    v.metric("swipes_during_probe", probe.swipes_discarded)

    if settings.reading_enabled is False:
        v.fail("msr_disabled", f"card reading is switched off in the reader's settings "
               f"(MSR reading enable = 0) on {port}", "card_reader.enable_reading")
    if cfg.output_format and settings.output_format != cfg.output_format:
        v.fail("reader_misconfigured",
               f"reader sends the {settings.output_format or 'unknown'} output format, the "
               f"configuration expects {cfg.output_format}", "card_reader.restore_settings")
    _check_firmware(v, cfg, firmware)

    reading = {True: "reading enabled", None: "reading state not reported"}
    shown = f"firmware {_dotted(version)}" if version else "firmware version not reported"
    swiped = "; a card swiped during the check was ignored" if probe.swipes_discarded else ""
    return v.result(f"{WHAT} answers on {port}, "
                    f"{reading.get(settings.reading_enabled, 'reading disabled')}, {shown}"
                    f"{swiped}")


def _check_firmware(v: Verdict, cfg: CardReaderConfig, firmware: MsrFirmware | None) -> None:
    if not cfg.min_firmware:
        return
    version = firmware.version if firmware else None
    if version is None:
        text = _firmware_text(firmware)
        said = f"reports {text!r} without a version number" if text else "does not report it"
        v.warn("version_unknown", f"reader firmware cannot be compared with the minimum "
               f"{cfg.min_firmware}: the reader {said}", "card_reader.update_firmware")
    elif version_below(version, parse_version(cfg.min_firmware)):
        v.fail("firmware_outdated", f"reader firmware {_dotted(version)} is below the minimum "
               f"{cfg.min_firmware}", "card_reader.update_firmware")


# Silent reader: one reply timeout (≤ 2 s). Slowest healthy probe: two replies at the timeout
# plus the 80 ms command gap.
# plus 2 s for the optional test swipe and its quiet tail.
SPEC = CheckSpec("card_reader", run, CardReaderConfig, timeout_s=8.0)
