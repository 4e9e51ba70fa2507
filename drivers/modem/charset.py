"""Text in the modem's TE character set (27.007 §5.5 +CSCS) back to Python text.

Operator names (+COPS) come in the set +CSCS selects. "IRA" (ITU T.50, i.e. ASCII) and
"8859-1"/"UTF-8" arrive as text already. "UCS2" sends each UTF-16 code unit as four hex digits
(中国移动 → ``4E2D56FD79FB52A8``); "HEX" sends every byte of the MT's own set as two hex digits.
A name that cannot be decoded is kept as the modem sent it: a name never fails a probe.

Some firmware answers in UCS2 while +CSCS says IRA, or +CSCS? is refused; such a name is
decoded when it is unmistakably UCS2 hex (see ``_looks_ucs2``), never on a guess that could
turn a real name such as ``"BEEF"`` into something else.
"""

from __future__ import annotations

import string

_HEX = frozenset(string.hexdigits)
# 3GPP TS 23.038 §6.2.1 default alphabet, positions that differ from ASCII (the rest match).
_GSM_DIFFERENT = {
    0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x04: "è", 0x05: "é", 0x06: "ù", 0x07: "ì",
    0x08: "ò", 0x09: "Ç", 0x0B: "Ø", 0x0C: "ø", 0x0E: "Å", 0x0F: "å", 0x10: "Δ", 0x11: "_",
    0x12: "Φ", 0x13: "Γ", 0x14: "Λ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ", 0x18: "Σ", 0x19: "Θ",
    0x1A: "Ξ", 0x1C: "Æ", 0x1D: "æ", 0x1E: "ß", 0x1F: "É", 0x24: "¤", 0x40: "¡", 0x5B: "Ä",
    0x5C: "Ö", 0x5D: "Ñ", 0x5E: "Ü", 0x5F: "§", 0x60: "¿", 0x7B: "ä", 0x7C: "ö", 0x7D: "ñ",
    0x7E: "ü", 0x7F: "à",
}


def normalize_charset(value: str | None) -> str | None:
    """``"UCS2"``, ``"IRA"``, ``"HEX"``… from a +CSCS answer field; None if not given."""
    if value is None:
        return None
    text = "".join(value.strip().strip('"').split()).upper()
    return {"UCS-2": "UCS2", "ASCII": "IRA", "UTF8": "UTF-8"}.get(text, text) or None


def _is_hex(text: str, unit: int) -> bool:
    return len(text) >= unit and len(text) % unit == 0 and all(c in _HEX for c in text)


def decode_ucs2(text: str) -> str | None:
    """UCS2 hex (UTF-16BE code units) → text; None if it is not that."""
    if not _is_hex(text, 4):
        return None
    try:
        decoded = bytes.fromhex(text).decode("utf-16-be")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if decoded.isprintable() else None


def decode_gsm_hex(text: str) -> str | None:
    """HEX charset bytes → text: UTF-8 when valid, GSM default alphabet when 7-bit, else
    Latin-1 (the MT's own set is not named by +CSCS; these are what modules use)."""
    if not _is_hex(text, 2):
        return None
    data = bytes.fromhex(text)
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        decoded = data.decode("latin-1")
    else:
        if all(b < 0x80 for b in data):
            decoded = "".join(_GSM_DIFFERENT.get(b, chr(b)) for b in data)
    return decoded if decoded.isprintable() else None


def _looks_ucs2(text: str) -> bool:
    """Unmistakably UCS2 hex: at least two code units, each a Latin one (``00xx``) or a CJK,
    kana or Hangul one; a short all-hex word is more likely a name than an encoding."""
    if not _is_hex(text, 4) or len(text) < 8:
        return False
    units = [int(text[i:i + 4], 16) for i in range(0, len(text), 4)]
    return all(0x20 <= u <= 0xFF or 0x3040 <= u <= 0x30FF or 0x3400 <= u <= 0x9FFF
               or 0xAC00 <= u <= 0xD7AF for u in units)


def decode_text(text: str, charset: str | None, *, numeric: bool = False) -> str:
    """``text`` as the modem sent it in ``charset`` → readable text (``text`` if it cannot be).

    ``numeric``: the field is a number (MCC+MNC), which UCS2/HEX modems encode too.
    """
    charset = normalize_charset(charset)
    if numeric and text.isdigit() and len(text) <= 6:
        return text  # "46000" is digits in any set; only longer digit runs can be UCS2
    if charset == "UCS2":
        decoded = decode_ucs2(text)
    elif charset == "HEX":
        decoded = decode_gsm_hex(text)
    elif _looks_ucs2(text):
        decoded = decode_ucs2(text)
    else:
        decoded = None
    return decoded if decoded else text
