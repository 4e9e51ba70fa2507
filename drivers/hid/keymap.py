"""Key presses → text, for the keyboard layouts a card reader can be set to type in.

A keyboard-wedge reader does not send characters: it sends the key *positions* a person would
press on the keyboard layout it is configured for. Decoded with the US map, a reader set to a
German or French layout comes out as nonsense (``;`` becomes ``<`` or ``,``, digits become
``!@#``). The host's own keymap, Caps Lock state or input method (IME) play no part here: evdev
delivers the positions before any of them. A reader in ALT-ASCII mode (MagTek: "ASCII to
keypress conversion type" 1) holds left Alt and types each character's decimal code on the
keypad; that is layout-independent and decoded as such.

``decode`` tries US first. Only when US gives no track-shaped text are the other layouts tried,
to *name* the reader's layout for the technician; their text is never parsed as card data.

Layout tables list (unshifted, shifted) per key position; ``None`` where the position makes no
character a track can hold. Dead keys (``^`` on German and French keyboards) print their
accent when followed by a space, which is how a reader types them.
Sources: the US, German (DIN 2137 / T1) and French (AZERTY) layouts as shipped in the
xkeyboard-config symbols files ``us``, ``de`` and ``fr`` (read through public copies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from posdiag.drivers.hid.keycodes import (
    ALTGR_KEYS,
    CAPSLOCK,
    CODES,
    ENTER_KEYS,
    KEY_PRESSED,
    KEY_RELEASED,
    KEYPAD_DIGITS,
    LEFTALT,
    NUMLOCK,
    OTHER_MODIFIERS,
    SHIFT_KEYS,
)

Pair = tuple[str | None, str | None]
DEAD = "dead"  # marks a dead key in a table: its character needs a following space


def _letters(swaps: Mapping[str, str] | None = None) -> dict[str, Pair]:
    swaps = swaps or {}
    table: dict[str, Pair] = {}
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        typed = swaps.get(letter, letter)
        table[f"KEY_{letter}"] = (typed.lower(), typed)
    return table


_KEYPAD: dict[str, Pair] = {
    **{f"KEY_KP{d}": (str(d), str(d)) for d in range(10)},
    "KEY_KPDOT": (".", "."), "KEY_KPMINUS": ("-", "-"), "KEY_KPPLUS": ("+", "+"),
    "KEY_KPASTERISK": ("*", "*"), "KEY_KPSLASH": ("/", "/"),
}
_COMMON: dict[str, Pair] = {"KEY_SPACE": (" ", " "), "KEY_TAB": ("\t", "\t"), **_KEYPAD}

_US: dict[str, Pair] = {
    **_COMMON, **_letters(),
    **{f"KEY_{d}": (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)},
    "KEY_MINUS": ("-", "_"), "KEY_EQUAL": ("=", "+"), "KEY_LEFTBRACE": ("[", "{"),
    "KEY_RIGHTBRACE": ("]", "}"), "KEY_SEMICOLON": (";", ":"), "KEY_APOSTROPHE": ("'", '"'),
    "KEY_GRAVE": ("`", "~"), "KEY_BACKSLASH": ("\\", "|"), "KEY_COMMA": (",", "<"),
    "KEY_DOT": (".", ">"), "KEY_SLASH": ("/", "?"), "KEY_102ND": ("\\", "|"),
}

_DE: dict[str, Pair] = {
    **_COMMON, **_letters({"Y": "Z", "Z": "Y"}),
    **{f"KEY_{d}": (d, s) for d, s in zip("1234567890", '!"§$%&/()=', strict=True)},
    "KEY_MINUS": ("ß", "?"), "KEY_EQUAL": (None, None), "KEY_LEFTBRACE": ("ü", "Ü"),
    "KEY_RIGHTBRACE": ("+", "*"), "KEY_SEMICOLON": ("ö", "Ö"), "KEY_APOSTROPHE": ("ä", "Ä"),
    "KEY_GRAVE": (DEAD + "^", "°"), "KEY_BACKSLASH": ("#", "'"), "KEY_COMMA": (",", ";"),
    "KEY_DOT": (".", ":"), "KEY_SLASH": ("-", "_"), "KEY_102ND": ("<", ">"),
}

_FR: dict[str, Pair] = {
    **_COMMON, **_letters({"Q": "A", "A": "Q", "W": "Z", "Z": "W"}),
    **{f"KEY_{d}": (u, d) for d, u in zip("1234567890", "&é\"'(-è_çà", strict=True)},
    "KEY_MINUS": (")", "°"), "KEY_EQUAL": ("=", "+"), "KEY_LEFTBRACE": (DEAD + "^", None),
    "KEY_RIGHTBRACE": ("$", "£"), "KEY_SEMICOLON": ("m", "M"), "KEY_APOSTROPHE": ("ù", "%"),
    "KEY_GRAVE": ("²", None), "KEY_BACKSLASH": ("*", "µ"), "KEY_M": (",", "?"),
    "KEY_COMMA": (";", "."), "KEY_DOT": (":", "/"), "KEY_SLASH": ("!", "§"),
    "KEY_102ND": ("<", ">"),
}


def _by_code(table: Mapping[str, Pair]) -> Mapping[int, Pair]:
    return MappingProxyType({CODES[name]: pair for name, pair in table.items()})


LAYOUTS: Mapping[str, Mapping[int, Pair]] = MappingProxyType({
    "us": _by_code(_US), "de": _by_code(_DE), "fr": _by_code(_FR)})
# What the technician is told the reader types in (the code goes into metrics).
LAYOUT_NAMES = MappingProxyType({"us": "US English", "de": "German (QWERTZ)",
                                 "fr": "French (AZERTY)"})

# A track as a reader types it: start sentinel, at least one character, end sentinel.
_TRACK_SHAPED = re.compile(r"[%;][^%;?\r]+\?")


@dataclass(frozen=True)
class KeyEvent:
    """One EV_KEY event: a key position and press (1), release (0) or auto-repeat (2)."""

    code: int
    value: int

    def __repr__(self) -> str:  # key events of a swipe are card data: never shown
        return "KeyEvent(…)"


@dataclass(frozen=True)
class Decoded:
    """How one swipe's key presses read. ``text`` is card data: callers wipe it after use.

    ``layout`` is the layout the presses make tracks in (``"us"`` when decodable), or None;
    ``unknown_keys`` counts presses that make no character in that layout (US when None).
    """

    text: bytearray
    layout: str | None
    unknown_keys: int
    presses: int

    def __repr__(self) -> str:
        return (f"Decoded(layout={self.layout!r}, unknown_keys={self.unknown_keys}, "
                f"presses={self.presses})")

    @property
    def decodable(self) -> bool:
        return self.layout == "us"


def type_text(events: Iterable[KeyEvent], layout: str) -> tuple[bytearray, int]:
    """The characters ``events`` type in ``layout``, and how many presses typed nothing known.

    Enter becomes CR (the track parser splits on it). Characters outside Latin-1 (none a track
    holds) count as unknown.
    """
    table = LAYOUTS[layout]
    out = bytearray()
    unknown = 0
    shift: set[int] = set()
    altgr = caps = alt = False
    alt_code = ""  # ALT-ASCII mode: left Alt held, the character's decimal code on the keypad
    dead: str | None = None
    for ev in events:
        if ev.code == LEFTALT:
            alt = ev.value != KEY_RELEASED
            if not alt and alt_code:
                code, alt_code = int(alt_code), ""
                if code < 256:
                    out.append(code)
                else:
                    unknown += 1
            continue
        if alt and ev.code in KEYPAD_DIGITS:
            if ev.value == KEY_PRESSED:
                alt_code += KEYPAD_DIGITS[ev.code]
            continue
        if ev.code in SHIFT_KEYS:
            (shift.add if ev.value != KEY_RELEASED else shift.discard)(ev.code)
            continue
        if ev.code in ALTGR_KEYS:
            altgr = ev.value != KEY_RELEASED
            continue
        if ev.value != KEY_PRESSED or ev.code in OTHER_MODIFIERS or ev.code == NUMLOCK:
            continue  # releases, auto-repeat, modifiers that type nothing
        if ev.code == CAPSLOCK:
            caps = not caps
            continue
        if ev.code in ENTER_KEYS:
            out += b"\r"
            continue
        pair = table.get(ev.code)
        char = None if pair is None or altgr else pair[1 if shift else 0]
        if char is not None and caps and char.isalpha() and len(char) == 1:
            char = char.swapcase()
        if dead is not None:
            accent, dead = dead, None
            if char == " ":
                out += accent.encode("latin-1")
                continue
            unknown += 1  # an accented letter: no track character
            continue
        if char is not None and char.startswith(DEAD):
            dead = char[len(DEAD):]
            continue
        try:
            encoded = char.encode("latin-1") if char is not None else None
        except UnicodeEncodeError:
            encoded = None
        if encoded is None:
            unknown += 1
            continue
        out += encoded
    return out, unknown


def _track_shaped(text: bytearray) -> bool:
    return bool(_TRACK_SHAPED.search(text.decode("latin-1")))


def decode(events: list[KeyEvent]) -> Decoded:
    """US text when the presses make tracks in US; else which other layout they make tracks in."""
    presses = sum(1 for e in events if e.value == KEY_PRESSED)
    text, unknown = type_text(events, "us")
    if _track_shaped(text) or not presses:
        return Decoded(text, "us" if presses else None, unknown, presses)
    for layout in LAYOUTS:
        if layout == "us":
            continue
        other, _ = type_text(events, layout)
        shaped = _track_shaped(other)
        other[:] = bytes(len(other))  # only its shape was needed
        if shaped:
            text[:] = bytes(len(text))
            return Decoded(bytearray(), layout, unknown, presses)
    # No layout makes tracks: US text goes on only if every press was a US character (the
    # parser then says what is wrong with it); unknown presses mean an undecodable reader.
    if unknown:
        text[:] = bytes(len(text))
        return Decoded(bytearray(), None, unknown, presses)
    return Decoded(text, "us", 0, presses)
