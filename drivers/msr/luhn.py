"""Luhn check digit (ISO/IEC 7812-1; protocols.md §3.3).

Errors never quote the number: it may be a PAN.
"""

from __future__ import annotations


def _digits(number: str) -> list[int]:
    if not number or not number.isascii() or not number.isdigit():
        raise ValueError("Luhn needs a non-empty string of ASCII digits")
    return [ord(c) - 0x30 for c in number]


def _weighted_sum(digits: list[int], *, double_first: bool) -> int:
    """Sum from the right, doubling every second digit (the rightmost when ``double_first``)."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        if (i % 2 == 0) == double_first:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def luhn_valid(number: str) -> bool:
    """True when the last digit is the correct Luhn check digit of the rest."""
    return _weighted_sum(_digits(number), double_first=False) % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit to append to ``partial`` so that the whole passes ``luhn_valid``."""
    return str((10 - _weighted_sum(_digits(partial), double_first=True) % 10) % 10)
