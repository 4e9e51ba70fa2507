"""PAN masking for display: BIN (first six) and last four at most (PCI DSS 3.4.1, protocols §3.4).

Errors never quote the input: it may be a PAN.
"""

from __future__ import annotations

BIN_DIGITS = 6
LAST_DIGITS = 4
# Below 13 digits BIN + last four would hide too little, so only the last four are shown; below
# 8 digits (shorter than any ISO/IEC 7812 PAN) nothing is.
MIN_LEN_FOR_BIN = 13
MIN_LEN_FOR_LAST_FOUR = 8
MASK = "*"


def mask_pan(pan: str) -> str:
    """``4111111111111111`` → ``411111******1111``; shorter numbers show less (see above)."""
    if not pan or not pan.isascii() or not pan.isdigit():
        raise ValueError("a PAN is a non-empty string of ASCII digits")
    if len(pan) >= MIN_LEN_FOR_BIN:
        hidden = len(pan) - BIN_DIGITS - LAST_DIGITS
        return pan[:BIN_DIGITS] + MASK * hidden + pan[-LAST_DIGITS:]
    if len(pan) >= MIN_LEN_FOR_LAST_FOUR:
        return MASK * (len(pan) - LAST_DIGITS) + pan[-LAST_DIGITS:]
    return MASK * len(pan)
