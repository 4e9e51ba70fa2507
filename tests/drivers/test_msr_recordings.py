"""Real reader output, written from the vendors' manuals into hardware-fixtures/serial/, through
the track parser: every good card reads as good, every documented error marker as that track's
error (issue 10, magnetic stripe classes). Test cards are published test numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.msr.luhn import luhn_check_digit
from posdiag.drivers.msr.tracks import ExpiryState, TrackProblem, analyse_swipe
from simulators.idtech_msr import track_lrc_char
from simulators.umockdev_script import SERIAL_DIR, load, names

TODAY = date(2026, 3, 1)
READ_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
E = TrackProblem.READER_ERROR

# recording → (readable, per track: None absent / "ok" / a problem, masked PAN)
EXPECTED: dict[str, tuple[bool, tuple[object, object, object], str | None]] = {
    "idtech-minimag-rs232/idtech-format-two-tracks": (True, ("ok", "ok", None),
                                                      "411111******1111"),
    "idtech-minimag-rs232/idtech-format-three-tracks": (True, ("ok", "ok", "ok"),
                                                        "555555******4444"),
    "idtech-minimag-rs232/idtech-format-no-separator": (True, ("ok", "ok", None),
                                                        "411111******1111"),
    "idtech-minimag-rs232/uic-format-lrc": (True, ("ok", "ok", None), "411111******1111"),
    "idtech-minimag-rs232/idtech-format-track1-error": (False, (E, "ok", None),
                                                        "411111******1111"),
    "idtech-minimag-rs232/idtech-format-country-code-59": (True, ("ok", "ok", None),
                                                           "590000******0000"),
    "magtek-mt211-rs232-revB/three-tracks": (True, ("ok", "ok", "ok"), "555555******4444"),
    "magtek-mt211-rs232-revB/track2-error": (False, ("ok", E, "ok"), "555555******4444"),
    "magtek-mt211-rs232-revB/track1-blank-track3-error": (False, (None, "ok", E),
                                                          "555555******4444"),
    "magtek-port-powered-insertion/withdrawal-good": (True, ("ok", "ok", None),
                                                      "411111******1111"),
    "magtek-port-powered-insertion/withdrawal-track1-error": (False, (E, "ok", None),
                                                              "411111******1111"),
}
PRODUCTS = ("idtech-minimag-rs232", "magtek-mt211-rs232-revB", "magtek-port-powered-insertion")


def test_every_recording_has_an_expectation_and_a_source() -> None:
    found = {n for p in PRODUCTS for n in names(p)}
    assert found == set(EXPECTED)
    for name in found:
        rec = load(name)
        assert rec.source.startswith("source:") and "manual" in rec.source.lower()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_reader_output(name: str) -> None:
    readable, tracks, masked = EXPECTED[name]
    result = analyse_swipe(load(name).device_bytes, read_at=READ_AT, today=TODAY)
    assert result.readable is readable
    for verdict, want in zip(result.tracks, tracks, strict=True):
        if want is None:
            assert not verdict.present
        elif want == "ok":
            assert verdict.present and verdict.structure_ok and verdict.lrc_ok is not False
            assert verdict.bad_field is None
        else:
            assert verdict.present and verdict.problem == want
    assert result.masked_pan == masked
    assert result.luhn_ok is True
    assert result.expiry == ExpiryState.VALID
    assert result.tracks_agree in (True, None)
    assert result.unreadable_fields == ()


def test_uic_recording_checks_the_forwarded_lrc() -> None:
    result = analyse_swipe(load("idtech-minimag-rs232/uic-format-lrc").device_bytes,
                           read_at=READ_AT, today=TODAY)
    assert result.track1.lrc_ok is True and result.track2.lrc_ok is True


def test_card_sensor_digit_is_a_flag_not_a_bad_lrc() -> None:
    result = analyse_swipe(load("magtek-port-powered-insertion/withdrawal-good").device_bytes,
                           read_at=READ_AT, today=TODAY)
    assert result.track2.lrc_ok is None
    assert result.noise_bytes == 2  # ESC before the tracks, the sensor digit after them


def test_country_code_is_not_read_as_the_expiry() -> None:
    """PAN 59…: ``=826 3012 101`` is country 826, expiry 30-12, service 101 (ISO 4909)."""
    raw = load("idtech-minimag-rs232/idtech-format-country-code-59").device_bytes
    result = analyse_swipe(raw, read_at=READ_AT, today=TODAY)
    assert result.track2.expiry == result.track1.expiry == ExpiryState.VALID
    assert result.tracks_agree is True
    # The same bytes read a year after 30-12 are expired: the expiry really is 3012.
    later = analyse_swipe(raw, read_at=READ_AT, today=date(2031, 1, 1))
    assert later.expiry == ExpiryState.EXPIRED


def test_country_code_missing_is_named() -> None:
    result = analyse_swipe(b";5900000000000000=82?\r", read_at=READ_AT, today=TODAY)
    assert result.track2.problem == TrackProblem.LAYOUT
    assert result.unreadable_fields == ("track2.country_code",)
    assert result.luhn_ok is True and result.masked_pan == "590000******0000"


def test_blank_track_sent_as_sentinels_only_is_absent() -> None:
    t2 = ";4111111111111111=30121010000000000000?"
    result = analyse_swipe(f"%?\r{t2}\r;?\r".encode(), read_at=READ_AT, today=TODAY)
    assert not result.track1.present and not result.track3.present
    assert result.readable and result.noise_bytes == 0


def test_lrc_between_back_to_back_tracks() -> None:
    t1 = "%B4111111111111111^CARDHOLDER/TEST^3012101000000000000000000?"
    t2 = ";4111111111111111=30121010000000000000?"
    raw = (t1 + track_lrc_char(t1) + t2 + track_lrc_char(t2) + "\r").encode()
    result = analyse_swipe(raw, read_at=READ_AT, today=TODAY)
    assert result.readable and result.track1.lrc_ok is True and result.track2.lrc_ok is True


# -- round trips: any published card, any documented output format, reads as good ------------

PUBLISHED = ["4111111111111111", "4012888888881881", "4242424242424242", "5555555555554444",
             "5105105105105100", "2223003122003222", "378282246310005", "371449635398431",
             "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505",
             "30569309025904", "38520000023237"]
SYNTHETIC_59 = "590000000000000" + luhn_check_digit("590000000000000")


def _tracks(pan: str, yymm: str, service: str, country: str) -> tuple[str, str, str]:
    cc = country if pan.startswith("59") else ""
    t1 = f"%B{pan}^CARDHOLDER/TEST^{cc}{yymm}{service}000000?"
    t2 = f";{pan}={cc}{yymm}{service}{'0' * max(0, 16 - len(pan))}?"
    t3 = f";01{pan}=724724100000000000030300?"
    return t1, t2, t3


def _render(style: str, tracks: list[str]) -> bytes:
    if style == "idtech":
        return "".join(t + "\r" for t in tracks).encode()
    if style == "no-separator":
        return ("".join(tracks) + "\r").encode()
    if style == "uic":
        body = "\x10".join("\x02" + t + track_lrc_char(t) for t in tracks)
        return (body + "\x03").encode()
    if style == "magtek":
        shown = [("+" + t[1:]) if i == 2 else t for i, t in enumerate(tracks)]
        return ("".join(shown) + "\r").encode()
    if style == "insertion":
        return ("\x02\x1b" + "".join(tracks[:2]) + "1\r\x03").encode()
    raise AssertionError(style)


@given(pan=st.sampled_from([*PUBLISHED, SYNTHETIC_59]),
       year=st.integers(27, 49), month=st.integers(1, 12),
       service=st.sampled_from(["101", "201", "120", "226"]),
       country=st.sampled_from(["826", "840", "156", "724"]),
       style=st.sampled_from(["idtech", "no-separator", "uic", "magtek", "insertion"]),
       with_track3=st.booleans())
def test_good_cards_read_as_good_in_every_output_format(
        pan: str, year: int, month: int, service: str, country: str, style: str,
        with_track3: bool) -> None:
    t1, t2, t3 = _tracks(pan, f"{year:02d}{month:02d}", service, country)
    tracks = [t1, t2, t3] if with_track3 and style != "insertion" else [t1, t2]
    result = analyse_swipe(_render(style, tracks), read_at=READ_AT, today=TODAY)
    assert result.readable, result
    assert result.luhn_ok is True and result.expiry == ExpiryState.VALID
    assert result.tracks_agree is True
    assert result.masked_pan == pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
    assert result.track3.present is (len(tracks) == 3)
    if style == "uic":
        assert all(t.lrc_ok is True for t in result.tracks if t.present)


def test_recordings_folder_is_where_the_loader_looks() -> None:
    assert (SERIAL_DIR / "idtech-minimag-rs232").is_dir()
