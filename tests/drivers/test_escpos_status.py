"""ESC/POS DLE EOT n status decoding (protocols.md §5.1), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.escpos.status import (
    ErrorCauseByte,
    OfflineCauseByte,
    PaperSensorByte,
    PrinterByte,
    PrinterStatus,
    StatusKind,
    check_fixed_bits,
    decode,
    request,
)

VALID = [b for b in range(256) if b & 0x81 == 0 and b & 0x12 == 0x12]  # python-escpos' test


def test_requests_are_dle_eot_n() -> None:
    assert [request(n) for n in StatusKind] == [b"\x10\x04\x01", b"\x10\x04\x02",
                                                b"\x10\x04\x03", b"\x10\x04\x04"]


def test_sixteen_bytes_match_the_fixed_pattern() -> None:
    assert len(VALID) == 16
    assert all(f"{b:08b}"[0] == "0" and f"{b:08b}"[3] == "1" and f"{b:08b}"[6:] == "10"
               for b in VALID)


@pytest.mark.parametrize("kind", list(StatusKind))
def test_fixed_bits_are_checked_for_every_byte(kind: StatusKind) -> None:
    accepted = []
    for value in range(256):
        try:
            accepted.append(decode(kind, bytes([value])).raw)
        except ProtocolError as exc:
            assert exc.kind == "framing"
    assert accepted == VALID


@pytest.mark.parametrize("reply", [b"", b"\x12\x12", b"\x12\x12\x12"])
def test_reply_must_be_one_byte(reply: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(1, reply)
    assert info.value.kind == "framing"


def test_a_gs_r_or_auto_status_back_byte_is_not_a_dle_eot_reply() -> None:
    # GS r has bit4 = 0; ASB blocks start with 0xx1xx00 (protocols.md §5.2).
    for value in (0x00, 0x03, 0x0C, 0x10, 0x14):
        with pytest.raises(ProtocolError):
            check_fixed_bits(1, value)


def test_values_outside_a_byte_are_refused() -> None:
    with pytest.raises(ProtocolError):
        PrinterByte(0x112)
    with pytest.raises(ProtocolError):
        PaperSensorByte(-1)


# protocols.md §5.1 "typical replies"
def test_printer_status_n1() -> None:
    assert not PrinterByte(0x12).offline and not PrinterByte(0x12).drawer_pin_high
    assert PrinterByte(0x16).drawer_pin_high and not PrinterByte(0x16).offline
    assert PrinterByte(0x1A).offline
    assert PrinterByte(0x32).waiting_for_recovery  # TM-T88 class bit 5
    assert PrinterByte(0x52).feed_button  # TM-T88 class bit 6


@pytest.mark.parametrize(("value", "cover", "feed", "paper_end", "error"), [
    (0x12, False, False, False, False),
    (0x16, True, False, False, False),
    (0x1A, False, True, False, False),
    (0x32, False, False, True, False),
    (0x72, False, False, True, True),
    (0x52, False, False, False, True),
])
def test_offline_cause_n2(value: int, cover: bool, feed: bool, paper_end: bool,
                          error: bool) -> None:
    cause = OfflineCauseByte(value)
    assert (cause.cover_open, cause.feed_button, cause.paper_end_stop, cause.error) == (
        cover, feed, paper_end, error)


@pytest.mark.parametrize(("value", "mechanical", "cutter", "unrecoverable", "auto"), [
    (0x12, False, False, False, False),
    (0x16, True, False, False, False),
    (0x1A, False, True, False, False),
    (0x32, False, False, True, False),
    (0x52, False, False, False, True),
])
def test_error_cause_n3(value: int, mechanical: bool, cutter: bool, unrecoverable: bool,
                        auto: bool) -> None:
    cause = ErrorCauseByte(value)
    assert (cause.mechanical_error, cause.cutter_error, cause.unrecoverable_error,
            cause.auto_recoverable_error) == (mechanical, cutter, unrecoverable, auto)


@pytest.mark.parametrize(("value", "near_end", "paper_end"), [
    (0x12, False, False),  # paper OK
    (0x1E, True, False),   # Epson near end (bits 2+3)
    (0x72, False, True),   # Epson no paper (bits 5+6)
    (0x7E, True, True),    # near end and no paper
    (0x16, True, False),   # Citizen: near-end sensor 1 alone
    (0x1A, True, False),   # Citizen: near-end sensor 2 alone
    (0x32, False, True),   # Citizen: paper-end bit alone
    (0x52, False, False),  # Citizen: presenter sensor only, paper is there
])
def test_paper_sensor_n4(value: int, near_end: bool, paper_end: bool) -> None:
    sensor = PaperSensorByte(value)
    assert (sensor.near_end, sensor.paper_end) == (near_end, paper_end)


def test_python_escpos_masks() -> None:
    # constants.py: ONLINE 0x12, OFFLINE 0x1A, PAPER 0x12, LOWPAPER 0x1E, NOPAPER 0x72
    assert not PrinterByte(18).offline and PrinterByte(26).offline
    assert (PaperSensorByte(18).near_end, PaperSensorByte(18).paper_end) == (False, False)
    assert PaperSensorByte(30).near_end and PaperSensorByte(114).paper_end


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\x12\x12\x12\x12", set()),
    (b"\x1a\x32\x12\x72", {"paper_end", "offline"}),
    (b"\x12\x12\x12\x1e", {"paper_near_end"}),
    (b"\x1a\x16\x12\x12", {"cover_open", "offline"}),
    (b"\x1a\x52\x1a\x12", {"cutter_error", "error", "offline"}),
    (b"\x1a\x52\x32\x12", {"unrecoverable_error", "error", "offline"}),
    (b"\x1a\x52\x52\x12", {"auto_recoverable_error", "error", "offline"}),
    (b"\x1a\x1a\x12\x12", {"feed_button", "offline"}),
    (b"\x16\x12\x12\x12", {"drawer_pin_high"}),
    (b"\x1a\x32\x12\x12", {"paper_end", "offline"}),  # paper-end stop without n=4 bits
])
def test_printer_status_summary(raw: bytes, expected: set[str]) -> None:
    status = PrinterStatus.from_replies(raw)
    flags = {"paper_end", "paper_near_end", "cover_open", "cutter_error", "unrecoverable_error",
             "auto_recoverable_error", "mechanical_error", "error", "feed_button",
             "drawer_pin_high"}
    found = {flag for flag in flags if getattr(status, flag)}
    if not status.online:
        found.add("offline")
    assert found == expected
    assert status.raw == raw


def test_printer_status_needs_four_replies_of_the_right_kind() -> None:
    with pytest.raises(ProtocolError):
        PrinterStatus.from_replies(b"\x12\x12\x12")
    with pytest.raises(ProtocolError):
        PrinterStatus.from_replies(b"\x12\x12\x93\x12")
    with pytest.raises(TypeError):
        PrinterStatus(PrinterByte(0x12), PrinterByte(0x12),  # type: ignore[arg-type]
                      ErrorCauseByte(0x12), PaperSensorByte(0x12))


@given(kind=st.sampled_from(list(StatusKind)), reply=st.binary(max_size=4))
def test_any_reply_decodes_or_is_a_framing_error(kind: StatusKind, reply: bytes) -> None:
    try:
        decoded = decode(kind, reply)
    except ProtocolError as exc:
        assert exc.kind == "framing"
        assert len(reply) != 1 or reply[0] not in VALID
    else:
        assert len(reply) == 1 and reply[0] in VALID and decoded.raw == reply[0]


@given(raw=st.binary(min_size=0, max_size=6))
def test_any_four_bytes_give_a_status_or_a_framing_error(raw: bytes) -> None:
    try:
        status = PrinterStatus.from_replies(raw)
    except ProtocolError as exc:
        assert exc.kind == "framing"
    else:
        assert status.raw == raw


@given(value=st.sampled_from(VALID))
def test_decoded_flags_follow_the_bits(value: int) -> None:
    assert PrinterByte(value).offline == bool(value & 0x08)
    assert OfflineCauseByte(value).cover_open == bool(value & 0x04)
    assert ErrorCauseByte(value).cutter_error == bool(value & 0x08)
    assert PaperSensorByte(value).paper_end == bool(value & 0x20)
