"""Keyboard-wedge (USB HID) magnetic stripe readers: found through udev, read through evdev.

A transport for the magnetic stripe checks (DESIGN §9): the reader types its tracks as key
presses; this package turns them back into track text for ``msr.tracks`` and hands out only its
verdicts. Presence and USB descriptors come from udev alone (``udev.find_readers``): nothing
here reads a key outside the technician's swipe test (``reader.read_swipe``).
"""

from __future__ import annotations

from posdiag.drivers.hid.reader import HidSession, HidSwipe, read_swipe
from posdiag.drivers.hid.udev import HidReader, find_readers, reader_at

__all__ = ["HidReader", "HidSession", "HidSwipe", "find_readers", "read_swipe", "reader_at"]
