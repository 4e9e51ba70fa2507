"""Linux input key codes a keyboard-wedge card reader types (``linux/input-event-codes.h``).

Only the keys a reader can send are named. The numbers are the kernel's ABI; a test compares
them with the header on the build machine. Codes name key *positions* on a US keyboard: which
character a position stands for is the layout's business (``keymap.py``).
"""

from __future__ import annotations

from types import MappingProxyType

EV_SYN = 0x00
EV_KEY = 0x01

# Key event values.
KEY_RELEASED = 0
KEY_PRESSED = 1
KEY_REPEATED = 2

_CODES = {
    "KEY_ESC": 1, "KEY_1": 2, "KEY_2": 3, "KEY_3": 4, "KEY_4": 5, "KEY_5": 6, "KEY_6": 7,
    "KEY_7": 8, "KEY_8": 9, "KEY_9": 10, "KEY_0": 11, "KEY_MINUS": 12, "KEY_EQUAL": 13,
    "KEY_BACKSPACE": 14, "KEY_TAB": 15, "KEY_Q": 16, "KEY_W": 17, "KEY_E": 18, "KEY_R": 19,
    "KEY_T": 20, "KEY_Y": 21, "KEY_U": 22, "KEY_I": 23, "KEY_O": 24, "KEY_P": 25,
    "KEY_LEFTBRACE": 26, "KEY_RIGHTBRACE": 27, "KEY_ENTER": 28, "KEY_LEFTCTRL": 29, "KEY_A": 30,
    "KEY_S": 31, "KEY_D": 32, "KEY_F": 33, "KEY_G": 34, "KEY_H": 35, "KEY_J": 36, "KEY_K": 37,
    "KEY_L": 38, "KEY_SEMICOLON": 39, "KEY_APOSTROPHE": 40, "KEY_GRAVE": 41,
    "KEY_LEFTSHIFT": 42, "KEY_BACKSLASH": 43, "KEY_Z": 44, "KEY_X": 45, "KEY_C": 46,
    "KEY_V": 47, "KEY_B": 48, "KEY_N": 49, "KEY_M": 50, "KEY_COMMA": 51, "KEY_DOT": 52,
    "KEY_SLASH": 53, "KEY_RIGHTSHIFT": 54, "KEY_KPASTERISK": 55, "KEY_LEFTALT": 56,
    "KEY_SPACE": 57, "KEY_CAPSLOCK": 58, "KEY_NUMLOCK": 69, "KEY_KP7": 71, "KEY_KP8": 72,
    "KEY_KP9": 73, "KEY_KPMINUS": 74, "KEY_KP4": 75, "KEY_KP5": 76, "KEY_KP6": 77,
    "KEY_KPPLUS": 78, "KEY_KP1": 79, "KEY_KP2": 80, "KEY_KP3": 81, "KEY_KP0": 82,
    "KEY_KPDOT": 83, "KEY_102ND": 86, "KEY_KPENTER": 96, "KEY_RIGHTCTRL": 97,
    "KEY_KPSLASH": 98, "KEY_RIGHTALT": 100,
}
CODES: MappingProxyType[str, int] = MappingProxyType(_CODES)
NAMES: MappingProxyType[int, str] = MappingProxyType({v: k for k, v in _CODES.items()})

SHIFT_KEYS = frozenset({_CODES["KEY_LEFTSHIFT"], _CODES["KEY_RIGHTSHIFT"]})
# AltGr (right Alt) picks a third character on European layouts; Ctrl and left Alt make no
# character at all.
ALTGR_KEYS = frozenset({_CODES["KEY_RIGHTALT"]})
OTHER_MODIFIERS = frozenset({_CODES["KEY_LEFTCTRL"], _CODES["KEY_RIGHTCTRL"]})
LEFTALT = _CODES["KEY_LEFTALT"]
KEYPAD_DIGITS: MappingProxyType[int, str] = MappingProxyType(
    {_CODES[f"KEY_KP{d}"]: str(d) for d in range(10)})
ENTER_KEYS = frozenset({_CODES["KEY_ENTER"], _CODES["KEY_KPENTER"]})
CAPSLOCK = _CODES["KEY_CAPSLOCK"]
NUMLOCK = _CODES["KEY_NUMLOCK"]
