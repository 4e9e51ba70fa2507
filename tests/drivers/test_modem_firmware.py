"""Real firmware's words through the AT layer and the parsers, one test per class of issue 10:
final result codes, registration answers, character sets, optional identity. The lines are
the answer forms the manuals and standards give (V.250, 27.007, Quectel, SIMCom, Huawei,
u-blox), plus hypothesis properties for every parser."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.modem.at import (
    AtCommandError,
    AtResponse,
    final_code,
    is_registration_urc,
    parse_response,
)
from posdiag.drivers.modem.charset import decode_gsm_hex, decode_text, decode_ucs2
from posdiag.drivers.modem.device import is_5g_model
from posdiag.drivers.modem.parse import (
    RegistrationStat,
    parse_ati,
    parse_cops,
    parse_cpin,
    parse_csq,
    parse_imei,
    parse_qcsq,
    parse_registration,
)

# -- final result codes ------------------------------------------------------------------------


@pytest.mark.parametrize("final", ["OK", "CONNECT", "CONNECT 115200", "CONNECT 150000000"])
def test_success_finals_end_the_command(final: str) -> None:
    response = parse_response("ATD*99#", f"\r\n{final}\r\n".encode())
    assert response is not None and response.final == final


@pytest.mark.parametrize(("final", "code"), [
    ("ERROR", None), ("NO CARRIER", None), ("NO DIALTONE", None), ("NO DIAL TONE", None),
    ("BUSY", None), ("NO ANSWER", None), ("COMMAND NOT SUPPORT", None),
    ("TOO MANY PARAMETERS", None), ("MODEM ERROR: 3", 3), ("+CME ERROR: 30", 30),
    ("+CME ERROR: SIM not inserted", 10), ("+CME ERROR: no network service", 30),
    ("+CMS ERROR: 500", 500), ("+CMS ERROR: unknown error", None),
])
def test_failure_finals_are_an_answer_not_a_timeout(final: str, code: int | None) -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("AT+CSQ", f"AT+CSQ\r\r\n{final}\r\n".encode())
    assert info.value.code == code


@pytest.mark.parametrize(("data", "lines", "final"), [
    (b"0\r", (), "OK"),
    (b"+CSQ: 19,0\r\n0\r", ("+CSQ: 19,0",), "OK"),  # V0: text<CR><LF>, then <code><CR>
    (b"AT+CSQ\r+CSQ: 19,0\r\n0\r", ("+CSQ: 19,0",), "OK"),
    (b"1\r", (), "CONNECT"),
])
def test_numeric_result_codes_after_atv0(data: bytes, lines: tuple[str, ...], final: str) -> None:
    response = parse_response("AT+CSQ", data)
    assert response is not None and (response.lines, response.final) == (lines, final)


@pytest.mark.parametrize(("code", "text"), [("3", "NO CARRIER"), ("4", "ERROR"),
                                            ("6", "NO DIALTONE"), ("7", "BUSY"),
                                            ("8", "NO ANSWER")])
def test_numeric_failures(code: str, text: str) -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("ATD123;", f"{code}\r".encode())
    assert info.value.text == text


def test_numeric_ring_is_not_a_final_and_s_register_digits_are_information() -> None:
    assert final_code("2") is None  # V.250: 2 is RING, unsolicited
    response = parse_response("ATS0?", b"\r\n0\r\n\r\nOK\r\n")
    assert response is not None and response.lines == ("0",)


def test_cpin_without_ok_is_answered_and_a_final_always_means_answered() -> None:
    unterminated = parse_response("AT+CPIN?", b"\r\n+CPIN: READY\r\n")
    assert unterminated is not None and unterminated.final is None
    assert parse_cpin(unterminated.one("+CPIN")).value == "ready"
    # Without the expected information there is no answer yet.
    assert parse_response("AT+CPIN?", b"\r\nRDY\r\n") is None


# -- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "stat", "area", "cell", "act"), [
    ("+CREG: 2,1,  0 5, 2715", 1, "05", "2715", None),  # spaces inside fields
    ("+CREG: 2,1,000B,2816, B, C2816", 1, "000B", "2816", None),  # trailing vendor fields
    ('+CGREG: 2,1,"00A1","0B","0002C3E5",7', 1, "00A1", "0002C3E5", 7),  # RAC before CI
    ('+CGREG: 2,1,"31C5","0050A2D3",2,"0B"', 1, "31C5", "0050A2D3", 2),  # 27.007 RAC after AcT
    ('+CEREG: 2,5,"D6E7","0844D92A",7', 5, "D6E7", "0844D92A", 7),  # leading zeros kept
    ("+CREG: 2,1,1A2B,01C3D4E5,2", 1, "1A2B", "01C3D4E5", 2),  # unquoted
    ('+CEREG: 3,3,"D6E7","0844D92A",7,0,11', 3, "D6E7", "0844D92A", 7),  # n=3 reject cause
    ('+CEREG: 4,1,"D6E7","0844D92A",7,,,"00100100","01000111"', 1, "D6E7", "0844D92A", 7),
    ('+C5GREG: 2,1,"0A1B2C","0000000A1",11', 1, "0A1B2C", "0000000A1", 11),
    ("+CEREG: 0,8", 8, None, None, None), ("+CEREG: 0,11", 11, None, None, None),
    ("+CGREG: 0,10", 10, None, None, None),
])
def test_registration_forms_real_firmware_prints(line: str, stat: int, area: str | None,
                                                 cell: str | None, act: int | None) -> None:
    reg = parse_registration(line)
    assert reg.n is not None and not reg.unsolicited
    assert (int(reg.stat) if reg.stat is not None else None, reg.area, reg.cell_id,
            reg.act) == (stat, area, cell, act)


def test_stat_9_10_are_registrations_and_8_11_are_not() -> None:
    assert RegistrationStat(9).registered and RegistrationStat(10).roaming
    assert not RegistrationStat(8).registered and not RegistrationStat(11).registered


@pytest.mark.parametrize(("line", "urc"), [
    ("+CREG: 1", True), ("+CREG: 1,1", False), ('+CREG: 1,"1A2B","01C3"', True),
    ('+CREG: 5,"1A2B","01C3",7', True), ('+CREG: 2,5,"1A2B","01C3",7', False),
    ("+CEREG: 1,2715,0844D92A,7", True), ("+CREG: 0,12", False),
])
def test_urc_form_has_no_n(line: str, urc: bool) -> None:
    assert is_registration_urc(line, line.split(":")[0]) is urc


def test_creg_urcs_while_the_read_is_pending_are_not_the_answer() -> None:
    data = b'\r\n+CREG: 3\r\n\r\n+CREG: 1,1\r\n\r\n+CREG: 5,"1A2B","01C3"\r\n\r\nOK\r\n'
    response = parse_response("AT+CREG?", data)
    assert response is not None
    assert response.lines == ("+CREG: 1,1",)
    assert parse_registration(response.one("+CREG")).stat is RegistrationStat.HOME
    assert response.urcs == ("+CREG: 3", '+CREG: 5,"1A2B","01C3"')


# -- character sets ----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "charset", "name"), [
    ('+COPS: 0,0,"4E2D56FD79FB52A8",7', "UCS2", "中国移动"),
    ('+COPS: 0,0,"4E2D56FD8054901A",7', '"UCS2"', "中国联通"),
    ('+COPS: 0,0,"4E2D56FD75354FE1",7', None, "中国电信"),  # +CSCS? refused: still decoded
    ('+COPS: 0,0,"0054002D004D006F00620069006C0065",7', "IRA", "T-Mobile"),  # UCS2 despite IRA
    ('+COPS: 0,0,"54656C6566C3B36E696361",2', "HEX", "Telefónica"),
    ('+COPS: 0,0,"CHINA MOBILE",7', "GSM", "CHINA MOBILE"),
    ('+COPS: 0,0,"BEEF",7', None, "BEEF"),  # a short hex-looking name is a name
    ('+COPS: 0,2,"46000",7', "UCS2", "46000"),
    ('+COPS: 0,2,"00340036003000300030",7', "UCS2", "46000"),
    ('+COPS: 0,0,"ZZZZ",7', "UCS2", "ZZZZ"),  # not UCS2 after all: kept, never fails
])
def test_operator_names_in_every_charset(line: str, charset: str | None, name: str) -> None:
    assert parse_cops(line, charset).name == name


def test_charset_decoders() -> None:
    assert decode_ucs2("4E2D56FD79FB52A8") == "中国移动"
    assert decode_ucs2("D800") is None  # a lone surrogate is not text
    assert decode_gsm_hex("4F72616E6765") == "Orange"
    assert decode_gsm_hex("00") == "@"  # GSM 03.38 position 0
    assert decode_text("4E2D", "UCS2") == "中"


# -- identity ----------------------------------------------------------------------------------


def test_identity_forms() -> None:
    assert AtResponse("AT+CGMI", (" WAVECOM MODEM  ",)).text() == "WAVECOM MODEM"
    assert parse_ati((" WAVECOM MODEM  ", " MULTIBAND  900E  1800 ")).model == "MULTIBAND 900E 1800"
    assert parse_imei("IMEI: 867223020017634") == "867223020017634"


# -- properties: any input, an answer or a ProtocolError ---------------------------------------

_LINES = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(['"', ",", " ", "0", "1", "2", "11", "99", "-", "FFFF", "4E2D",
                              "LTE", "READY", ":", "+"]), max_size=25).map("".join))
_PREFIXES = st.sampled_from(["+CSQ: ", "+CPIN: ", "+QCSQ: ", "+CREG: ", "+CGREG: ", "+CEREG: ",
                             "+C5GREG: ", "+COPS: ", "+CGSN: ", ""])


@given(prefix=_PREFIXES, payload=_LINES, charset=st.sampled_from([None, "UCS2", "HEX", "IRA"]))
def test_every_parser_gives_a_value_or_a_protocol_error(prefix: str, payload: str,
                                                        charset: str | None) -> None:
    line = prefix + payload
    for parser in (parse_csq, parse_cpin, parse_qcsq, parse_registration, parse_imei,
                   lambda text: parse_cops(text, charset)):
        with contextlib.suppress(ProtocolError):
            parser(line)


@given(lines=st.lists(_LINES, max_size=6))
def test_ati_gives_a_value_or_a_protocol_error(lines: list[str]) -> None:
    with contextlib.suppress(ProtocolError):
        parse_ati(tuple(lines))


@given(text=_LINES, charset=st.sampled_from([None, "UCS2", "HEX", "IRA", "8859-1", ""]),
       numeric=st.booleans())
def test_decode_text_never_fails(text: str, charset: str | None, numeric: bool) -> None:
    assert isinstance(decode_text(text, charset, numeric=numeric), str)


@given(data=st.binary(max_size=400),
       command=st.sampled_from(["AT", "ATS0?", "AT+CPIN?", "AT+CREG?", "AT+COPS?", "ATI"]))
def test_any_bytes_to_the_collector(data: bytes, command: str) -> None:
    try:
        result = parse_response(command, data)
    except ProtocolError:
        return
    assert result is None or isinstance(result, AtResponse)


@pytest.mark.parametrize(("model", "five_g"), [
    ("RM500Q-GL", True), ("RG500Q-EA", True), ("SIM8262E-M2", True), ("EM9190", True),
    ("FM150-AE", True), (" FN980m", True), ("EC25", False), ("BG96", False),
    ("SIMCOM_SIM800C", False), ("SIM7600E", False), (None, False), ("", False),
])
def test_5g_models_are_asked_c5greg(model: str | None, five_g: bool) -> None:
    assert is_5g_model(model) is five_g
