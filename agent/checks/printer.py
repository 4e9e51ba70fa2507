"""Printer: can the receipt printer print now? Paper, cover, online state and error causes.

Asks the four ESC/POS real-time statuses (``DLE EOT 1..4``, protocols.md §5.1), which a printer
answers even while offline, so the answer says *why* it does not print. The port is a tty
(RS-232, USB-serial) or a printer-class node (``/dev/usb/lp0``, bound to usblp, the common case
for a USB receipt printer); ``transport = "auto"`` tells them apart by the node's device major.

Findings in root-cause order: cover open, paper out, the error cause (cutter, unrecoverable,
auto-recoverable), offline without a stated cause, then paper nearly used up (a warning).
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
    from posdiag.drivers.escpos import PrinterStatus
    from posdiag.drivers.transport import Port
    from posdiag.drivers.usblp import UsbLpPort

WHAT = "receipt printer"
CONNECTION_HINT = "printer.check_connection"


@dataclass(frozen=True)
class PrinterConfig(DeviceConfig):
    driver: Literal["auto", "escpos"] = "auto"
    # RS-232/USB-serial printers only (usblp ignores it): 9600 8N1 is python-escpos' serial
    # default; set what the printer's DIP or memory switches say (38400 is also common).
    baudrate: int = rule(between(300, 4_000_000), 9600)
    # "auto": usblp/parallel printer nodes (device major 180 or 6) are opened as plain device
    # files, everything else as a serial port; "serial"/"usblp" force one.
    transport: Literal["auto", "serial", "usblp"] = "auto"
    reply_timeout_s: float = rule(between(0.05, 10.0), 1.0)  # per DLE EOT reply


def _is_url(port: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", port) is not None


def _transport(port: str, cfg: PrinterConfig) -> Literal["serial", "usblp"]:
    if cfg.transport != "auto":
        return cfg.transport
    from posdiag.drivers.usblp import is_printer_node

    return "usblp" if not _is_url(port) and is_printer_node(port) else "serial"


def _open(ctx: CheckContext, port: str, transport: str,
          cfg: PrinterConfig) -> Port | UsbLpPort:
    proc_root = str(ctx.roots.procfs)  # where port holders are looked up
    if transport == "usblp":
        from posdiag.drivers.usblp import open_usblp

        return open_usblp(port, timeout_s=POLL_S, write_timeout_s=cfg.reply_timeout_s,
                          proc_root=proc_root)
    from posdiag.drivers.transport import open_port

    return open_port(port, baudrate=cfg.baudrate, timeout_s=POLL_S,
                     write_timeout_s=cfg.reply_timeout_s, proc_root=proc_root)


def _metrics(v: Verdict, s: PrinterStatus) -> None:
    v.metric("online", s.online)
    v.metric("paper_near_end", s.paper_near_end)
    v.metric("paper_end", s.paper_end)
    v.metric("cover_open", s.cover_open)
    v.metric("feed_button", s.feed_button)
    v.metric("drawer_pin_high", s.drawer_pin_high)
    v.metric("error", s.error)
    v.metric("cutter_error", s.cutter_error)
    v.metric("unrecoverable_error", s.unrecoverable_error)
    v.metric("auto_recoverable_error", s.auto_recoverable_error)
    v.metric("mechanical_error", s.mechanical_error)  # model dependent (n=3 bit 2)
    v.metric("status_bytes", s.raw.hex())  # DLE EOT 1..4 replies, for support


def _error_finding(v: Verdict, s: PrinterStatus) -> bool:
    """printer_error naming the cause; True if one was added."""
    if s.cutter_error:
        v.fail("printer_error", Summary("printer.cutter_error"),
               "printer.clear_cutter")
    elif s.unrecoverable_error:
        v.fail("printer_error", Summary("printer.unrecoverable"), "printer.service")
    elif s.auto_recoverable_error:
        v.fail("printer_error", Summary("printer.auto_recoverable"),
               "printer.wait_to_cool")
    elif s.offline_cause.error:
        # Bit 2 of n=3 is model dependent, so it only names the cause once n=2 says "error".
        v.fail("printer_error", Summary("printer.mechanical" if s.mechanical_error
                                        else "printer.error_no_cause"), "printer.service")
    else:
        return False
    return True


def _findings(v: Verdict, s: PrinterStatus) -> None:
    explained = False
    if s.cover_open:
        v.fail("cover_open", Summary("printer.cover_open"), "printer.close_cover")
        explained = True
    if s.paper_end:
        v.fail("paper_out", Summary("printer.paper_out"), "printer.load_paper")
        explained = True
    explained = _error_finding(v, s) or explained
    if not s.online and not explained:
        v.fail("printer_offline", Summary("printer.offline_feeding" if s.feed_button
                                          else "printer.offline"),
               "printer.bring_online")
    if s.paper_near_end and not s.paper_end:
        v.warn("paper_low", Summary("printer.paper_low"), "printer.replace_paper_soon")


def run(ctx: CheckContext, cfg: PrinterConfig) -> CheckResult:
    where = locate(ctx, cfg, "printer", WHAT, CONNECTION_HINT)
    if isinstance(where, CheckResult):
        return where
    v = Verdict(ctx.name)
    for key, value in describe(where).items():
        v.metric(key, value)
    transport = _transport(where.port, cfg)
    v.metric("printer_transport", transport)
    # The driver is imported only here: a terminal without a printer never loads it.
    from posdiag.drivers.escpos import EscPosPrinter

    try:
        with _open(ctx, where.port, transport, cfg) as port:
            status = EscPosPrinter(port, device=where.port, timeout_s=cfg.reply_timeout_s).probe()
    except DriverError as err:
        add_driver_error(v, err, WHAT, CONNECTION_HINT)
        return v.result(Summary("device.failed"))
    _metrics(v, status)
    _findings(v, status)
    return v.result(Summary("printer.ok"))


# Four replies of at most reply_timeout_s each (1 s by default) plus opening the port.
SPEC = CheckSpec("printer", run, PrinterConfig, timeout_s=6.0)
