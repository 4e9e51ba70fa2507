"""ISO/IEC 7811/7813 track checks (protocols.md §3.1–3.3): raw swipe bytes in, verdicts out.

``analyse_swipe`` is the only public entry. It splits what a reader sent into tracks, checks
sentinels, character set, length, field layout and the LRC where the output format carries one,
runs Luhn and the expiry check, masks the PAN, and returns a ``SwipeResult`` that holds **no card
data**: no track text, no full PAN, no name, no service code, no discretionary data, in any field,
repr or error. The parsed values live in locals of this module and are dropped on return.

Reader output formats understood (protocols.md §2.1):
- ID TECH: ``SS data ES CR`` per track (no LRC: the reader checked it and does not forward it);
- UIC: ``STX SS data ES LRC DLE`` per track, the last ending in ETX instead of DLE;
- MagTek-compatible: ``SS data ES`` per track back to back, CR at the end;
- ``SS E ES`` for a track the reader could not read (MagTek convention, assumed for ID TECH).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from posdiag.drivers.msr.luhn import luhn_valid
from posdiag.drivers.msr.masking import mask_pan

# Bytes that end a track segment in the reader formats above: STX, ETX, DLE, LF, CR.
_SEPARATORS = re.compile(rb"[\x02\x03\x10\n\r]")
END_SENTINEL = "?"


@dataclass(frozen=True)
class _TrackSpec:
    start_sentinels: str
    separator: str
    low: int  # lowest character (its 6- or 4-bit code is 0)
    high: int
    max_len: int  # SS through ES; the ISO maxima 79/40/107 include the LRC character


_SPECS = {
    1: _TrackSpec("%", "^", 0x20, 0x5F, 78),
    2: _TrackSpec(";", "=", 0x30, 0x3F, 39),
    3: _TrackSpec(";", "=", 0x30, 0x3F, 106),
}


class ExpiryState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"  # an expiry field is there but is no YYMM date
    ABSENT = "absent"  # no expiry on this track, or the track could not be parsed


class TrackProblem(StrEnum):
    """Why ``structure_ok`` is False for a present track."""

    READER_ERROR = "reader_error"  # the reader sent SS E ES
    END_SENTINEL = "end_sentinel"
    CHARSET = "charset"
    TOO_LONG = "too_long"
    LAYOUT = "layout"  # separators or field lengths wrong for the format
    TRAILING = "trailing"  # more than one character after the end sentinel


@dataclass(frozen=True)
class TrackVerdict:
    """Health of one track. ``lrc_ok`` is None when the reader format carries no LRC;
    ``luhn_ok`` None when the track holds no PAN."""

    track: int
    present: bool
    structure_ok: bool = False
    lrc_ok: bool | None = None
    luhn_ok: bool | None = None
    expiry: ExpiryState = ExpiryState.ABSENT
    length: int = 0  # characters from SS through ES
    problem: TrackProblem | None = None

    def __post_init__(self) -> None:
        if self.track not in _SPECS:
            raise ValueError("track must be 1, 2 or 3")
        if not self.present and (self.structure_ok or self.length):
            raise ValueError("an absent track has no structure or length")
        if self.structure_ok and self.problem is not None:
            raise ValueError("a well-formed track has no problem")


@dataclass(frozen=True)
class SwipeResult:
    """The public outcome of one swipe. Card data never appears here (see module docstring)."""

    tracks: tuple[TrackVerdict, TrackVerdict, TrackVerdict]
    read_at: datetime
    masked_pan: str | None = None  # BIN + last four (track 2's PAN, else track 1's)
    luhn_ok: bool | None = None
    expiry: ExpiryState = ExpiryState.ABSENT
    tracks_agree: bool | None = None  # PAN and expiry equal on tracks 1 and 2 (None: not both)
    noise_bytes: int = 0  # bytes outside any recognised track

    def __post_init__(self) -> None:
        if tuple(t.track for t in self.tracks) != (1, 2, 3):
            raise ValueError("tracks must be the verdicts for tracks 1, 2 and 3 in order")
        if self.read_at.tzinfo is None:
            raise ValueError("read_at must be timezone-aware")
        if self.masked_pan is not None and sum(c.isdigit() for c in self.masked_pan) > 10:
            raise ValueError("a masked PAN shows at most BIN and last four")

    @property
    def track1(self) -> TrackVerdict:
        return self.tracks[0]

    @property
    def track2(self) -> TrackVerdict:
        return self.tracks[1]

    @property
    def track3(self) -> TrackVerdict:
        return self.tracks[2]

    @property
    def readable(self) -> bool:
        """At least one track, and every track read is well formed with no LRC error."""
        present = [t for t in self.tracks if t.present]
        return bool(present) and all(t.structure_ok and t.lrc_ok is not False for t in present)


@dataclass(frozen=True)
class _Fields:
    """Values parsed out of a financial track; private, never returned or printed."""

    pan: str | None = field(default=None, repr=False)
    expiry: str | None = field(default=None, repr=False)


def _expiry_state(yymm: str | None, today: date) -> ExpiryState:
    if yymm is None:
        return ExpiryState.ABSENT
    if len(yymm) != 4 or not yymm.isdigit() or not 1 <= int(yymm[2:]) <= 12:
        return ExpiryState.INVALID
    year, month = 2000 + int(yymm[:2]), int(yymm[2:])
    # A card is valid through the last day of its expiry month.
    return ExpiryState.EXPIRED if (year, month) < (today.year, today.month) else ExpiryState.VALID


def _split_optional(rest: str, width: int, separator: str) -> tuple[str | None, str] | None:
    """Take a fixed-width digit field, or the separator that stands in for it when absent."""
    if rest.startswith(separator):
        return None, rest[1:]
    value = rest[:width]
    if len(value) != width or not value.isdigit():
        return None
    return value, rest[width:]


def _layout(track: int, data: str) -> _Fields | None:
    """Field layout of tracks 1 (format B) and 2; None when it is wrong."""
    if track == 3:
        return _Fields()
    if track == 1:
        if not data or not "A" <= data[0] <= "Z":
            return None
        if data[0] != "B":
            return _Fields()  # not a financial format: nothing more to check
        parts = data[1:].split("^", 2)
        if len(parts) != 3 or not 2 <= len(parts[1]) <= 26:
            return None
        pan, rest = parts[0], parts[2]
    else:
        pan, sep, rest = data.partition("=")
        if not sep:
            return None
    if not 1 <= len(pan) <= 19 or not pan.isdigit():
        return None
    spec = _SPECS[track]
    expiry = _split_optional(rest, 4, spec.separator)
    if expiry is None:
        return None
    service = _split_optional(expiry[1], 3, spec.separator)
    if service is None:
        return None
    return _Fields(pan=pan, expiry=expiry[0])


def _lrc_ok(track: int, text: str, lrc_char: str) -> bool:
    spec = _SPECS[track]
    code = 0
    for c in text:
        code ^= ord(c) - spec.low
    return spec.low <= ord(lrc_char) <= spec.high and ord(lrc_char) - spec.low == code


def _check_track(track: int, segment: str, today: date) -> tuple[TrackVerdict, _Fields]:
    spec = _SPECS[track]
    es = segment.find(END_SENTINEL)
    if es < 0:
        return TrackVerdict(track, True, length=len(segment),
                            problem=TrackProblem.END_SENTINEL), _Fields()
    text, after = segment[: es + 1], segment[es + 1 :]
    data = text[1:-1]
    length = len(text)
    lrc_ok = _lrc_ok(track, text, after) if len(after) == 1 else None

    def bad(problem: TrackProblem) -> tuple[TrackVerdict, _Fields]:
        return TrackVerdict(track, True, lrc_ok=lrc_ok, length=length, problem=problem), _Fields()

    if data == "E":
        return bad(TrackProblem.READER_ERROR)
    if len(after) > 1:
        return bad(TrackProblem.TRAILING)
    if any(not spec.low <= ord(c) <= spec.high for c in data) or spec.start_sentinels in data:
        return bad(TrackProblem.CHARSET)
    if length > spec.max_len:
        return bad(TrackProblem.TOO_LONG)
    fields = _layout(track, data)
    if fields is None:
        return bad(TrackProblem.LAYOUT)
    verdict = TrackVerdict(
        track, True, structure_ok=True, lrc_ok=lrc_ok,
        luhn_ok=luhn_valid(fields.pan) if fields.pan else None,
        expiry=_expiry_state(fields.expiry, today) if fields.pan else ExpiryState.ABSENT,
        length=length)
    return verdict, fields


def _segments(raw: bytes | bytearray) -> tuple[dict[int, str], int]:
    """Track number → segment text (SS onwards), and the count of bytes in no track."""
    found: dict[int, str] = {}
    noise = 0
    for chunk in _SEPARATORS.split(raw):
        text = chunk.decode("latin-1")
        while text:
            start = next((i for i, c in enumerate(text) if c in "%;"), None)
            if start is None:
                noise += len(text)
                break
            noise += start  # a preamble before the start sentinel
            text = text[start:]
            es = text.find(END_SENTINEL)
            after = text[es + 1 :] if es >= 0 else ""
            if len(after) > 1 and after[0] in "%;":
                # MagTek-style output: the next track follows the end sentinel directly.
                segment, text = text[: es + 1], after
            else:
                segment, text = text, ""
            first, second = (1, 3) if segment[0] == "%" else (2, 3)
            slot = first if first not in found else second
            if slot in found:
                noise += len(segment)
                continue
            found[slot] = segment
    return found, noise


def analyse_swipe(raw: bytes | bytearray, *, read_at: datetime | None = None,
                  today: date | None = None) -> SwipeResult:
    """Verdicts for one swipe's bytes as the reader sent them. Never raises on bad input."""
    read_at = read_at or datetime.now(UTC)
    today = today or read_at.date()
    segments, noise = _segments(raw)
    verdicts: list[TrackVerdict] = []
    fields: dict[int, _Fields] = {}
    for track in (1, 2, 3):
        if track in segments:
            verdict, fields[track] = _check_track(track, segments[track], today)
        else:
            verdict = TrackVerdict(track, False)
        verdicts.append(verdict)
    source = next((t for t in (2, 1) if t in fields and fields[t].pan), None)
    pan = fields[source].pan if source else None
    t1, t2 = fields.get(1), fields.get(2)
    agree = None
    if t1 is not None and t2 is not None and t1.pan and t2.pan:
        agree = t1.pan == t2.pan and t1.expiry == t2.expiry
    return SwipeResult(
        tracks=(verdicts[0], verdicts[1], verdicts[2]),
        read_at=read_at,
        masked_pan=mask_pan(pan) if pan else None,
        luhn_ok=verdicts[source - 1].luhn_ok if source else None,
        expiry=verdicts[source - 1].expiry if source else ExpiryState.ABSENT,
        tracks_agree=agree,
        noise_bytes=noise,
    )
