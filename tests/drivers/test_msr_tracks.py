"""ISO 7811 track checks, Luhn and PAN masking (protocols.md §3), with published test cards only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.msr.luhn import luhn_check_digit, luhn_valid
from posdiag.drivers.msr.masking import mask_pan
from posdiag.drivers.msr.tracks import (
    ExpiryState,
    SwipeResult,
    TrackProblem,
    TrackVerdict,
    analyse_swipe,
)

# protocols.md §3.5: published test numbers, all Luhn-valid.
TEST_CARDS = [
    "4111111111111111", "4012888888881881", "4242424242424242", "5555555555554444",
    "5105105105105100", "2223003122003222", "378282246310005", "371449635398431",
    "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505",
    "30569309025904", "38520000023237", "4000000000000002",
]
BROKEN_CHECK_DIGIT = "4111111111111112"
NAME = "CARDHOLDER/TEST"
TODAY = date(2025, 6, 15)
READ_AT = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
# The worked values of protocols.md §3.2.
T1_EXAMPLE = "%B4111111111111111^CARDHOLDER/TEST^2512101000000000000000000?"
T2_EXAMPLE = ";4111111111111111=25121010000000000000?"


def track1(pan: str, yymm: str = "2712", name: str = NAME, service: str = "101") -> str:
    return f"%B{pan}^{name}^{yymm}{service}0000000000000?"


def track2(pan: str, yymm: str = "2712", service: str = "101") -> str:
    return f";{pan}={yymm}{service}{'1' * (14 - len(pan) + 5)}?"


def idtech(*tracks: str) -> bytes:
    return b"".join(t.encode() + b"\r" for t in tracks)


def uic(*tracks: tuple[str, str]) -> bytes:
    parts = [b"\x02" + (t + lrc).encode("latin-1") for t, lrc in tracks]
    return b"\x10".join(parts) + b"\x03"


def analyse(raw: bytes) -> SwipeResult:
    return analyse_swipe(raw, read_at=READ_AT, today=TODAY)


# -- Luhn -------------------------------------------------------------------------------------

@pytest.mark.parametrize("pan", TEST_CARDS)
def test_published_test_cards_pass_luhn(pan: str) -> None:
    assert luhn_valid(pan)
    assert luhn_check_digit(pan[:-1]) == pan[-1]


def test_broken_check_digit_fails_luhn() -> None:
    assert not luhn_valid(BROKEN_CHECK_DIGIT)


@pytest.mark.parametrize("bad", ["", "4111 1111", "41111x", "٤١١١"])
def test_luhn_rejects_non_digits_without_quoting_them(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        luhn_valid(bad)
    assert not bad or bad not in str(err.value)


@given(st.text(alphabet="0123456789", min_size=1, max_size=25), st.data())
def test_luhn_check_digit_and_single_digit_errors(partial: str, data: st.DataObject) -> None:
    number = partial + luhn_check_digit(partial)
    assert luhn_valid(number)
    i = data.draw(st.integers(0, len(number) - 1))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != number[i]]))
    assert not luhn_valid(number[:i] + other + number[i + 1 :])  # Luhn catches every one


# -- masking ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("pan", "masked"), [
    ("4111111111111111", "411111******1111"),
    ("378282246310005", "378282*****0005"),
    ("30569309025904", "305693****5904"),
    ("123456789012", "********9012"),
    ("12345678", "****5678"),
    ("1234567", "*******"),
])
def test_mask_pan(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


def test_mask_pan_rejects_non_digits_without_quoting_them() -> None:
    with pytest.raises(ValueError) as err:
        mask_pan("4111-1111-1111-1111")
    assert "4111" not in str(err.value)


@given(st.text(alphabet="0123456789", min_size=1, max_size=19))
def test_mask_never_shows_more_than_bin_and_last_four(pan: str) -> None:
    masked = mask_pan(pan)
    shown = [c for c in masked if c != "*"]
    assert len(masked) == len(pan)
    assert len(shown) <= 10 and len(shown) <= max(len(pan) - 3, 0)
    assert all(m in ("*", p) for m, p in zip(masked, pan, strict=True))


# -- track analysis ---------------------------------------------------------------------------

def test_worked_lrc_values_in_uic_format() -> None:
    result = analyse(uic((T1_EXAMPLE, "\\"), (T2_EXAMPLE, "8")))
    assert result.track1.lrc_ok is True and result.track2.lrc_ok is True
    assert result.track1.structure_ok and result.track2.structure_ok
    assert result.readable


def test_wrong_lrc_character_is_reported_per_track() -> None:
    result = analyse(uic((T1_EXAMPLE, "\\"), (T2_EXAMPLE, "9")))
    assert result.track1.lrc_ok is True
    assert result.track2.lrc_ok is False and result.track2.structure_ok
    assert not result.readable


def test_good_idtech_swipe() -> None:
    pan = "4111111111111111"
    result = analyse(idtech(track1(pan), track2(pan)))
    assert result.masked_pan == "411111******1111"
    assert result.luhn_ok is True and result.expiry == ExpiryState.VALID
    assert result.tracks_agree is True and result.readable and result.noise_bytes == 0
    t1, t2, t3 = result.tracks
    assert (t1.present, t1.structure_ok, t1.lrc_ok, t1.luhn_ok) == (True, True, None, True)
    assert t2 == TrackVerdict(2, True, True, None, True, ExpiryState.VALID, len(track2(pan)))
    assert t3 == TrackVerdict(3, False)
    assert result.read_at == READ_AT


def test_expiry_states() -> None:
    pan = "5555555555554444"
    assert analyse(idtech(track2(pan, "2506"))).expiry == ExpiryState.VALID  # through June
    assert analyse(idtech(track2(pan, "2505"))).expiry == ExpiryState.EXPIRED
    assert analyse(idtech(track2(pan, "2513"))).expiry == ExpiryState.INVALID
    # Expiry and service code replaced by separators (absent), ISO/IEC 7813.
    absent = analyse(idtech(f";{pan}===?"))
    assert absent.expiry == ExpiryState.ABSENT and absent.track2.structure_ok


def test_broken_check_digit_is_reported() -> None:
    result = analyse(idtech(track2(BROKEN_CHECK_DIGIT)))
    assert result.luhn_ok is False and result.track2.structure_ok
    assert result.masked_pan == "411111******1112"


def test_track2_preferred_and_disagreement_flagged() -> None:
    result = analyse(idtech(track1("4111111111111111"), track2("4242424242424242")))
    assert result.masked_pan == "424242******4242"
    assert result.tracks_agree is False


def test_reader_error_marker() -> None:
    result = analyse(b"%E?\r;E?\r")
    assert result.track1.problem == result.track2.problem == TrackProblem.READER_ERROR
    assert result.track1.present and not result.track1.structure_ok
    assert result.masked_pan is None and not result.readable


# (raw, track, problem, field that could not be read, Luhn of the PAN read before it)
@pytest.mark.parametrize(("raw", "track", "problem", "bad_field", "luhn"), [
    (b";4111111111111111=2712101\r", 2, TrackProblem.END_SENTINEL, None, None),
    (b"%B4111111111111111^cardholder/test^2712101?\r", 1, TrackProblem.CHARSET, None, None),
    (b";4111111111111111=27121011111111111111111111?\r", 2, TrackProblem.TOO_LONG, None, None),
    (b";41111111111111112712101?\r", 2, TrackProblem.LAYOUT, "field_separator", None),
    (b";41111111111111111111=2712101?\r", 2, TrackProblem.LAYOUT, "pan", None),  # 20 digits
    (b";4111111111111111=27AB?\r", 2, TrackProblem.CHARSET, None, None),
    (b";4111111111111111=27?\r", 2, TrackProblem.LAYOUT, "expiry", True),  # cut short
    (b";4111111111111111=2712?\r", 2, TrackProblem.LAYOUT, "service_code", True),
    (b"%B4111111111111111^X^2712101?\r", 1, TrackProblem.LAYOUT, "name", True),  # too short
    (b"%B4111111111111111^CARDHOLDER/TEST\r", 1, TrackProblem.END_SENTINEL, None, None),
    (b"%B4111111111111111^CARDHOLDER/TEST?\r", 1, TrackProblem.LAYOUT, "field_separator",
     True),
    (b"%B41111111111A1111^CARDHOLDER/TEST^2712101?\r", 1, TrackProblem.LAYOUT, "pan", None),
    (b"%1234?\r", 1, TrackProblem.LAYOUT, "format_code", None),  # must be a letter
    (b";4111111111111111=2712101?12\r", 2, TrackProblem.TRAILING, None, None),
    (b";41111;11111=2712101?\r", 2, TrackProblem.CHARSET, None, None),  # SS inside the data
])
def test_structure_problems(raw: bytes, track: int, problem: TrackProblem,
                            bad_field: str | None, luhn: bool | None) -> None:
    result = analyse(raw)
    verdict = result.tracks[track - 1]
    assert verdict.present and not verdict.structure_ok
    assert verdict.problem == problem
    assert verdict.bad_field == bad_field
    assert verdict.luhn_ok is luhn
    assert result.unreadable_fields == ((f"track{track}.{bad_field}",) if bad_field else ())
    # What was read before the bad field is kept: the masked PAN (never the PAN itself).
    assert (result.masked_pan == "411111******1111") is (luhn is True)
    assert not result.readable


def test_non_financial_track1_format_is_structurally_fine() -> None:
    result = analyse(b"%AHELLO WORLD?\r")
    assert result.track1.structure_ok and result.track1.luhn_ok is None
    assert result.masked_pan is None


def test_track3_and_magtek_style_back_to_back_tracks() -> None:
    pan = "6011111111111117"
    result = analyse((track1(pan) + track2(pan) + ";0123456789?").encode() + b"\r")
    assert all(t.present and t.structure_ok for t in result.tracks)
    assert result.tracks_agree is True


def test_preamble_and_surplus_tracks_count_as_noise() -> None:
    result = analyse(b"PRE" + idtech(track2("4111111111111111"), ";1?", ";2?"))
    assert result.noise_bytes == 3 + 3  # preamble, and a fourth track that has no slot
    assert result.track3.present


def test_empty_swipe() -> None:
    result = analyse(b"")
    assert not any(t.present for t in result.tracks)
    assert not result.readable and result.masked_pan is None and result.luhn_ok is None


def test_result_validation() -> None:
    absent = tuple(TrackVerdict(n, False) for n in (1, 2, 3))
    with pytest.raises(ValueError):
        SwipeResult(absent, read_at=datetime(2025, 1, 1))  # naive time  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SwipeResult(absent, read_at=READ_AT, masked_pan="4111111111111111")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TrackVerdict(4, False)
    with pytest.raises(ValueError):
        TrackVerdict(1, False, structure_ok=True)


track_alphabet = st.sampled_from([*"%;?=^B0123456789E/ ", "\r", "\x02", "\x03", "\x10"])


@given(st.one_of(st.binary(max_size=300),
                 st.text(track_alphabet, max_size=200).map(lambda s: s.encode("latin-1"))))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = analyse(raw)
    assert isinstance(result, SwipeResult)
    if result.masked_pan is not None:
        assert sum(c.isdigit() for c in result.masked_pan) <= 10


# -- card data stays inside -----------------------------------------------------------------

def _public_text(result: SwipeResult) -> str:
    """Everything a caller can see: repr, str and every field value, recursively."""
    parts = [repr(result), str(result)]
    for value in dataclasses.astuple(result):
        parts.append(repr(value))
        parts.append(str(value))
    for name in ("track1", "track2", "track3", "readable"):
        parts.append(repr(getattr(result, name)))
    return "\n".join(parts)


@pytest.mark.parametrize("pan", TEST_CARDS)
def test_no_card_data_in_results(pan: str) -> None:
    t1, t2 = track1(pan, service="201"), track2(pan, service="201")
    for raw in (idtech(t1, t2), uic((t1, "0"), (t2, "0"))):
        text = _public_text(analyse(raw))
        for secret in (pan, NAME, "CARDHOLDER", t1, t2, t1[1:-1], t2[1:-1],
                       t2[t2.index("=") :]):
            assert secret not in text
