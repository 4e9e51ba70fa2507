"""HID card reader: a keyboard-wedge magnetic stripe reader is plugged in, and what it is.

Presence and USB descriptors (maker, model, USB serial number, bcdDevice as firmware) come from
udev alone. The check never opens the reader's input node: reading keys here would eat the
merchant's swipes, and a grab would lock the payment application out. What only a swipe can
tell (the keyboard layout the reader types in) comes from the last ``posdiag swipe-test`` on
this reader, which leaves its verdict (no card data) in the state directory.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, rule
from posdiag.drivers.errors import NotSupported
from posdiag.results import CheckResult, Verdict, skipped

if TYPE_CHECKING:
    from posdiag.drivers.hid import HidReader

WHAT = "HID card reader"
HINT_CONNECTION = "hid_card_reader.check_connection"
HINT_LAYOUT = "hid_card_reader.set_us_layout"
HINT_UNDECODABLE = "hid_card_reader.restore_keyboard_mode"
RECORD_FILE = "hid-swipe-test.json"
# What a swipe test can find out about a reader that the periodic check cannot.
SWIPE_REASONS = ("hid_layout_mismatch", "hid_undecodable")
log = logging.getLogger(__name__)


def _usb_ids(values: tuple[str, ...]) -> str | None:
    from posdiag.drivers.hid.udev import parse_usb_id

    for value in values:
        try:
            parse_usb_id(value)
        except ValueError as e:
            return str(e)
    return None


def _input_node(v: str) -> str | None:
    if v == "" or v.startswith("/dev/input/"):
        return None
    return f"must be an input node under /dev/input (event node or by-id link), or empty, not {v!r}"


@dataclass(frozen=True)
class HidCardReaderConfig(CheckConfig):
    # /dev/input/eventN or /dev/input/by-id/…-event-kbd; "" = found through udev.
    port: str = rule(_input_node, "")
    # More readers by USB id ("vvvv:pppp"), for makers not in the shipped tables.
    usb_ids: tuple[str, ...] = rule(_usb_ids, ())
    required: bool = False  # True: no reader found is a failure (no_device), not a skip


def run(ctx: CheckContext, cfg: HidCardReaderConfig) -> CheckResult:
    from posdiag.drivers.hid import find_readers, reader_at

    try:
        if cfg.port:
            found = reader_at(cfg.port, usb_ids=cfg.usb_ids)
            readers = [found] if found is not None else []
        else:
            readers = find_readers(usb_ids=cfg.usb_ids)
    except NotSupported as e:
        v = Verdict(ctx.name)
        v.unknown("not_supported", f"{WHAT}: cannot look for it: {e.message}")
        return v.result("")
    if not readers:
        where = f"at {cfg.port}" if cfg.port else "on USB"
        summary = f"no {WHAT} (keyboard-mode magnetic stripe reader) found {where}"
        if cfg.required or cfg.port:
            v = Verdict(ctx.name)
            v.fail("no_device", summary, HINT_CONNECTION)
            return v.result("")
        return skipped(ctx.name, "no_device", f"{summary} (not required by the configuration)")
    reader = readers[0]
    v = Verdict(ctx.name)
    for key, value in describe(reader).items():
        v.metric(key, value)
    v.metric("readers_found", len(readers))
    _last_swipe_test(v, ctx, reader)
    firmware = f", firmware {reader.firmware}" if reader.firmware else ""
    return v.result(f"{reader.vendor or 'unknown maker'} {reader.model or 'card reader'} on "
                    f"{reader.port} (USB {reader.usb_id}{firmware})")


def describe(reader: HidReader) -> dict[str, str | bool | None]:
    """Inventory metrics of a reader: the device's descriptors, never anything of a card."""
    return {"port": reader.port, "found_via": "config" if reader.matched_by == "config"
            else "udev", "device_vendor": reader.vendor, "device_model": reader.model,
            "usb_vid": reader.vid, "usb_pid": reader.pid, "usb_serial": reader.serial,
            "firmware_version": reader.firmware, "usb_manufacturer": reader.usb_manufacturer,
            "usb_product": reader.usb_product, "input_name": reader.input_name,
            "matched_by": reader.matched_by}


def reader_key(reader: HidReader) -> str:
    """Which physical reader a swipe-test record belongs to."""
    return f"{reader.usb_id}:{reader.serial or ''}:{reader.firmware or ''}"


# -- the swipe test's record ------------------------------------------------------------------

def record_path(state_dir: str) -> Path:
    return Path(state_dir) / RECORD_FILE


def record_swipe_test(state_dir: str, reader: HidReader, reason: str,
                      layout: str | None) -> None:
    """Leave the swipe test's verdict for the periodic check (best effort: a read-only state
    directory must not fail the test). Verdicts only: no card data goes in here."""
    doc = {"reader": reader_key(reader), "reason": reason, "layout": layout,
           "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    path = record_path(state_dir)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        log.debug("could not keep the swipe test verdict in %s: %s", path, e.strerror)


def _read_record(state_dir: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(record_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _last_swipe_test(v: Verdict, ctx: CheckContext, reader: HidReader) -> None:
    doc = _read_record(ctx.config.paths.state_dir)
    if doc is None or doc.get("reader") != reader_key(reader):
        return  # never tested, or another reader (replaced, firmware changed) since
    reason, at = doc.get("reason"), doc.get("at")
    v.metric("swipe_test_at", at if isinstance(at, str) else None)
    v.metric("swipe_test_reason", reason if isinstance(reason, str) else None)
    if reason == "hid_layout_mismatch":
        from posdiag.drivers.hid.keymap import LAYOUT_NAMES

        layout = doc.get("layout")
        v.metric("keyboard_layout", layout if isinstance(layout, str) else None)
        named = LAYOUT_NAMES.get(layout, "a non-US") if isinstance(layout, str) else "a non-US"
        v.warn("hid_layout_mismatch", f"the last swipe test ({at}) found the reader typing in "
               f"{named} keyboard layout: swipes arrive garbled unless it types US", HINT_LAYOUT)
    elif reason == "hid_undecodable":
        v.warn("hid_undecodable", f"the last swipe test ({at}) got key presses no keyboard "
               f"layout explains: the reader is not in plain keyboard mode", HINT_UNDECODABLE)


# udev enumeration only: no device I/O.
SPEC = CheckSpec("hid_card_reader", run, HidCardReaderConfig, timeout_s=3.0)
