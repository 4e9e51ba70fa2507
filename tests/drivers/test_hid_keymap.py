"""Key codes → track text: the kernel's key numbers, the US map with shift, Caps Lock, keypad
and ALT-ASCII mode, and layouts the decoder names instead of parsing.

The presses come from ``simulators.hid_keyboard``, whose character → key tables are written
from the layouts in the direction a reader types, apart from the driver's decoding tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from posdiag.drivers.hid.keycodes import CODES
from posdiag.drivers.hid.keymap import KeyEvent, decode, type_text
from simulators.hid_keyboard import LAYOUTS, key_events

HEADER = Path("/usr/include/linux/input-event-codes.h")
TRACK1 = "%B4111111111111111^SWIPE/TEST^49121010000000000000?"
TRACK2 = ";4111111111111111=49121015550000000?"


def presses(text: str, layout: str = "us", **kw: bool) -> list[KeyEvent]:
    return [KeyEvent(c, v) for c, v in key_events(text, layout, **kw)]


def test_key_numbers_are_the_kernels() -> None:
    assert HEADER.exists(), "install the Debian package linux-libc-dev (kernel headers)"
    defined = {m[1]: int(m[2], 0) for m in
               re.finditer(r"^#define\s+(KEY_\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", HEADER.read_text(),
                           re.MULTILINE)}
    assert {name: defined.get(name) for name in CODES} == dict(CODES)


@pytest.mark.parametrize("text", [TRACK1 + TRACK2 + "\r", TRACK2 + "\r",
                                  "%ABC 012/-.()&+*#!\"'$:<>@[]\\_^?"])
def test_us_presses_give_back_the_text(text: str) -> None:
    typed, unknown = type_text(presses(text), "us")
    assert typed.decode("latin-1") == text and unknown == 0


def test_decode_hands_us_tracks_on() -> None:
    d = decode(presses(TRACK1 + TRACK2 + "\r"))
    assert d.decodable and d.text == (TRACK1 + TRACK2 + "\r").encode()
    shifted = sum(1 for c in TRACK1 + TRACK2 if c.isupper() or c in "%^?")
    assert d.presses == len(TRACK1 + TRACK2) + 1 + shifted  # shift is a press of its own
    assert "4111" not in repr(d)  # card data stays out of reprs


def test_alt_ascii_mode_is_decoded() -> None:
    d = decode(presses(TRACK2 + "\r", alt_ascii=True))
    assert d.decodable and d.text == (TRACK2 + "\r").encode()


def test_caps_lock_from_the_reader_flips_letters_only() -> None:
    events = [KeyEvent(CODES["KEY_CAPSLOCK"], 1), KeyEvent(CODES["KEY_CAPSLOCK"], 0),
              *presses("b1")]
    assert type_text(events, "us")[0] == b"B1"


def test_auto_repeat_and_releases_type_nothing() -> None:
    events = [KeyEvent(CODES["KEY_5"], 1), KeyEvent(CODES["KEY_5"], 2),
              KeyEvent(CODES["KEY_5"], 0)]
    assert type_text(events, "us") == (bytearray(b"5"), 0)


@pytest.mark.parametrize("layout", ["de", "fr"])
def test_a_reader_in_another_layout_is_named_not_parsed(layout: str) -> None:
    events = presses(TRACK1 + TRACK2 + "\r", layout)
    us_text, _ = type_text(events, "us")
    assert b"?" not in us_text and us_text != (TRACK1 + TRACK2 + "\r").encode()  # garbled in US
    d = decode(events)
    assert d.layout == layout and not d.decodable and d.text == b""


@pytest.mark.parametrize("layout", ["de", "fr"])
def test_layout_tables_type_the_track_characters(layout: str) -> None:
    # The decoder's table for the layout reads back what the reader-side table typed.
    for text in (TRACK1, TRACK2):
        assert type_text(presses(text, layout), layout)[0].decode("latin-1") == text
    assert set(TRACK1 + TRACK2) <= set(LAYOUTS[layout])


def test_presses_no_layout_explains_are_undecodable() -> None:
    f1 = CODES["KEY_ESC"]
    events = [KeyEvent(f1, 1), KeyEvent(f1, 0)] * 5 + presses("12")
    d = decode(events)
    assert d.layout is None and d.unknown_keys == 5 and d.text == b""


def test_plain_text_without_sentinels_goes_to_the_parser() -> None:
    d = decode(presses("123\r"))  # a reader set to strip sentinels: the parser says "no track"
    assert d.decodable and d.text == b"123\r"


def test_nothing_pressed() -> None:
    d = decode([KeyEvent(CODES["KEY_A"], 0)])
    assert d.presses == 0 and d.layout is None
