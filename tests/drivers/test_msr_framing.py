"""ID TECH setup-command framing: the frames of protocols.md §2.1 literally, and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.msr.framing import (
    ACK,
    ETX,
    NAK,
    STX,
    Reply,
    Setting,
    encode_read,
    encode_set,
    frame,
    lrc,
    parse_reply,
    parse_settings,
    reply_ready,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_lrc_includes_stx_as_in_the_manual_example() -> None:
    assert lrc(h("02 53 58 01 31 03")) == 0x3A
    assert lrc(h("53 58 01 31 03")) == 0x38  # without STX it would not match the manual


@pytest.mark.parametrize(("encoded", "wire"), [
    (encode_read(0x1F), "02 52 1F 03 4C"),  # review settings
    (encode_set([Setting(0x18)]), "02 53 18 03 4A"),  # change to defaults: no Len, no data
    (encode_set([Setting(0x1A, b"1")]), "02 53 1A 01 31 03 78"),  # MSR reading enable
    (encode_set([Setting(0x58, b"1")]), "02 53 58 01 31 03 3A"),  # the manual's DUKPT example
    (encode_read(0x22), "02 52 22 03 71"),  # firmware version (hobby script's bytes)
])
def test_documented_frames(encoded: bytes, wire: str) -> None:
    assert encoded == h(wire)


def test_chained_set_blocks() -> None:
    wire = encode_set([Setting(0x11, b"0"), Setting(0x1A, b"1")])
    assert wire[:-1] == h("02 53 11 01 30 1A 01 31 03")
    assert wire[-1] == lrc(wire[:-1])


def test_set_needs_a_function_and_settings_validate() -> None:
    with pytest.raises(ValueError):
        encode_set([])
    with pytest.raises(ValueError):
        Setting(0x100)
    with pytest.raises(ValueError):
        Setting(0x11, bytes(256))
    with pytest.raises(ValueError):
        encode_read(-1)


def test_ack_and_nak_replies() -> None:
    assert parse_reply(bytes([ACK]), expect_body=False) == Reply(None)
    with pytest.raises(ProtocolError) as err:
        parse_reply(bytes([NAK]), expect_body=False)
    assert err.value.kind == "nak"
    with pytest.raises(ProtocolError) as err:
        parse_reply(bytes([NAK]), expect_body=True)
    assert err.value.kind == "nak"


def test_read_reply_with_body() -> None:
    body = b"ID TECH iMag Swipe Reader 1.0.0"
    assert parse_reply(bytes([ACK]) + frame(body), expect_body=True) == Reply(body)


def test_noise_before_the_ack_is_skipped() -> None:
    assert parse_reply(b"\x00\xff?" + bytes([ACK]) + frame(b"x"), expect_body=True).body == b"x"


def test_body_containing_etx_bytes() -> None:
    body = bytes([0x90, 0x03, 0x41, 0x42, 0x43, 0x1A, 0x01, 0x31])  # a Len of 3
    wire = bytes([ACK]) + frame(body)
    assert reply_ready(wire, expect_body=True)
    assert parse_reply(wire, expect_body=True).body == body


def test_bad_lrc_is_checksum_error() -> None:
    wire = bytearray(bytes([ACK]) + frame(b"\x1a\x011"))
    wire[-1] ^= 0xFF
    with pytest.raises(ProtocolError) as err:
        parse_reply(bytes(wire), expect_body=True)
    assert err.value.kind == "checksum"


@pytest.mark.parametrize("wire", [
    b"",  # nothing
    b"%B4",  # no ACK or NAK at all
    bytes([ACK]),  # ACK but the data frame is missing
    bytes([ACK, STX]) + b"abc",  # no ETX
])
def test_incomplete_replies_are_framing_errors(wire: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_reply(wire, expect_body=True)
    assert err.value.kind == "framing"


def test_error_messages_do_not_quote_received_bytes() -> None:
    noise = b";4111111111111111=30121010000000000000?"
    with pytest.raises(ProtocolError) as err:
        parse_reply(noise, expect_body=True)
    assert "4111" not in str(err.value)


def test_reply_ready() -> None:
    assert not reply_ready(b"", expect_body=False)
    assert reply_ready(bytes([ACK]), expect_body=False)
    assert reply_ready(bytes([NAK]), expect_body=True)
    assert not reply_ready(bytes([ACK]), expect_body=True)
    assert not reply_ready(bytes([ACK, STX, 0x41, ETX]), expect_body=True)  # LRC not yet here
    assert reply_ready(bytes([ACK]) + frame(b"A"), expect_body=True)


def test_parse_settings() -> None:
    body = h("11 01 32 1A 01 31 47 01 11")
    assert parse_settings(body) == (
        Setting(0x11, b"2"), Setting(0x1A, b"1"), Setting(0x47, b"\x11"))
    assert parse_settings(b"") == ()


@pytest.mark.parametrize("body", ["11", "11 02 32"])
def test_truncated_settings_are_framing_errors(body: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_settings(h(body))
    assert err.value.kind == "framing"


# -- properties -------------------------------------------------------------------------------

@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_replies_only_raise_protocol_error(data: bytes, expect_body: bool) -> None:
    ready = reply_ready(data, expect_body=expect_body)
    try:
        reply = parse_reply(data, expect_body=expect_body)
    except ProtocolError as exc:
        assert exc.kind in ("nak", "checksum", "framing")
    else:
        assert ready  # nothing parses that reply_ready called incomplete
        assert (reply.body is None) == (not expect_body)


@given(st.binary(max_size=200))
def test_body_round_trip(body: bytes) -> None:
    wire = bytes([ACK]) + frame(body)
    assert reply_ready(wire, expect_body=True)
    assert parse_reply(wire, expect_body=True).body == body


settings_blocks = st.lists(st.builds(Setting, st.integers(0, 255), st.binary(min_size=1,
                                                                             max_size=9)),
                           max_size=12)


@given(settings_blocks)
def test_settings_round_trip(settings: list[Setting]) -> None:
    body = b"".join(s.encode() for s in settings)
    assert parse_settings(body) == tuple(settings)
    assert parse_reply(bytes([ACK]) + frame(body), expect_body=True).body == body


@given(st.binary(max_size=100))
def test_arbitrary_settings_bodies_only_raise_protocol_error(body: bytes) -> None:
    try:
        parse_settings(body)
    except ProtocolError as exc:
        assert exc.kind == "framing"


@given(st.integers(0, 255), st.binary(min_size=1, max_size=20))
def test_set_frames_check_out(func_id: int, data: bytes) -> None:
    wire = encode_set([Setting(func_id, data)])
    assert wire[0] == STX and wire[-2] == ETX and lrc(wire) == 0
