"""Contactless (NFC) reader: a PN532 answers on its port and passes its own self-tests.

The probe wakes the chip, reads its firmware (IC 0x32 is a PN532), and runs the chip's Diagnose
tests: communication line (an echo of a bit pattern), ROM checksum, RAM, and the antenna
self-test. Optionally a short scan says whether a card rests on the reader; card identifiers
never leave the driver, only "present or not".

A port found through udev as a generic USB-serial bridge (CH340, CP210x…) may have anything
behind it: if nothing answers there as a PN532, the reader counts as not found, not as broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.checks.device import (
    POLL_S,
    DeviceConfig,
    Located,
    add_driver_error,
    describe,
    locate,
)
from posdiag.config import between, rule
from posdiag.drivers.errors import DeviceTimeout, DriverError
from posdiag.results import CheckResult, Verdict, skipped

if TYPE_CHECKING:
    from posdiag.drivers.pn532 import CardScan, FirmwareVersion, SelfTestResult

WHAT = "contactless reader"
HINT_CONNECTION = "contactless.check_connection"
IC_PN532 = 0x32
# SetSerialBaudRate's rates (protocols.md §1.1); the chip starts at 115200.
HSU_BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)
_TEST_NAMES = {"line": "communication line", "rom": "ROM checksum", "ram": "RAM"}


def _baud_rate(v: int) -> str | None:
    if v in HSU_BAUD_RATES:
        return None
    return f"must be a PN532 HSU rate ({', '.join(map(str, HSU_BAUD_RATES))}), not {v}"


@dataclass(frozen=True)
class ContactlessConfig(DeviceConfig):
    driver: Literal["auto", "pn532"] = "auto"
    baudrate: int = rule(_baud_rate, 115200)
    # The chip ACKs within ~15 ms; USB-serial adapters add latency (nfcpy allows 100 ms).
    ack_timeout_s: float = rule(between(0.02, 2.0), 0.2)
    # Off by default: a scan switches the RF field on and would select a customer's card.
    card_scan: bool = False
    card_scan_timeout_s: float = rule(between(0.1, 2.0), 0.5)


@dataclass(frozen=True)
class _Probe:
    firmware: FirmwareVersion
    tests: tuple[SelfTestResult, ...] = ()
    scan: CardScan | None = None


def run(ctx: CheckContext, cfg: ContactlessConfig) -> CheckResult:
    where = locate(ctx, cfg, "contactless", WHAT, HINT_CONNECTION)
    if isinstance(where, CheckResult):
        return where
    v = Verdict(ctx.name)
    for key, value in describe(where).items():
        v.metric(key, value)
    probe: _Probe | None = None
    try:
        probe = _probe(ctx, cfg, where, v)
    except DeviceTimeout as err:
        if where.bridge and not v.metrics.get("firmware_ic"):
            return _nothing_behind_bridge(ctx, cfg, where)
        add_driver_error(v, err, WHAT, HINT_CONNECTION)
    except DriverError as err:
        add_driver_error(v, err, WHAT, HINT_CONNECTION)
    if probe is None:
        return v.result("")
    return _judge(v, probe, where.port)


def _probe(ctx: CheckContext, cfg: ContactlessConfig, where: Located, v: Verdict) -> _Probe:
    """Step by step, so what was learnt before a failure still shows as metrics."""
    # The driver is imported only here: a terminal without an NFC reader never loads it.
    from posdiag.drivers.pn532 import PN532
    from posdiag.drivers.pn532.device import WRITE_TIMEOUT_S
    from posdiag.drivers.transport import open_port

    with open_port(where.port, baudrate=cfg.baudrate, timeout_s=POLL_S,
                   write_timeout_s=WRITE_TIMEOUT_S, proc_root=str(ctx.roots.procfs)) as port:
        chip = PN532(port, device=where.port, ack_timeout_s=cfg.ack_timeout_s)
        chip.wake_up()
        firmware = chip.firmware_version()
        v.metric("firmware_ic", f"{firmware.ic:#04x}")
        v.metric("firmware_version", firmware.version_text)
        v.metric("firmware_support", f"{firmware.support:#04x}")
        if firmware.ic != IC_PN532:
            return _Probe(firmware)  # another chip's self-tests mean something else
        tests = []
        for test in (chip.self_test_line, chip.self_test_rom, chip.self_test_ram,
                     chip.self_test_antenna):
            result = test()
            tests.append(result)
            v.metric(f"self_test_{result.name}_ok", result.passed)
        scan = None
        if cfg.card_scan:
            scan = chip.scan_for_card(timeout_s=cfg.card_scan_timeout_s)
            v.metric("card_present", scan.present)
            v.metric("card_scan_aborted", scan.aborted)
        return _Probe(firmware, tuple(tests), scan)


def _nothing_behind_bridge(ctx: CheckContext, cfg: ContactlessConfig,
                           where: Located) -> CheckResult:
    bridge = where.model or "USB-serial bridge"
    summary = f"nothing answers as a PN532 behind the {bridge} at {where.port}"
    if not cfg.required:
        return skipped(ctx.name, "no_device", f"{summary} (not required by the configuration)")
    v = Verdict(ctx.name)
    for key, value in describe(where).items():
        v.metric(key, value)
    v.fail("no_device", summary, HINT_CONNECTION)
    return v.result("")


def _judge(v: Verdict, probe: _Probe, port: str) -> CheckResult:
    fw = probe.firmware
    if fw.ic != IC_PN532:
        v.fail("unexpected_device", f"the chip on {port} reports IC {fw.ic:#04x}, not a PN532 "
               f"({IC_PN532:#04x})", "contactless.check_device")
        return v.result("")
    failed = [t for t in probe.tests if not t.passed and t.name in _TEST_NAMES]
    if failed:
        names = ", ".join(_TEST_NAMES[t.name] for t in failed)
        v.fail("self_test_failed", f"PN532 self-test failed: {names}", "contactless.replace_module")
    antenna = next((t for t in probe.tests if t.name == "antenna"), None)
    if antenna is not None and not antenna.passed:
        status = f" (status {antenna.status_byte:#04x})" if antenna.status_byte is not None else ""
        v.fail("antenna_fault", f"PN532 antenna self-test found no antenna{status}",
               "contactless.check_antenna")
    card = ""
    if probe.scan is not None and probe.scan.present:
        card = ", a card is on the reader"
    return v.result(f"PN532 firmware {fw.version_text} on {port}, self-tests passed{card}")


# Silent chip: one ACK timeout. Slowest healthy probe: every command's response timeout
# (SAMConfiguration 1 s, firmware 0.35 s, line 0.5 s, ROM and RAM 1.5 s each, antenna 1 s, and
# the optional scan: RFConfiguration 0.35 s + the scan timeout) ≈ 8.2 s.
SPEC = CheckSpec("contactless", run, ContactlessConfig, timeout_s=10.0)
