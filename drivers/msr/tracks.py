"""ISO/IEC 7811/7813 track checks (protocols.md §3.1–3.3): raw swipe bytes in, verdicts out.

``analyse_swipe`` is the only public entry. It splits what a reader sent into tracks, checks
sentinels, character set, length, field layout and the LRC where the output format carries one,
runs Luhn and the expiry check, masks the PAN, and returns a ``SwipeResult`` that holds **no card
data**: no track text, no full PAN, no name, no service code, no discretionary data, in any field,
repr or error. The parsed values live in locals of this module and are dropped on return.

Reader output formats understood (protocols.md §2.1):
- ID TECH: ``SS data ES CR`` per track (no LRC: the reader checked it and does not forward it);
- UIC: ``STX SS data ES LRC DLE`` per track, the last ending in ETX instead of DLE;
- MagTek-compatible: ``SS data ES`` per track back to back, CR at the end, track 3 starting with
  ``+`` (MagTek's track 3 sentinel) or ``;``, and on insertion readers a card-sensor digit after
  the last track;
- ``SS E ES`` for a track the reader could not read (MagTek convention, assumed for ID TECH);
- ``SS ES`` (no data) or nothing at all for a blank track.

A trailing character after an end sentinel is an LRC where the format frames one (UIC, between
STX and DLE/ETX): there a mismatch is an LRC error. Elsewhere it is the LRC when it matches, and
otherwise a reader flag (such as MagTek's card-sensor digit), counted as noise: readers check the
LRC themselves and do not forward a bad one.

Field layout (ISO/IEC 7813, ISO 4909): a PAN beginning with 59 is followed, after the separator,
by a 3-digit country code and only then by the expiry, so the country code is never read as the
expiry. A field that cannot be read is named (``TrackVerdict.bad_field``); the fields before it
(the PAN, so Luhn and the masked number) are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from posdiag.drivers.msr.luhn import luhn_valid
from posdiag.drivers.msr.masking import mask_pan

# Bytes that end a track segment in the reader formats above: STX, ETX, DLE, LF, CR.
_SEPARATORS = re.compile(rb"([\x02\x03\x10\n\r])")
_STX, _ETX, _DLE = b"\x02", b"\x03", b"\x10"
END_SENTINEL = "?"
START_SENTINELS = "%;+"
# MagTek sends track 3's start sentinel as '+'; on the stripe it is the ISO ';' (code 0x0B).
_TRACK3_ALT_SS = "+"
# ISO/IEC 7812-1: a PAN beginning 59 carries a country code (ISO 3166 numeric) on the tracks.
_COUNTRY_CODE_PREFIX = "59"


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
# Names of the fields a track layout check can fail on (``TrackVerdict.bad_field``).
FIELDS = ("format_code", "pan", "field_separator", "name", "country_code", "expiry",
          "service_code")


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
    bad_field: str | None = None  # the field a LAYOUT problem is in (one of ``FIELDS``)

    def __post_init__(self) -> None:
        if self.track not in _SPECS:
            raise ValueError("track must be 1, 2 or 3")
        if self.bad_field is not None and (self.bad_field not in FIELDS
                                           or self.problem != TrackProblem.LAYOUT):
            raise ValueError("bad_field names a field of a track with a layout problem")
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

    @property
    def unreadable_fields(self) -> tuple[str, ...]:
        """``track2.expiry``-style names of the fields that could not be read (no values)."""
        return tuple(f"track{t.track}.{t.bad_field}" for t in self.tracks if t.bad_field)


@dataclass(frozen=True)
class _Fields:
    """Values parsed out of a financial track; private, never returned or printed.

    ``bad_field`` names the first field that could not be read; the fields before it are kept.
    """

    pan: str | None = field(default=None, repr=False)
    expiry: str | None = field(default=None, repr=False)
    bad_field: str | None = None
    expiry_present: bool = False  # an expiry field is there (readable or not)


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
    """Field layout of tracks 1 (format B) and 2 (ISO/IEC 7813); None when nothing is usable.

    A field that is wrong is named in ``bad_field``; what was read before it is kept.
    """
    if track == 3:
        return _Fields()
    if track == 1:
        if not data or not "A" <= data[0] <= "Z":
            return _Fields(bad_field="format_code")
        if data[0] != "B":
            return _Fields()  # not a financial format: nothing more to check
        parts = data[1:].split("^", 2)
        pan = parts[0]
        if not 1 <= len(pan) <= 19 or not pan.isdigit():
            return _Fields(bad_field="pan")
        if len(parts) != 3:
            return _Fields(pan=pan, bad_field="field_separator")
        if not 2 <= len(parts[1]) <= 26:
            return _Fields(pan=pan, bad_field="name")
        rest = parts[2]
    else:
        pan, sep, rest = data.partition("=")
        if not 1 <= len(pan) <= 19 or not pan.isdigit():
            return _Fields(bad_field="pan" if sep else "field_separator")
    spec = _SPECS[track]
    if pan.startswith(_COUNTRY_CODE_PREFIX):
        country, rest = rest[:3], rest[3:]
        if len(country) != 3 or not country.isdigit():
            return _Fields(pan=pan, bad_field="country_code")
    expiry = _split_optional(rest, 4, spec.separator)
    if expiry is None:
        return _Fields(pan=pan, bad_field="expiry", expiry_present=bool(rest))
    service = _split_optional(expiry[1], 3, spec.separator)
    if service is None:
        return _Fields(pan=pan, expiry=expiry[0], bad_field="service_code",
                       expiry_present=expiry[0] is not None)
    return _Fields(pan=pan, expiry=expiry[0], expiry_present=expiry[0] is not None)


def _lrc_char(track: int, text: str) -> str:
    """The ISO 7811-2 LRC character of ``SS … ES`` (XOR of the character codes, re-encoded)."""
    spec = _SPECS[track]
    code = 0
    for c in text:
        if track == 3 and c == _TRACK3_ALT_SS:
            c = spec.start_sentinels
        code ^= (ord(c) - spec.low) & 0x3F
    return chr(code + spec.low)


@dataclass(frozen=True)
class _Segment:
    """One track as the reader sent it: ``SS … [ES]``, what followed the ES, and whether the
    format frames an LRC there (UIC)."""

    text: str = field(repr=False)
    trailer: str = field(default="", repr=False)
    lrc_framed: bool = False


def _check_track(track: int, seg: _Segment, today: date) -> tuple[TrackVerdict, _Fields, int]:
    """Verdict, parsed fields, and bytes that turned out to be noise (a reader flag)."""
    spec = _SPECS[track]
    segment = seg.text
    es = segment.find(END_SENTINEL)
    if es < 0:
        return TrackVerdict(track, True, length=len(segment),
                            problem=TrackProblem.END_SENTINEL), _Fields(), 0
    text, after = segment[: es + 1], segment[es + 1 :] + seg.trailer
    data = text[1:-1]
    length = len(text)
    noise = 0
    lrc_ok: bool | None = None
    if len(after) == 1:
        if after == _lrc_char(track, text):
            lrc_ok = True
        elif seg.lrc_framed:
            lrc_ok = False
        else:
            noise = 1  # not this track's LRC: a reader flag, e.g. MagTek's card-sensor digit

    def bad(problem: TrackProblem, fields: _Fields | None = None
            ) -> tuple[TrackVerdict, _Fields, int]:
        fields = fields or _Fields()
        pan = fields.pan
        expiry = ExpiryState.ABSENT
        if pan and fields.expiry_present:
            expiry = (_expiry_state(fields.expiry, today) if fields.bad_field != "expiry"
                      else ExpiryState.INVALID)
        return TrackVerdict(track, True, lrc_ok=lrc_ok,
                            luhn_ok=luhn_valid(pan) if pan else None, expiry=expiry,
                            length=length, problem=problem, bad_field=fields.bad_field), \
            fields, noise

    if data == "E":
        return bad(TrackProblem.READER_ERROR)
    if len(after) > 1:
        return bad(TrackProblem.TRAILING)
    if any(not spec.low <= ord(c) <= spec.high for c in data) or spec.start_sentinels in data:
        return bad(TrackProblem.CHARSET)
    if length > spec.max_len:
        return bad(TrackProblem.TOO_LONG)
    fields = _layout(track, data)
    if fields is None or fields.bad_field is not None:
        return bad(TrackProblem.LAYOUT, fields)
    verdict = TrackVerdict(
        track, True, structure_ok=True, lrc_ok=lrc_ok,
        luhn_ok=luhn_valid(fields.pan) if fields.pan else None,
        expiry=_expiry_state(fields.expiry, today) if fields.pan else ExpiryState.ABSENT,
        length=length)
    return verdict, fields, noise


def _split_tracks(text: str) -> tuple[list[tuple[str, str]], int]:
    """``(SS … ES, trailer)`` pieces of one separator-free chunk, and its noise count.

    Tracks may follow each other directly (MagTek, or ID TECH with no track separator), with an
    LRC character between an ES and the next SS where the reader forwards it.
    """
    pieces: list[tuple[str, str]] = []
    noise = 0
    while text:
        start = next((i for i, c in enumerate(text) if c in START_SENTINELS), None)
        if start is None:
            noise += len(text)
            break
        noise += start  # a preamble before the start sentinel
        text = text[start:]
        es = text.find(END_SENTINEL)
        if es < 0:
            pieces.append((text, ""))
            break
        head, after = text[: es + 1], text[es + 1 :]
        track = 1 if head[0] == "%" else 3 if head[0] == _TRACK3_ALT_SS else 2
        if len(after) > 1 and after[1] in START_SENTINELS and after[0] == _lrc_char(track, head):
            pieces.append((head, after[0]))  # LRC, then the next track
            text = after[1:]
        elif len(after) > 1 and after[0] in START_SENTINELS:  # one alone is an LRC or flag
            pieces.append((head, ""))
            text = after
        elif len(after) > 1 and after[1] in START_SENTINELS:
            pieces.append((head, after[0]))  # one character (an LRC or a flag), then a track
            text = after[1:]
        else:
            pieces.append((head, after))
            break
    return pieces, noise


def _segments(raw: bytes | bytearray) -> tuple[dict[int, _Segment], int]:
    """Track number → segment, and the count of bytes in no track."""
    found: dict[int, _Segment] = {}
    noise = 0
    parts = _SEPARATORS.split(bytes(raw))
    # parts alternates chunk, separator, chunk, …: a chunk's neighbours are its separators.
    for n in range(0, len(parts), 2):
        before = parts[n - 1] if n else b""
        after_sep = parts[n + 1] if n + 1 < len(parts) else b""
        uic = before == _STX and after_sep in (_DLE, _ETX)
        pieces, chunk_noise = _split_tracks(parts[n].decode("latin-1"))
        noise += chunk_noise
        for head, trailer in pieces:
            if head[1:2] == END_SENTINEL:
                continue  # SS ES with nothing between: a blank track, as some firmware sends
            if head[0] == _TRACK3_ALT_SS:
                slot = 3
            else:
                first = 1 if head[0] == "%" else 2
                slot = first if first not in found else 3
            if slot in found:
                noise += len(head) + len(trailer)
                continue
            found[slot] = _Segment(head, trailer, uic and len(pieces) == 1)
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
            verdict, fields[track], flag_bytes = _check_track(track, segments[track], today)
            noise += flag_bytes
        else:
            verdict = TrackVerdict(track, False)
        verdicts.append(verdict)
    source = next((t for t in (2, 1) if t in fields and fields[t].pan), None)
    pan = fields[source].pan if source else None
    t1, t2 = fields.get(1), fields.get(2)
    agree = None
    if t1 is not None and t2 is not None and t1.pan and t2.pan:
        # Expiries are compared only where both tracks read theirs.
        both = all(f.bad_field in (None, "service_code") for f in (t1, t2))
        agree = t1.pan == t2.pan and (t1.expiry == t2.expiry or not both)
    return SwipeResult(
        tracks=(verdicts[0], verdicts[1], verdicts[2]),
        read_at=read_at,
        masked_pan=mask_pan(pan) if pan else None,
        luhn_ok=verdicts[source - 1].luhn_ok if source else None,
        expiry=verdicts[source - 1].expiry if source else ExpiryState.ABSENT,
        tracks_agree=agree,
        noise_bytes=noise,
    )
