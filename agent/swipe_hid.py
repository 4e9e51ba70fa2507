"""The swipe test on a keyboard-mode (USB HID) card reader: the HID path of ``swipe.py``.

The reader is found through udev (``[checks.hid_card_reader]``), its input node grabbed for
the wait only (the driver releases it on every way out), and the key presses judged by the
driver: track verdicts when they are US-layout tracks, else the layout they were typed in.
The verdict, never card data, is kept for the periodic ``hid_card_reader`` check.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace

from posdiag.checks.device import add_driver_error
from posdiag.checks.hid_card_reader import (
    HINT_CONNECTION,
    HINT_LAYOUT,
    HINT_UNDECODABLE,
    WHAT,
    HidCardReaderConfig,
    record_swipe_test,
)
from posdiag.config import Config
from posdiag.drivers.errors import DeviceBusy, DriverError, NotSupported
from posdiag.results import Verdict
from posdiag.swipe import SwipeOutcome, swipe_problems

HINT_GRAB = "hid_card_reader.release_grab"
_DOTTED = re.compile(r"^[0-9]+(\.[0-9]+)*$")
log = logging.getLogger(__name__)


def is_input_node(port: str | None) -> bool:
    return bool(port) and str(port).startswith("/dev/input/")


def reader_configured_or_present(config: Config) -> bool:
    """Whether the swipe test should use the HID path when no serial reader is there."""
    cfg: HidCardReaderConfig = config.check("hid_card_reader")  # type: ignore[assignment]
    if cfg.port:
        return True
    from posdiag.drivers.hid import find_readers

    try:
        return bool(find_readers(usb_ids=cfg.usb_ids))
    except NotSupported:
        return False


def read_swipe(config: Config, *, timeout_s: float, port: str | None = None,
               on_ready: Callable[[str], None] = lambda port: None) -> SwipeOutcome:
    from posdiag.drivers.hid import find_readers, reader_at
    from posdiag.drivers.hid import read_swipe as read_hid

    cfg: HidCardReaderConfig = config.check("hid_card_reader")  # type: ignore[assignment]
    cfg = replace(cfg, port=port or cfg.port)
    v = Verdict("hid_card_reader")
    try:
        found = ([r] if (r := reader_at(cfg.port, usb_ids=cfg.usb_ids)) else []) if cfg.port \
            else find_readers(usb_ids=cfg.usb_ids)
    except NotSupported as e:
        v.fail("no_device", f"cannot look for a {WHAT}: {e.message}", HINT_CONNECTION)
        return _failed(timeout_s, cfg.port or None, None, v)
    if not found:
        where = f"at {cfg.port}" if cfg.port else "on USB (serial or keyboard-mode)"
        v.fail("no_device", f"no card reader found {where}", HINT_CONNECTION)
        return _failed(timeout_s, cfg.port or None, None, v)
    reader = found[0]
    node = reader.devnode
    firmware = reader.firmware if reader.firmware and _DOTTED.match(reader.firmware) else None
    try:
        session = read_hid(node, timeout_s, on_ready=lambda: on_ready(reader.port))
    except DriverError as err:
        add_driver_error(v, err, WHAT, HINT_CONNECTION)
        if isinstance(err, DeviceBusy):
            v.findings[-1] = replace(v.findings[-1], hints=(HINT_GRAB,))
        log.debug("HID card reader failed: %s", err)
        return _failed(timeout_s, reader.port, firmware, v)
    got = session.swipe
    if got is None:
        return SwipeOutcome("no_swipe", timeout_s, reader.port, firmware, wait_s=timeout_s,
                            transport="hid")
    state_dir = config.paths.state_dir
    if got.swipe is None:
        if got.layout is not None:
            from posdiag.drivers.hid.keymap import LAYOUT_NAMES

            record_swipe_test(state_dir, reader, "hid_layout_mismatch", got.layout)
            v.warn("hid_layout_mismatch", f"the reader types in {LAYOUT_NAMES[got.layout]} "
                   f"keyboard layout, not US: the payment application receives wrong "
                   f"characters", HINT_LAYOUT)
        else:
            record_swipe_test(state_dir, reader, "hid_undecodable", None)
            v.warn("hid_undecodable", f"{got.unknown_keys} of {got.presses} key presses make "
                   f"no track character in any known keyboard layout", HINT_UNDECODABLE)
        return SwipeOutcome("reader_error", timeout_s, reader.port, firmware,
                            failure=v.result(""), transport="hid", keyboard_layout=got.layout)
    record_swipe_test(state_dir, reader, "ok", "us")
    outcome = "problems" if swipe_problems(got.swipe) else "ok"
    log.debug("HID swipe after %.2f s: %d key presses, tracks present %s, problems %s",
              got.wait_s, got.presses, [t.track for t in got.swipe.tracks if t.present],
              list(swipe_problems(got.swipe)))
    return SwipeOutcome(outcome, timeout_s, reader.port, firmware, got.swipe, got.wait_s,
                        transport="hid", keyboard_layout="us")


def _failed(timeout_s: float, port: str | None, firmware: str | None,
            v: Verdict) -> SwipeOutcome:
    return SwipeOutcome("reader_error", timeout_s, port, firmware, failure=v.result(""),
                        transport="hid")
