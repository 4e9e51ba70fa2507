"""Key presses a keyboard-wedge card reader sends for a text, as an evemu ``.events`` script.

umockdev (``umockdev-run -e /dev/input/eventN=FILE``) replays such a script on the mocked
event node, so the production evdev reader reads real ``struct input_event`` records. The
character → key tables here are written from the keyboard layouts themselves (US, German
QWERTZ, French AZERTY; xkeyboard-config symbols ``us``, ``de``, ``fr``), in the direction a
reader uses them, independently of the driver's decoding tables. Key names become numbers
through ``posdiag.drivers.hid.keycodes``, which a test checks against the kernel's header.

umockdev 0.17 accepts only ``E:`` lines and comments in an events file (it warns about and
ignores evemu's ``N:``/``I:`` header lines), so the device is described in comments.
"""

from __future__ import annotations

from posdiag.drivers.hid.keycodes import CODES

Stroke = tuple[str, ...]  # key names pressed together; the last one is the character key


def _us() -> dict[str, Stroke]:
    keys: dict[str, Stroke] = {" ": ("KEY_SPACE",), "\r": ("KEY_ENTER",)}
    for c in "abcdefghijklmnopqrstuvwxyz":
        keys[c] = (f"KEY_{c.upper()}",)
        keys[c.upper()] = ("KEY_LEFTSHIFT", f"KEY_{c.upper()}")
    for digit, shifted in zip("1234567890", "!@#$%^&*()", strict=True):
        keys[digit] = (f"KEY_{digit}",)
        keys[shifted] = ("KEY_LEFTSHIFT", f"KEY_{digit}")
    for plain, shifted, name in (("-", "_", "MINUS"), ("=", "+", "EQUAL"),
                                 ("[", "{", "LEFTBRACE"), ("]", "}", "RIGHTBRACE"),
                                 (";", ":", "SEMICOLON"), ("'", '"', "APOSTROPHE"),
                                 ("`", "~", "GRAVE"), ("\\", "|", "BACKSLASH"),
                                 (",", "<", "COMMA"), (".", ">", "DOT"), ("/", "?", "SLASH")):
        keys[plain] = (f"KEY_{name}",)
        keys[shifted] = ("KEY_LEFTSHIFT", f"KEY_{name}")
    return keys


def _de() -> dict[str, Stroke]:
    keys = {k: v for k, v in _us().items() if k.isalnum() or k in " \r"}
    for c, name in (("y", "KEY_Z"), ("z", "KEY_Y")):
        keys[c], keys[c.upper()] = (name,), ("KEY_LEFTSHIFT", name)
    shift = "KEY_LEFTSHIFT"
    keys.update({
        "!": (shift, "KEY_1"), '"': (shift, "KEY_2"), "$": (shift, "KEY_4"),
        "%": (shift, "KEY_5"), "&": (shift, "KEY_6"), "/": (shift, "KEY_7"),
        "(": (shift, "KEY_8"), ")": (shift, "KEY_9"), "=": (shift, "KEY_0"),
        "?": (shift, "KEY_MINUS"), "+": ("KEY_RIGHTBRACE",), "*": (shift, "KEY_RIGHTBRACE"),
        "#": ("KEY_BACKSLASH",), "'": (shift, "KEY_BACKSLASH"), ",": ("KEY_COMMA",),
        ";": (shift, "KEY_COMMA"), ".": ("KEY_DOT",), ":": (shift, "KEY_DOT"),
        "-": ("KEY_SLASH",), "_": (shift, "KEY_SLASH"), "<": ("KEY_102ND",),
        ">": (shift, "KEY_102ND"),
        "^": ("KEY_GRAVE", "+", "KEY_SPACE"),  # dead key, then space for the bare accent
    })
    return keys


def _fr() -> dict[str, Stroke]:
    keys = {k: v for k, v in _us().items() if k.isalpha() or k in " \r"}
    shift = "KEY_LEFTSHIFT"
    for c, name in (("a", "KEY_Q"), ("q", "KEY_A"), ("z", "KEY_W"), ("w", "KEY_Z"),
                    ("m", "KEY_SEMICOLON")):
        keys[c], keys[c.upper()] = (name,), (shift, name)
    for digit in "1234567890":
        keys[digit] = (shift, f"KEY_{digit}")
    keys.update({
        "&": ("KEY_1",), '"': ("KEY_3",), "'": ("KEY_4",), "(": ("KEY_5",), "-": ("KEY_6",),
        "_": ("KEY_8",), ")": ("KEY_MINUS",), "=": ("KEY_EQUAL",), "+": (shift, "KEY_EQUAL"),
        "$": ("KEY_RIGHTBRACE",), "%": (shift, "KEY_APOSTROPHE"), "*": ("KEY_BACKSLASH",),
        ",": ("KEY_M",), "?": (shift, "KEY_M"), ";": ("KEY_COMMA",), ".": (shift, "KEY_COMMA"),
        ":": ("KEY_DOT",), "/": (shift, "KEY_DOT"), "!": ("KEY_SLASH",), "<": ("KEY_102ND",),
        ">": (shift, "KEY_102ND"),
        "^": ("KEY_LEFTBRACE", "+", "KEY_SPACE"),
    })
    return keys


LAYOUTS = {"us": _us(), "de": _de(), "fr": _fr()}


def key_events(text: str, layout: str = "us", *, alt_ascii: bool = False) -> list[tuple[int, int]]:
    """(code, value) EV_KEY events a reader set to ``layout`` sends to type ``text``."""
    out: list[tuple[int, int]] = []

    def tap(*names: str) -> None:
        for name in names:
            out.append((CODES[name], 1))
        for name in reversed(names):
            out.append((CODES[name], 0))

    for char in text:
        if alt_ascii and char != "\r":
            out.append((CODES["KEY_LEFTALT"], 1))
            for digit in str(ord(char)):
                tap(f"KEY_KP{digit}")
            out.append((CODES["KEY_LEFTALT"], 0))
            continue
        stroke = LAYOUTS[layout][char]
        if "+" in stroke:  # a dead key, then the key that completes it
            cut = stroke.index("+")
            tap(*stroke[:cut])
            tap(*stroke[cut + 1:])
        else:
            tap(*stroke)
    return out


def events_script(text: str, layout: str = "us", *, alt_ascii: bool = False,
                  start_s: float = 0.2, key_interval_s: float = 0.002,
                  comment: str = "") -> str:
    """An evemu events file typing ``text``: each key event followed by its SYN_REPORT."""
    lines = ["# EVEMU 1.3"]
    lines += [f"# {line}" for line in comment.splitlines()]
    for i, (code, value) in enumerate(key_events(text, layout, alt_ascii=alt_ascii)):
        seconds, micros = divmod(round((start_s + i * key_interval_s) * 1e6), 1_000_000)
        stamp = f"{seconds}.{micros:06d}"
        lines.append(f"E: {stamp} 0001 {code:04x} {value}")
        lines.append(f"E: {stamp} 0000 0000 0")
    return "\n".join(lines) + "\n"
