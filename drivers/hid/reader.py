"""One swipe from a keyboard-wedge magnetic stripe reader, as verdicts only.

The reader's evdev node is grabbed (``EVIOCGRAB``) for the wait only and released on every way
out, so the payment application gets the reader back even after an error or Ctrl-C. The key
presses are decoded (``keymap.decode``) and, when they are US-layout tracks, handed to the same
track parser as the serial readers (``msr.tracks.analyse_swipe``). Key events, decoded text and
read buffers are card data: they are wiped or dropped before anything is returned.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from posdiag.drivers.hid.input_device import InputDevice, Ioctl, Opener
from posdiag.drivers.hid.keycodes import ENTER_KEYS, KEY_PRESSED
from posdiag.drivers.hid.keymap import KeyEvent, decode
from posdiag.drivers.msr.tracks import SwipeResult, analyse_swipe

# Readers type a swipe in well under a second at a steady key rate. Silence this long after
# the first key means the swipe is complete (a reader set to send no Enter at the end).
IDLE_S = 1.0
# Most readers end the swipe with one Enter; some end every track with one. After an Enter,
# wait this long for another track before calling the swipe complete.
AFTER_ENTER_S = 0.3
# Three full ISO tracks are 79 + 40 + 107 characters; shifted characters take two presses.
MAX_EVENTS = 2048


@dataclass(frozen=True)
class HidSwipe:
    """What one swipe typed. ``swipe`` holds the track verdicts when the presses decode as
    US-layout tracks; else ``layout`` names the layout they do make tracks in (or is None:
    no layout explains them) and there are no verdicts."""

    swipe: SwipeResult | None
    layout: str | None
    presses: int
    unknown_keys: int
    wait_s: float

    def __post_init__(self) -> None:
        if self.swipe is not None and self.layout != "us":
            raise ValueError("track verdicts come only from US-layout key presses")


@dataclass(frozen=True)
class HidSession:
    """The reader as the test saw it, and the swipe (None: nothing typed in time)."""

    device_name: str | None
    swipe: HidSwipe | None


def collect_keys(dev: InputDevice, timeout_s: float, *, idle_s: float = IDLE_S,
                 after_enter_s: float = AFTER_ENTER_S,
                 clock: Callable[[], float] = time.monotonic) -> list[KeyEvent]:
    """Key events of one swipe: waits up to ``timeout_s`` for the first press, then until the
    reader falls silent. Empty when no key was pressed in time."""
    deadline = clock() + timeout_s
    keys: list[KeyEvent] = []
    last_press: float | None = None
    after_enter = False
    while len(keys) < MAX_EVENTS:
        now = clock()
        if last_press is None:
            wait = deadline - now
            if wait <= 0:
                return []
        else:
            wait = (after_enter_s if after_enter else idle_s) - (now - last_press)
            if wait <= 0:
                break
        if not dev.wait_readable(wait):
            continue
        for ev in dev.read_keys():
            if last_press is None and ev.value != KEY_PRESSED:
                continue  # the release of a key pressed before the test began
            keys.append(ev)
            if ev.value == KEY_PRESSED:
                last_press = clock()
                after_enter = ev.code in ENTER_KEYS
    return keys


def read_swipe(node: str, timeout_s: float, *, on_ready: Callable[[], None] = lambda: None,
               idle_s: float = IDLE_S, ioctl: Ioctl = fcntl.ioctl,
               opener: Opener = os.open) -> HidSession:
    """Open and grab ``node``, call ``on_ready()``, wait for one swipe, release, judge it.

    Raises the driver errors (``DeviceNotFound``, ``PermissionDenied``, ``DeviceBusy`` when
    another program holds the grab).
    """
    with InputDevice(node, ioctl=ioctl, opener=opener) as dev:
        name = dev.name()
        with dev.exclusive():
            on_ready()
            started = time.monotonic()
            keys = collect_keys(dev, timeout_s, idle_s=idle_s)
            waited = time.monotonic() - started
    # Released: the payment application has its reader back before the judging starts.
    read_at = datetime.now(UTC)
    try:
        decoded = decode(keys)
    finally:
        keys.clear()
    if not decoded.presses:
        return HidSession(name, None)
    try:
        verdicts = analyse_swipe(decoded.text, read_at=read_at) if decoded.decodable else None
    finally:
        decoded.text[:] = bytes(len(decoded.text))
    return HidSession(name, HidSwipe(verdicts, decoded.layout, decoded.presses,
                                     decoded.unknown_keys, waited))
