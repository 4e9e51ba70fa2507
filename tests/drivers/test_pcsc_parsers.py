"""ATR (ISO 7816-3), BER-TLV and EMV FCI parsing: known answers and properties (any bytes give
a result or ProtocolError, never another exception)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.pcsc import brand_of, parse_atr, parse_tlv
from posdiag.drivers.pcsc.emv import clean_label, command, directory_entries, select_apdu


def test_t0_atr_without_tck() -> None:
    a = parse_atr(bytes.fromhex("3B6800000073C84013009000"))
    assert (a.convention, a.protocols, a.tck, a.tck_ok) == ("direct", (0,), None, None)
    assert a.byte("TB1") == 0 and a.byte("TC1") == 0 and a.historical.hex() == "0073c84013009000"


def test_t1_atr_with_interface_chain_and_good_tck() -> None:
    a = parse_atr(bytes.fromhex("3BF81300008131FE4580504F534449414727"))
    assert a.protocols == (1,) and a.tck_ok is True
    assert (a.byte("TA1"), a.byte("TD1"), a.byte("TD2"), a.byte("TA3")) == (0x13, 0x81, 0x31, 0xFE)


def test_t0_and_t1_offered() -> None:
    # TD1 says T=0, TD2 says T=1: both offered, TCK due because T=1 is indicated.
    body = bytes.fromhex("8080" "01")  # T0: TD1, K=0; TD1: TD2 follows, T=0; TD2: T=1
    tck = 0
    for b in body:
        tck ^= b
    a = parse_atr(b"\x3b" + body + bytes([tck]))
    assert a.protocols == (0, 1) and a.tck_ok is True


def test_inverse_convention() -> None:
    assert parse_atr(bytes.fromhex("3F00")).convention == "inverse"


def test_bad_tck_is_reported_not_raised() -> None:
    a = parse_atr(bytes.fromhex("3BF81300008131FE4580504F534449414726"))
    assert a.tck_ok is False


@pytest.mark.parametrize("raw", ["", "00", "3B", "3B10", "3B02AA", "3B80", "3B0011",
                                 "3B81" + "01", "3B" + "00" * 40])
def test_malformed_atrs(raw: str) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_atr(bytes.fromhex(raw))
    assert e.value.kind == "atr"


@given(st.binary(max_size=40))
def test_any_bytes_give_an_atr_or_protocol_error(raw: bytes) -> None:
    try:
        a = parse_atr(raw)
    except ProtocolError:
        return
    assert a.raw == raw and a.convention in ("direct", "inverse") and a.protocols
    assert a.tck_ok in (None, True, False)


@given(st.binary(max_size=300))
def test_any_bytes_give_tlvs_or_protocol_error(raw: bytes) -> None:
    try:
        objects = parse_tlv(raw)
    except ProtocolError:
        return
    for obj in objects:
        assert obj.tag > 0
        if obj.constructed:
            assert parse_tlv(obj.value) == obj.children


@given(st.lists(st.tuples(st.sampled_from([0x4F, 0x50, 0x87, 0x9F38, 0x5F2D]),
                          st.binary(max_size=200)), max_size=5))
def test_tlv_round_trip(items: list[tuple[int, bytes]]) -> None:
    def enc(tag: int, value: bytes) -> bytes:
        t = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
        n = len(value)
        return t + (bytes([n]) if n < 0x80 else bytes([0x81, n])) + value

    objs = parse_tlv(b"".join(enc(t, v) for t, v in items))
    assert [(o.tag, o.value) for o in objs] == items


def _tlv(tag: int, value: bytes) -> bytes:
    t = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    return t + bytes([len(value)]) + value


def test_ppse_directory_entries_sorted_by_priority() -> None:
    entries = (_tlv(0x61, _tlv(0x4F, bytes.fromhex("A0000000041010")) + _tlv(0x50, b"MC CRED")
                    + _tlv(0x87, b"\x02"))
               + _tlv(0x61, _tlv(0x4F, bytes.fromhex("A0000003330101")) + _tlv(0x50, b"UPDEBIT")
                      + _tlv(0x87, b"\x01")))
    fci = _tlv(0x6F, _tlv(0x84, b"2PAY.SYS.DDF01") + _tlv(0xA5, _tlv(0xBF0C, entries)))
    apps = directory_entries(parse_tlv(b"\x00" + fci + b"\xff\xff"), "ppse")  # with padding
    assert [a.aid for a in apps] == ["A0000003330101", "A0000000041010"]
    assert apps[1].label == "MC CRED" and apps[0].priority == 1
    assert apps[0].brand is not None and apps[0].brand.name == "UnionPay"


def test_brands() -> None:
    assert brand_of("A0000003330102").name == "UnionPay"  # type: ignore[union-attr]
    assert brand_of("a0000000031010").name == "Visa"  # type: ignore[union-attr]
    assert brand_of("A0000000041010").name == "Mastercard"  # type: ignore[union-attr]
    assert brand_of("A0000000651010").name == "JCB"  # type: ignore[union-attr]
    assert brand_of("A000000025010801").name == "American Express"  # type: ignore[union-attr]
    assert brand_of("A0000001523010").name == "Discover"  # type: ignore[union-attr]
    assert brand_of("F000000001") is None


def test_labels_never_carry_digit_runs_or_control_bytes() -> None:
    assert clean_label(b"VISA CREDIT") == "VISA CREDIT"
    assert clean_label(b"6222021234567890") is None  # looks like a card number: not shown
    assert clean_label(b"\x01\x02") is None


class _Card:
    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers[apdu]


def test_61xx_and_6cxx_handling() -> None:
    apdu = select_apdu(b"2PAY.SYS.DDF01")
    card = _Card({apdu: b"\x6c\x03", apdu[:-1] + b"\x03": b"\x61\x02",
                  bytes.fromhex("00C0000002"): b"\xaa\xbb\x90\x00"})
    assert command(card, apdu) == (b"\xaa\xbb", 0x9000)


def test_response_without_status_word() -> None:
    with pytest.raises(ProtocolError):
        command(_Card({b"\x00": b"\x90"}), b"\x00")
