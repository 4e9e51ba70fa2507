"""Chip reader: PC/SC (CCID) chip and contactless readers through pcscd.

Step by step, so each failure names its own remedy: pcscd installed, running, answering on its
socket; the readers it lists, matched against the configured name patterns, and USB CCID readers
it does not list; per reader, a card present or not, mute, or held by another application; with
a card: the ATR (ISO 7816-3), then SELECT of the PSE/PPSE and the applications found (AID,
label, brand). Nothing else is sent to a payment card (no READ RECORD): only application
identifiers and labels leave the driver, never card data. A card that another application is
connected to is not touched (its transaction must not be disturbed).

A card that answers the reset but not SELECT, or that answers 6A81 / 6283, is a card problem
(卡片芯片失效), not a reader problem (读卡器故障): the reason codes say which.
A reader of the ACR122U family (name patterns PN532_READERS and ``nfc_readers``) carries a
PN532: its firmware and self-tests run through the reader's pseudo-APDUs, the same tests as
the serial contactless check.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.checks.device import add_driver_error
from posdiag.config import CheckConfig, absolute_path, between, rule
from posdiag.drivers.errors import DeviceBusy, DeviceTimeout, DriverError, NotSupported
from posdiag.results import CheckResult, Verdict, skipped

if TYPE_CHECKING:
    from posdiag.drivers.pcsc import Atr, PcscContext, ReaderState, Selection, ServiceState
    from posdiag.drivers.pcsc.usb import CcidDevice

WHAT = "chip reader"
HINT_CONNECTION = "chip_reader.check_connection"
# The ACR122U family: a PN532 behind CCID (ACS ACR122U API).
PN532_READERS = ("*ACR122*", "*ACR1252*")
_SERVICE = {
    "not_installed": ("pcscd_not_installed", "chip_reader.install_pcscd",
                      "the PC/SC service pcscd is not installed"),
    "not_running": ("pcscd_not_running", "chip_reader.start_pcscd",
                    "the PC/SC service pcscd is not running"),
    "refused": ("pcscd_unreachable", "chip_reader.restart_pcscd",
                "pcscd runs but its socket {socket} does not accept connections ({state})"),
}


@dataclass(frozen=True)
class ChipReaderConfig(CheckConfig):
    # Glob patterns of PC/SC reader names this terminal has ("ACS ACR39U*"); empty: any reader.
    readers: tuple[str, ...] = ()
    required: bool = False  # True: no chip reader (or no pcscd) is a failure, not a skip
    socket: str = rule(absolute_path, "/run/pcscd/pcscd.comm")
    # SELECT of the PSE/PPSE and applications when a card is in and no other program uses it.
    select_applications: bool = True
    # More readers with a PN532 behind CCID (pseudo-APDU FF 00 00 00) besides PN532_READERS.
    nfc_readers: tuple[str, ...] = ()
    apdu_timeout_s: float = rule(between(0.1, 5.0), 1.0)
    max_readers: int = rule(between(1, 16), 4)


@dataclass
class _Seen:
    """What one reader showed, for the metrics of the reader the result is about."""

    name: str
    card_present: bool = False
    atr: Atr | None = None
    protocol: str | None = None
    selection: Selection | None = None
    holder: str | None = None
    in_use: bool = False
    pn532: str | None = None


def run(ctx: CheckContext, cfg: ChipReaderConfig) -> CheckResult:
    try:
        from posdiag.drivers.pcsc import service_state
        from posdiag.drivers.pcsc.session import _lib
        _lib()
    except (ImportError, NotSupported) as e:
        return _absent_or(ctx, cfg, "unknown", "not_supported",
                          f"PC/SC support is not installed in posdiag ({e}); install the "
                          "'pcsc' extra")
    v = Verdict(ctx.name)
    state = service_state(rootfs=ctx.roots.rootfs, procfs=ctx.roots.procfs,
                          socket_path=cfg.socket, timeout_s=ctx.remaining(0.5))
    usb = _usb_readers()
    v.metric("pcscd_installed", state.installed)
    v.metric("pcscd_running", bool(state.processes))
    v.metric("pcscd_socket", state.socket)
    v.metric("ccid_usb_readers", len(usb) if usb is not None else None)
    if state.problem is not None:
        return _service_down(ctx, cfg, v, state, usb or ())
    from posdiag.drivers.pcsc import PcscContext
    from posdiag.drivers.pcsc.session import use_socket

    if cfg.socket != "/run/pcscd/pcscd.comm":
        use_socket(cfg.socket)
    try:
        with PcscContext(timeout_s=ctx.remaining(1.0)) as pc:
            names = pc.readers()
            return _readers(ctx, cfg, v, pc, names, usb or ())
    except DriverError as err:
        add_driver_error(v, err, WHAT, HINT_CONNECTION)
        return v.result("")


def _usb_readers() -> tuple[CcidDevice, ...] | None:
    from posdiag.drivers.pcsc.usb import ccid_devices

    try:
        return ccid_devices()
    except NotSupported:
        return None


def _absent_or(ctx: CheckContext, cfg: ChipReaderConfig, status: str, reason: str,
               summary: str, *hints: str) -> CheckResult:
    if not cfg.required and not cfg.readers:
        return skipped(ctx.name, reason if reason != "not_supported" else "no_device",
                       f"{summary} (no chip reader required by the configuration)")
    v = Verdict(ctx.name)
    (v.unknown if status == "unknown" else v.fail)(reason, summary, *hints)
    return v.result("")


def _service_down(ctx: CheckContext, cfg: ChipReaderConfig, v: Verdict, state: ServiceState,
                  usb: tuple[CcidDevice, ...]) -> CheckResult:
    reason, hint, text = _SERVICE[state.problem or "refused"]
    summary = text.format(socket=state.socket_path, state=state.socket)
    if usb:
        summary += f"; a chip reader is plugged in ({usb[0].label}) and cannot be used"
    elif not cfg.required and not cfg.readers:
        return skipped(ctx.name, reason, f"{summary} (no chip reader on USB or in the "
                                         "configuration)")
    v.fail(reason, summary, hint)
    return v.result("")


def _readers(ctx: CheckContext, cfg: ChipReaderConfig, v: Verdict, pc: PcscContext,
             names: tuple[str, ...], usb: tuple[CcidDevice, ...]) -> CheckResult:
    from posdiag.drivers.pcsc.usb import served_by

    wanted = [n for n in names if not cfg.readers
              or any(fnmatch.fnmatch(n, p) for p in cfg.readers)]
    v.metric("readers_listed", len(names))
    v.metric("readers_matched", len(wanted))
    v.metric("reader_names", "; ".join(names)[:200] or None)
    unserved = [d for d in usb if not served_by(d, names)]
    for d in unserved:
        v.fail("reader_no_driver", f"{d.label} is on USB but pcscd does not list it: pcscd has "
               "no driver for it, or was started before it was plugged in",
               "chip_reader.replug_restart_pcscd")
    if not wanted:
        if unserved:
            return v.result("")
        which = (f"no PC/SC reader matches {', '.join(cfg.readers)}" if cfg.readers
                 else "pcscd lists no reader")
        if names and cfg.readers:
            which += f" (pcscd lists: {'; '.join(names)})"
        if not cfg.required and not cfg.readers:
            return skipped(ctx.name, "no_device", f"{which} (not required by the configuration)")
        v.fail("no_device", which, HINT_CONNECTION)
        return v.result("")
    states = pc.states(tuple(wanted[:cfg.max_readers]))
    seen = [_reader(ctx, cfg, v, pc, states[n]) for n in wanted[:cfg.max_readers] if n in states]
    main = next((s for s in seen if s.card_present), seen[0] if seen else None)
    if main is not None:
        _metrics(v, main)
    return v.result(_ok_summary(seen))


def _reader(ctx: CheckContext, cfg: ChipReaderConfig, v: Verdict, pc: PcscContext,
            st: ReaderState) -> _Seen:
    seen = _Seen(st.name, card_present=st.present)
    if st.unavailable:
        v.fail("no_device", f"reader {st.name} is listed but unavailable (unplugged?)",
               HINT_CONNECTION)
        return seen
    if not st.present:
        return seen
    if st.exclusive or st.in_use:
        seen.in_use = True
        seen.holder = _holder()
        how = "exclusively" if st.exclusive else "(shared)"
        if st.exclusive:
            v.warn("reader_in_use", f"reader {st.name} is in use {how} by {seen.holder}; not "
                   "interrupted", "chip_reader.wait_for_app")
        if st.atr:
            _judge_atr(v, st.name, st.atr, seen)
        return seen  # never disturb the other application's transaction
    if st.mute or not st.atr or st.atr[0] not in (0x3B, 0x3F):
        v.fail("card_mute", f"the card in {st.name} gives no answer to reset (no ATR): the "
               "card's chip or contacts", "chip_reader.card_faulty", "chip_reader.clean_contacts")
        return seen
    if not _judge_atr(v, st.name, st.atr, seen):
        return seen
    if cfg.select_applications or _is_pn532(cfg, st.name):
        _connect(ctx, cfg, v, pc, st, seen)
    return seen


def _judge_atr(v: Verdict, reader: str, raw: bytes, seen: _Seen) -> bool:
    from posdiag.drivers.errors import ProtocolError
    from posdiag.drivers.pcsc import parse_atr

    try:
        seen.atr = atr = parse_atr(raw)
    except ProtocolError as e:
        v.fail("card_atr_invalid", f"the card in {reader} gives a malformed ATR: {e.message}",
               "chip_reader.clean_contacts", "chip_reader.card_faulty")
        return False
    if atr.tck_ok is False:
        v.fail("card_atr_invalid", f"the card in {reader} gives an ATR whose check byte (TCK) "
               "is wrong", "chip_reader.clean_contacts", "chip_reader.card_faulty")
        return False
    return True


def _connect(ctx: CheckContext, cfg: ChipReaderConfig, v: Verdict, pc: PcscContext,
             st: ReaderState, seen: _Seen) -> None:
    from posdiag.drivers.pcsc import select_applications

    try:
        with pc.connect(st.name) as card:
            seen.protocol = card.protocol
            card.begin()
            if _is_pn532(cfg, st.name):
                _pn532(v, card, st.name, seen)
                return
            seen.selection = sel = select_applications(card)
    except DeviceBusy:
        seen.in_use = True
        seen.holder = _holder()
        v.warn("reader_in_use", f"reader {st.name} is in use by {seen.holder}; not interrupted",
               "chip_reader.wait_for_app")
        return
    except DeviceTimeout as e:
        v.fail("card_not_answering", f"the card in {st.name} answered the reset but not the "
               f"application selection ({e.message})", "chip_reader.card_faulty")
        return
    except NotSupported as e:
        v.fail("card_not_answering", f"the card in {st.name} rejects selection: {e.message}",
               "chip_reader.card_faulty")
        return
    except DriverError as e:
        add_driver_error(v, e, WHAT, HINT_CONNECTION)
        return
    _judge_selection(v, st.name, sel)


def _judge_selection(v: Verdict, reader: str, sel: Selection) -> None:
    if sel.card_blocked:
        v.fail("card_blocked", f"the card in {reader} is blocked: SELECT answered 6A81",
               "chip_reader.card_blocked")
        return
    blocked = [a for a in sel.applications if a.blocked]
    if blocked:
        a = blocked[0]
        name = a.brand.name if a.brand else a.aid
        v.fail("card_app_blocked", f"the {name} application ({a.aid}) on the card in {reader} "
               "is blocked: SELECT answered 6283", "chip_reader.card_blocked")
        return
    if not sel.applications:
        v.warn("card_no_application", f"the card in {reader} has no payment application this "
               "terminal knows (no PSE/PPSE entry, no known AID)", "chip_reader.card_faulty")


def _pn532(v: Verdict, card: object, reader: str, seen: _Seen) -> None:
    from posdiag.drivers.pcsc.pn532_link import Pn532OverCcid

    chip = Pn532OverCcid(card, device=reader)  # type: ignore[arg-type]
    probe = chip.probe()
    seen.pn532 = probe.firmware.version_text
    v.metric("pn532_firmware_ic", f"{probe.firmware.ic:#04x}")
    v.metric("pn532_firmware_version", probe.firmware.version_text)
    for t in probe.self_tests:
        v.metric(f"pn532_self_test_{t.name}_ok", t.passed)
    failed = [t.name for t in probe.self_tests if not t.passed and t.name != "antenna"]
    if failed:
        v.fail("self_test_failed", f"the PN532 in {reader} failed its self-test: "
               f"{', '.join(failed)}", "contactless.replace_module")
    if not probe.antenna.passed:
        v.fail("antenna_fault", f"the PN532 in {reader} detects no antenna",
               "contactless.check_antenna")


def _is_pn532(cfg: ChipReaderConfig, name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in (*PN532_READERS, *cfg.nfc_readers))


def _holder() -> str:
    from posdiag.drivers.pcsc import pcsc_clients

    clients = pcsc_clients(exclude=(os.getpid(),))
    if len(clients) == 1:
        return str(clients[0])
    if clients:
        return "one of " + ", ".join(map(str, clients[:3]))
    return "another PC/SC application"


def _metrics(v: Verdict, s: _Seen) -> None:
    v.metric("reader", s.name)
    v.metric("card_present", s.card_present)
    v.metric("card_in_use", s.in_use)
    if s.holder:
        v.metric("reader_holder", s.holder)
    if s.atr is not None:
        v.metric("card_atr", s.atr.hex)
        v.metric("card_convention", s.atr.convention)
        v.metric("card_protocols", ",".join(f"T={t}" for t in s.atr.protocols))
        v.metric("card_tck_ok", s.atr.tck_ok)
    if s.protocol:
        v.metric("card_protocol", s.protocol)
    sel = s.selection
    if sel is not None:
        v.metric("pse", sel.pse)
        v.metric("ppse", sel.ppse)
        v.metric("applications_count", len(sel.applications))
        app = sel.final or (sel.applications[0] if sel.applications else None)
        if app is not None:
            v.metric("application_aid", app.aid)
            v.metric("application_label", app.label)
            v.metric("application_brand", app.brand.name if app.brand else None)


def _ok_summary(seen: list[_Seen]) -> str:
    parts = []
    for s in seen:
        if not s.card_present:
            parts.append(f"{s.name}: ready, no card")
        elif s.in_use:
            parts.append(f"{s.name}: card in use by {s.holder}, not probed")
        elif s.pn532:
            parts.append(f"{s.name}: PN532 firmware {s.pn532}, self-tests passed")
        elif s.selection and s.selection.brand:
            parts.append(f"{s.name}: card answers, {s.selection.brand.name} application")
        else:
            parts.append(f"{s.name}: card answers")
    return "; ".join(parts)


# Service probe 0.5 s + context/list/states ~1 s each + connect + the selection (one APDU
# timeout for a card that stops answering; a dozen fast APDUs otherwise).
SPEC = CheckSpec("chip_reader", run, ChipReaderConfig, timeout_s=6.0)
