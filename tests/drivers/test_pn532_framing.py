"""PN532 frames and protocol values: the verified frames of protocols.md §1, and property tests."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.pn532.framing import (
    ACK_BYTES,
    ERROR_BYTES,
    NACK_BYTES,
    TFI_HOST,
    TFI_PN532,
    AckFrame,
    ErrorFrame,
    FrameDecoder,
    InformationFrame,
    NackFrame,
    command_frame,
    decode_frame,
    decode_frames,
    encode,
    response_frame,
)
from posdiag.drivers.pn532.protocol import (
    BaudType,
    Diagnose,
    DiagnoseTest,
    FirmwareVersion,
    GetFirmwareVersion,
    InListPassiveTarget,
    RFConfiguration,
    SAMConfiguration,
    SamMode,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# (wire bytes from protocols.md §1.2/§1.4, TFI, payload)
VERIFIED_INFORMATION_FRAMES = [
    ("00 00 FF 02 FE D4 02 2A 00", TFI_HOST, "02"),
    ("00 00 FF 06 FA D5 03 32 01 06 07 E8 00", TFI_PN532, "03 32 01 06 07"),
    ("00 00 FF 03 FD D4 14 01 17 00", TFI_HOST, "14 01"),
    ("00 00 FF 05 FB D4 14 01 00 00 17 00", TFI_HOST, "14 01 00 00"),
    ("00 00 FF 05 FB D4 14 01 14 01 02 00", TFI_HOST, "14 01 14 01"),
    ("00 00 FF 02 FE D5 15 16 00", TFI_PN532, "15"),
    ("00 00 FF 05 FB D4 00 31 32 33 96 00", TFI_HOST, "00 31 32 33"),
    ("00 00 FF 09 F7 D4 00 00 6C 69 62 6E 66 63 BE 00", TFI_HOST, "00 00 6C 69 62 6E 66 63"),
    ("00 00 FF 09 F7 D5 01 00 6C 69 62 6E 66 63 BC 00", TFI_PN532, "01 00 6C 69 62 6E 66 63"),
    ("00 00 FF 03 FD D4 00 01 2B 00", TFI_HOST, "00 01"),
    ("00 00 FF 03 FD D5 01 00 2A 00", TFI_PN532, "01 00"),
    ("00 00 FF 03 FD D5 01 FF 2B 00", TFI_PN532, "01 FF"),
    ("00 00 FF 03 FD D4 00 02 2A 00", TFI_HOST, "00 02"),
    ("00 00 FF 04 FC D4 00 04 01 27 00", TFI_HOST, "00 04 01"),
    ("00 00 FF 03 FD D4 00 06 26 00", TFI_HOST, "00 06"),
    ("00 00 FF 04 FC D4 00 07 31 F4 00", TFI_HOST, "00 07 31"),
    ("00 00 FF 04 FC D4 4A 01 00 E1 00", TFI_HOST, "4A 01 00"),
    ("00 00 FF 03 FD D5 4B 00 E0 00", TFI_PN532, "4B 00"),
    ("00 00 FF 0F F1 D5 4B 01 01 00 44 00 07 04 16 C6 C2 D7 38 81 61 00", TFI_PN532,
     "4B 01 01 00 44 00 07 04 16 C6 C2 D7 38 81"),
]


@pytest.mark.parametrize(("wire", "tfi", "payload"), VERIFIED_INFORMATION_FRAMES)
def test_verified_frames_decode_and_encode_literally(wire: str, tfi: int, payload: str) -> None:
    frame = InformationFrame(tfi, h(payload))
    assert decode_frame(h(wire)) == frame
    assert encode(frame) == h(wire)


def test_extended_frame_example_from_libnfc() -> None:
    wire = h("00 00 FF FF FF 00 02 FE D4 02 2A 00")
    frame = decode_frame(wire)
    assert frame == InformationFrame(TFI_HOST, b"\x02", extended=True)
    assert encode(frame) == wire


@pytest.mark.parametrize(("wire", "frame"), [
    ("00 00 FF 00 FF 00", AckFrame()),
    ("00 00 FF FF 00 00", NackFrame()),
    ("00 00 FF 01 FF 7F 81 00", ErrorFrame()),
])
def test_control_frames(wire: str, frame: object) -> None:
    assert decode_frame(h(wire)) == frame
    assert encode(frame) == h(wire)  # type: ignore[arg-type]


def test_control_frame_constants() -> None:
    assert h("0000FF00FF00") == ACK_BYTES
    assert h("0000FFFF0000") == NACK_BYTES
    assert h("0000FF01FF7F8100") == ERROR_BYTES


@pytest.mark.parametrize(("command", "wire"), [
    (GetFirmwareVersion(), "00 00 FF 02 FE D4 02 2A 00"),
    (SAMConfiguration(), "00 00 FF 03 FD D4 14 01 17 00"),
    (SAMConfiguration(SamMode.NORMAL, 0, 0), "00 00 FF 05 FB D4 14 01 00 00 17 00"),
    (SAMConfiguration(SamMode.NORMAL, 0x14, 1), "00 00 FF 05 FB D4 14 01 14 01 02 00"),
    (Diagnose.communication_line(b"libnfc"), "00 00 FF 09 F7 D4 00 00 6C 69 62 6E 66 63 BE 00"),
    (Diagnose.rom(), "00 00 FF 03 FD D4 00 01 2B 00"),
    (Diagnose.ram(), "00 00 FF 03 FD D4 00 02 2A 00"),
    (Diagnose(DiagnoseTest.POLLING, b"\x01"), "00 00 FF 04 FC D4 00 04 01 27 00"),
    (Diagnose(DiagnoseTest.ATTENTION), "00 00 FF 03 FD D4 00 06 26 00"),
    (Diagnose.antenna(0x31), "00 00 FF 04 FC D4 00 07 31 F4 00"),
    (InListPassiveTarget(), "00 00 FF 04 FC D4 4A 01 00 E1 00"),
])
def test_commands_build_the_verified_frames(command: object, wire: str) -> None:
    assert command_frame(command.payload()) == h(wire)  # type: ignore[attr-defined]


def test_nfcpy_max_retries_payload() -> None:
    assert RFConfiguration.max_retries(atr=0x01, psl=0x00, passive_activation=0x01).payload() \
        == h("32 05 01 00 01")


# -- streaming decoder ------------------------------------------------------------------------

def test_decoder_skips_long_preamble_and_garbage() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x55\x13\x37" + bytes(40) + h("00 00 FF 02 FE D5 15 16 00") + bytes(5))
    assert decoder.next_frame() == InformationFrame(TFI_PN532, b"\x15")
    assert decoder.next_frame() is None


def test_decoder_byte_by_byte_delivery() -> None:
    wire = ACK_BYTES + h("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")
    decoder = FrameDecoder()
    frames = []
    for b in wire:
        decoder.feed(bytes([b]))
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    assert frames == [AckFrame(), InformationFrame(TFI_PN532, h("03 32 01 06 07"))]


def test_bad_dcs_is_a_checksum_error_and_the_next_frame_still_decodes() -> None:
    bad = bytearray(h("00 00 FF 06 FA D5 03 32 01 06 07 E8 00"))
    bad[-2] ^= 0x01
    decoder = FrameDecoder()
    decoder.feed(bytes(bad) + ACK_BYTES)
    with pytest.raises(ProtocolError) as err:
        decoder.next_frame()
    assert err.value.kind == "checksum"
    assert decoder.next_frame() == AckFrame()


def test_bad_lcs_is_a_checksum_error() -> None:
    with pytest.raises(ProtocolError) as err:
        decode_frame(h("00 00 FF 06 FB D5 03 32 01 06 07 E8 00"))
    assert err.value.kind == "checksum"


def test_bad_extended_lcs_is_a_checksum_error() -> None:
    with pytest.raises(ProtocolError) as err:
        decode_frame(h("00 00 FF FF FF 00 02 FD D4 02 2A 00"))
    assert err.value.kind == "checksum"


@pytest.mark.parametrize("wire", [
    "00 00 FF FF FF 01 0A F5 D4",  # extended length 266 > firmware limit
    "00 00 FF 00 00 00",  # LEN 0 that is not an ACK
    "00 00 FF 02 FE 7F 02 7F 00",  # unknown TFI
])
def test_nonsense_frames_are_framing_errors(wire: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_frame(h(wire))
    assert err.value.kind == "framing"


def test_incomplete_frame_and_trailing_bytes_are_framing_errors() -> None:
    with pytest.raises(ProtocolError, match="incomplete"):
        decode_frame(h("00 00 FF 06 FA D5 03"))
    with pytest.raises(ProtocolError, match="after the frame"):
        decode_frame(ACK_BYTES + b"\x01")


def test_response_frame_switches_to_extended_only_when_needed() -> None:
    assert decode_frame(response_frame(bytes(254))) == InformationFrame(TFI_PN532, bytes(254))
    big = decode_frame(response_frame(bytes(255)))
    assert isinstance(big, InformationFrame) and big.extended and len(big.payload) == 255


def test_information_frame_validates() -> None:
    with pytest.raises(ValueError):
        InformationFrame(0x7F, b"\x00")
    with pytest.raises(ValueError):
        InformationFrame(TFI_HOST, bytes(255))
    with pytest.raises(ValueError):
        InformationFrame(TFI_HOST, bytes(265), extended=True)


# -- properties -------------------------------------------------------------------------------

def _drain(decoder: FrameDecoder) -> list[object]:
    out: list[object] = []
    for _ in range(10_000):
        try:
            frame = decoder.next_frame()
        except ProtocolError as exc:
            assert exc.kind in ("checksum", "framing")
            out.append(exc.kind)
            continue
        if frame is None:
            return out
        out.append(frame)
    raise AssertionError("decoder did not terminate")


@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_protocol_error(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    _drain(decoder)
    assert decoder.pending <= len(data)


@given(st.binary(max_size=300))
def test_decode_frame_on_arbitrary_bytes_is_typed(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frame(data)


information_frames = st.builds(
    lambda tfi, payload, ext: InformationFrame(tfi, payload, extended=ext or len(payload) > 254),
    st.sampled_from([TFI_HOST, TFI_PN532]), st.binary(max_size=264), st.booleans())
frames = st.one_of(information_frames, st.just(AckFrame()), st.just(NackFrame()),
                   st.just(ErrorFrame()))
# Noise between frames: no 0x00/0xFF, so it cannot form a start code with its neighbours.
noise = st.binary(max_size=8).map(lambda b: bytes(x for x in b if x not in (0x00, 0xFF)))


@given(st.lists(st.tuples(noise, frames), max_size=6), st.integers(1, 64))
def test_encode_decode_round_trip_through_noise_in_chunks(
        items: list[tuple[bytes, object]], chunk: int) -> None:
    wire = b"".join(n + encode(f) for n, f in items)  # type: ignore[arg-type]
    decoder = FrameDecoder()
    got: list[object] = []
    for i in range(0, len(wire), chunk):
        decoder.feed(wire[i : i + chunk])
        got += _drain(decoder)
    assert got == [f for _, f in items]


@given(frames)
def test_decode_frames_equals_decode_frame(frame: object) -> None:
    wire = encode(frame)  # type: ignore[arg-type]
    assert decode_frames(wire) == [decode_frame(wire)] == [frame]


# -- protocol values --------------------------------------------------------------------------

def test_firmware_version_parse() -> None:
    fw = GetFirmwareVersion().parse(h("03 32 01 06 07"))
    assert fw == FirmwareVersion(0x32, 1, 6, 7)
    assert fw.is_pn532 and fw.version_text == "1.6"
    assert fw.supports_iso14443a and fw.supports_iso14443b and fw.supports_iso18092


def test_wrong_response_code_is_unexpected() -> None:
    with pytest.raises(ProtocolError) as err:
        GetFirmwareVersion().parse(h("15"))
    assert err.value.kind == "unexpected"


@pytest.mark.parametrize("payload", ["03 32 01 06", "03", ""])
def test_short_firmware_answer_is_typed(payload: str) -> None:
    with pytest.raises(ProtocolError):
        GetFirmwareVersion().parse(h(payload))


def test_diagnose_parse() -> None:
    assert Diagnose.rom().parse(h("01 FF")).status_byte == 0xFF
    assert Diagnose.communication_line(b"libnfc").parse(h("01 00") + b"libnfc").out \
        == b"\x00libnfc"
    with pytest.raises(ProtocolError) as err:
        Diagnose.ram().parse(h("01 00 00"))
    assert err.value.kind == "framing"


def test_sam_configuration_validation() -> None:
    with pytest.raises(ValueError):
        SAMConfiguration(SamMode.VIRTUAL_CARD)
    with pytest.raises(ValueError):
        SAMConfiguration(SamMode.NORMAL, None, 1)
    with pytest.raises(ValueError):
        SAMConfiguration(5)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        SAMConfiguration().parse(h("15 00"))


def test_diagnose_validation() -> None:
    with pytest.raises(ValueError):
        Diagnose.communication_line(bytes(263))
    with pytest.raises(ValueError):
        Diagnose(DiagnoseTest.ROM, b"\x00")
    with pytest.raises(ValueError):
        Diagnose.antenna(0x100)
    assert Diagnose.rom().timeout_s >= 1.5  # dotnet/iot waits 1.5 s for ROM/RAM


def test_in_list_passive_target_parses_the_nfcpy_card() -> None:
    result = InListPassiveTarget().parse(h("4B 01 01 00 44 00 07 04 16 C6 C2 D7 38 81"))
    (target,) = result.targets
    assert result.found
    assert target.uid == h("04 16 C6 C2 D7 38 81") and target.uid_length == 7
    assert target.sens_res == h("00 44") and target.sel_res == 0 and not target.iso14443_4
    assert "uid=" not in repr(target)


def test_in_list_passive_target_with_ats_and_two_targets() -> None:
    iso_dep = h("01 00 04 20 04 AA BB CC DD 05 78 80 70 02")
    mifare = h("02 00 04 08 04 11 22 33 44")
    result = InListPassiveTarget(max_targets=2).parse(h("4B 02") + iso_dep + mifare)
    first, second = result.targets
    assert first.iso14443_4 and first.ats == h("05 78 80 70 02") and first.uid == h("AABBCCDD")
    assert second.number == 2 and second.uid == h("11223344") and second.ats == b""


def test_in_list_passive_target_other_baud_types() -> None:
    felica = h("01 12 01") + bytes(range(8)) + bytes(8)
    assert InListPassiveTarget(baud_type=BaudType.FELICA_212).parse(h("4B 01") + felica) \
        .targets[0].uid == bytes(range(8))
    type_b = h("01 50 01 02 03 04") + bytes(7) + h("01 00")
    assert InListPassiveTarget(baud_type=BaudType.TYPE_B_106, initiator_data=b"\x00") \
        .parse(h("4B 01") + type_b).targets[0].uid == h("01 02 03 04")
    jewel = h("01 0C 00 A1 A2 A3 A4")
    assert InListPassiveTarget(baud_type=BaudType.JEWEL_106).parse(h("4B 01") + jewel) \
        .targets[0].uid == h("A1 A2 A3 A4")


@pytest.mark.parametrize("body", [
    "4B",  # no NbTg
    "4B 02 01 00 44 00 00 01 00 44 00 00",  # 2 targets when 1 was asked
    "4B 01 01 00 44 00 07 04 16",  # UID cut short
    "4B 00 99",  # bytes after the (empty) target list
    "4B 01 01 00 04 20 04 AA BB CC DD 00",  # ATS length 0
])
def test_in_list_passive_target_malformed_is_framing(body: str) -> None:
    with pytest.raises(ProtocolError) as err:
        InListPassiveTarget().parse(h(body))
    assert err.value.kind == "framing"


@given(st.sampled_from(list(BaudType)), st.integers(1, 2), st.binary(max_size=80))
def test_in_list_passive_target_parse_never_raises_untyped(
        baud: BaudType, max_tg: int, body: bytes) -> None:
    command = InListPassiveTarget(max_targets=max_tg, baud_type=baud,
                                  initiator_data=b"\x00" if baud == BaudType.TYPE_B_106 else b"")
    with contextlib.suppress(ProtocolError):
        command.parse(b"\x4b" + body)


# -- UM0701-02 §6.2.1 strictness, normal and extended frames alike (issue 10) ------------------

EXTENDED = h("00 00 FF FF FF 00 02 FE D4 02 2A 00")  # libnfc's worked example
NORMAL = h("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")
BIG_EXTENDED = response_frame(bytes(range(256)) + b"\x01\x02")  # 259 bytes: LENM 01


def _rejected(data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as err:
        decode_frame(data)
    return err.value


@pytest.mark.parametrize("wire", [NORMAL, EXTENDED, BIG_EXTENDED, ACK_BYTES, NACK_BYTES,
                                  ERROR_BYTES], ids=["normal", "extended", "extended-259",
                                                     "ack", "nack", "error"])
def test_missing_postamble_is_rejected(wire: bytes) -> None:
    assert "postamble" in _rejected(wire[:-1]).message
    # Streaming: nothing is returned while it may still come; giving up names it.
    decoder = FrameDecoder()
    decoder.feed(wire[:-1])
    assert decoder.next_frame() is None
    with pytest.raises(ProtocolError, match="cut off") as err:
        decoder.give_up()
    assert err.value.kind == "framing" and decoder.pending == 0


@pytest.mark.parametrize("wire", [NORMAL, EXTENDED, BIG_EXTENDED, ACK_BYTES, NACK_BYTES],
                         ids=["normal", "extended", "extended-259", "ack", "nack"])
def test_wrong_postamble_is_rejected_and_the_next_frame_decodes(wire: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(wire[:-1] + b"\x42" + ACK_BYTES)
    with pytest.raises(ProtocolError, match="postamble") as err:
        decoder.next_frame()
    assert err.value.kind == "framing"
    assert decoder.next_frame() == AckFrame()


def test_extended_frame_wrong_dcs_and_lcs() -> None:
    bad_dcs = bytearray(BIG_EXTENDED)
    bad_dcs[-2] ^= 0x80
    assert _rejected(bytes(bad_dcs)).kind == "checksum"
    for i in (5, 6, 7):  # LENM, LENL, LCS
        bad = bytearray(BIG_EXTENDED)
        bad[i] ^= 0x01
        assert _rejected(bytes(bad)).kind == "checksum", i


@pytest.mark.parametrize("wire", [NORMAL, EXTENDED, BIG_EXTENDED],
                         ids=["normal", "extended", "extended-259"])
def test_every_truncation_is_rejected(wire: bytes) -> None:
    for cut in range(len(wire)):
        _rejected(wire[:cut])


@pytest.mark.parametrize("wire", [NORMAL, EXTENDED, BIG_EXTENDED],
                         ids=["normal", "extended", "extended-259"])
def test_every_dropped_byte_after_the_preamble_is_rejected(wire: bytes) -> None:
    # Byte 0 is the preamble, whose length the UM leaves open: 00 FF alone still starts a frame
    # (dropping byte 1 gives the same bytes). Any other byte missing breaks the frame.
    assert decode_frame(wire[1:]) == decode_frame(wire)
    for i in range(2, len(wire)):
        _rejected(wire[:i] + wire[i + 1 :])


def test_longer_preamble_and_postamble_are_accepted() -> None:
    frame = decode_frame(EXTENDED)
    assert decode_frame(bytes(7) + EXTENDED + bytes(9)) == frame
    assert decode_frames(NORMAL + bytes(3) + EXTENDED) == [decode_frame(NORMAL), frame]


@given(information_frames, st.data())
def test_any_single_byte_change_after_the_preamble_is_caught(frame: InformationFrame,
                                                             data: st.DataObject) -> None:
    wire = encode(frame)
    i = data.draw(st.integers(1, len(wire) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != wire[i]))
    mutated = wire[:i] + bytes([new]) + wire[i + 1 :]
    try:
        got = decode_frame(mutated)
    except ProtocolError:
        return
    assert got != frame


@given(st.binary(max_size=400))
def test_give_up_on_arbitrary_bytes_is_typed_and_empties(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    _drain(decoder)
    with contextlib.suppress(ProtocolError):
        decoder.give_up()
    assert decoder.pending == 0
