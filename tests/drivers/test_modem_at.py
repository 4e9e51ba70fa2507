"""AT line protocol and 27.007 / Quectel answer parsers (protocols.md §4), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.modem.at import (
    CME_ERRORS,
    AtCommandError,
    AtResponse,
    LineSplitter,
    ResponseCollector,
    command_prefix,
    parse_response,
    split_fields,
)
from posdiag.drivers.modem.parse import (
    ACCESS_TECHNOLOGIES,
    SIM_STATE_BY_CME,
    Identity,
    Operator,
    Registration,
    RegistrationStat,
    SignalQuality,
    SimState,
    parse_ati,
    parse_cops,
    parse_cpin,
    parse_csq,
    parse_imei,
    parse_qcsq,
    parse_registration,
)

# -- line splitting ----------------------------------------------------------------------------


def test_lines_are_cut_at_any_run_of_cr_and_lf() -> None:
    splitter = LineSplitter()
    lines = splitter.feed(b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
    assert lines == ["AT+CSQ", "+CSQ: 20,99", "OK"]
    assert splitter.pending == b""


def test_a_line_split_across_reads_is_reassembled() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"\r\n+CS") == []
    assert splitter.pending == b"+CS"
    assert splitter.feed(b"Q: 5,3\r") == ["+CSQ: 5,3"]


def test_non_printable_bytes_are_a_garbled_line() -> None:
    with pytest.raises(ProtocolError) as info:
        LineSplitter().feed(b"\r\n+CSQ: \xb2\x1b,9\r\n")
    assert info.value.kind == "garbled"


def test_an_endless_line_is_a_framing_error_and_the_splitter_recovers() -> None:
    splitter = LineSplitter(max_line_bytes=16)
    with pytest.raises(ProtocolError) as info:
        splitter.feed(b"A" * 17)
    assert info.value.kind == "framing"
    assert splitter.feed(b"\r\nOK\r\n") == ["OK"]


# -- one command's answer ----------------------------------------------------------------------


def test_echo_on_answer_from_the_reference() -> None:
    # protocols.md §4.1: with E1, AT\r produces AT\r\r\nOK\r\n
    assert parse_response("AT", b"AT\r\r\nOK\r\n") == AtResponse("AT")


def test_echo_off_answer() -> None:
    assert parse_response("AT", b"\r\nOK\r\n") == AtResponse("AT")


def test_ate0_is_still_echoed_itself() -> None:
    assert parse_response("ATE0", b"ATE0\r\r\nOK\r\n") == AtResponse("ATE0")


def test_information_lines_are_kept_in_order() -> None:
    response = parse_response("ATI", b"ATI\r\r\nQuectel\r\nEC25\r\nRevision: EC25EFAR06A06M4G\r\n"
                                     b"\r\nOK\r\n")
    assert response is not None
    assert response.lines == ("Quectel", "EC25", "Revision: EC25EFAR06A06M4G")


def test_an_answer_without_final_code_or_information_is_not_complete() -> None:
    assert parse_response("AT+CSQ", b"AT+CSQ\r") is None
    assert parse_response("AT+CSQ", b"\r\n+CEREG: 1\r\n") is None


def test_information_without_final_code_is_an_unterminated_answer() -> None:
    # Wavecom M1306B: "+CPIN: READY" and then nothing (python-gsmmodem issue 19's report).
    response = parse_response("AT+CPIN?", b"AT+CPIN?\r\r\n+CPIN: READY\r\n")
    assert response is not None and response.final is None
    assert response.one("+CPIN") == "+CPIN: READY"


@pytest.mark.parametrize("urc", [
    "RING", "+CEREG: 1", "+CEREG: 5,\"D6E7\",\"844D92A\",7", '+QIND: "csq",3,99', "RDY",
    "+CPIN: READY", "+CMTI: \"SM\",1", "POWERED DOWN",
])
def test_a_urc_in_the_middle_of_a_csq_answer_is_set_aside(urc: str) -> None:
    data = f"AT+CSQ\r\r\n{urc}\r\n\r\n+CSQ: 20,99\r\n\r\n{urc}\r\n\r\nOK\r\n".encode()
    response = parse_response("AT+CSQ", data)
    assert response is not None
    assert response.lines == ("+CSQ: 20,99",)
    assert response.urcs == (urc, urc)
    assert response.one("+CSQ") == "+CSQ: 20,99"


@pytest.mark.parametrize(("line", "is_urc"), [
    ("+CEREG: 1", True),                             # URC, n=1
    ("+CEREG: 0,1", False),                          # read answer, n=0
    ("+CEREG: 1,1", False),                          # read answer, n=1
    ('+CEREG: 1,"D6E7","844D92A",7', True),         # URC, n=2 (location)
    ('+CEREG: 2,1,"D6E7","844D92A",7', False),      # read answer, n=2
    ('+CEREG: 3,"D6E7","844D92A",7,0,13', True),    # URC, n=3 (reject cause)
    ('+CEREG: 3,3,"D6E7","844D92A",7,0,13', False),  # read answer, n=3
    ('+CEREG: 2,,,', True),                          # URC with empty location fields
])
def test_registration_urcs_are_told_from_the_read_answer(line: str, is_urc: bool) -> None:
    collector = ResponseCollector("AT+CEREG?")
    collector.feed(line)
    response = collector.feed("OK")
    assert response is not None
    assert (response.urcs == (line,)) is is_urc
    assert (response.lines == (line,)) is not is_urc


def test_urc_arriving_while_reading_registration_does_not_replace_the_answer() -> None:
    data = b"\r\n+CEREG: 2\r\n\r\n+CEREG: 0,1\r\n\r\n+CEREG: 3\r\n\r\nOK\r\n"
    response = parse_response("AT+CEREG?", data)
    assert response is not None
    assert parse_registration(response.one("+CEREG")).stat is RegistrationStat.HOME
    assert response.urcs == ("+CEREG: 2", "+CEREG: 3")


def test_plain_command_sees_every_prefixed_line_as_urc() -> None:
    response = parse_response("AT", b"\r\n+CREG: 1\r\n\r\nOK\r\n")
    assert response == AtResponse("AT", (), ("+CREG: 1",))


def test_plain_error() -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("AT+QCSQ", b"AT+QCSQ\r\r\nERROR\r\n")
    assert (info.value.kind, info.value.code, info.value.command) == ("error", None, "AT+QCSQ")
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize("code", sorted(CME_ERRORS))
def test_every_numeric_cme_error(code: int) -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("AT+CPIN?", f"\r\n+CME ERROR: {code}\r\n".encode())
    assert info.value.kind == "cme_error"
    assert info.value.code == code
    assert CME_ERRORS[code] in info.value.message


@pytest.mark.parametrize(("code", "text"), [
    (0, "phone failure"), (3, "operation not allowed"), (4, "operation not supported"),
    (5, "PH-SIM PIN required"), (10, "SIM not inserted"), (11, "SIM PIN required"),
    (12, "SIM PUK required"), (13, "SIM failure"), (14, "SIM busy"), (15, "SIM wrong"),
    (16, "incorrect password"), (17, "SIM PIN2 required"), (18, "SIM PUK2 required"),
    (30, "no network service"), (31, "network timeout"),
    (32, "network not allowed - emergency calls only"), (50, "incorrect parameters"),
    (100, "unknown"),
])
def test_verbose_cme_errors_map_back_to_the_documented_codes(code: int, text: str) -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("AT+CPIN?", f"\r\n+CME ERROR: {text}\r\n".encode())
    assert (info.value.kind, info.value.code, info.value.text) == ("cme_error", code, text)


def test_unknown_verbose_cme_error_keeps_the_text() -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("AT+CPIN?", b"\r\n+CME ERROR: vendor specific trouble\r\n")
    assert (info.value.code, info.value.text) == (None, "vendor specific trouble")


def test_cms_error() -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("AT+CMGS=5", b"\r\n+CMS ERROR: 500\r\n")
    assert (info.value.kind, info.value.code) == ("cms_error", 500)


@pytest.mark.parametrize("final", ["NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"])
def test_v250_call_failures_end_the_command(final: str) -> None:
    with pytest.raises(AtCommandError) as info:
        parse_response("ATD123;", f"\r\n{final}\r\n".encode())
    assert (info.value.kind, info.value.text) == ("error", final)


def test_collector_refuses_lines_after_the_final_code() -> None:
    collector = ResponseCollector("AT")
    assert collector.feed("OK") == AtResponse("AT")
    with pytest.raises(ValueError):
        collector.feed("OK")


@pytest.mark.parametrize(("command", "prefix"), [
    ("AT+CSQ", "+CSQ"), ("AT+CREG?", "+CREG"), ("at+cmee=1", "+CMEE"),
    ('AT+QENG="servingcell"', "+QENG"), ("AT", None), ("ATE0", None), ("ATI", None),
])
def test_command_prefix(command: str, prefix: str | None) -> None:
    assert command_prefix(command) == prefix


def test_fields_keep_commas_inside_quotes() -> None:
    assert split_fields('0,0,"AT&T, Inc",7') == ["0", "0", '"AT&T, Inc"', "7"]
    with pytest.raises(ProtocolError):
        split_fields('0,0,"unterminated')


def test_text_answer_with_and_without_prefix() -> None:
    assert AtResponse("AT+CGMI", ("Quectel",)).text() == "Quectel"
    assert AtResponse("AT+CGMI", ("+CGMI: Quectel",)).text() == "Quectel"
    # Multi-line identity answers (BG96 +CGMR prints two revisions) are kept, joined.
    assert AtResponse("AT+CGMR", ("Revision: X", "X_01")).text() == "Revision: X X_01"
    assert AtResponse("AT+CGMM", (" MULTIBAND  900E  1800 ",)).text() == "MULTIBAND 900E 1800"
    with pytest.raises(ProtocolError):
        AtResponse("AT+CGMI").text()


def test_one_takes_the_first_prefixed_line() -> None:
    with pytest.raises(ProtocolError):
        AtResponse("AT+CSQ").one("+CSQ")
    with pytest.raises(ProtocolError):
        AtResponse("AT+CSQ", ("junk",)).one("+CSQ")
    assert AtResponse("AT+CSQ", ("junk", "+CSQ: 1,2", "+CSQ: 3,4")).one("+CSQ") == "+CSQ: 1,2"


# -- Hypothesis: whatever the modem sends, only typed errors ------------------------------------

_COMMANDS = st.sampled_from(["AT", "ATE0", "ATI", "AT+CSQ", "AT+CPIN?", "AT+CEREG?", "AT+COPS?"])
_PIECES = st.sampled_from([
    b"\r", b"\n", b"\r\n", b"OK", b"ERROR", b"+CME ERROR: ", b"+CMS ERROR: ", b"+CSQ: ",
    b"+CEREG: ", b"+CPIN: ", b"RING", b"AT+CSQ", b",", b'"', b"1", b"99", b"\x00", b"\xff",
])
_NOISY = st.one_of(st.binary(max_size=300),
                   st.lists(_PIECES, max_size=40).map(b"".join))


@given(command=_COMMANDS, data=_NOISY)
def test_any_bytes_give_a_response_none_or_a_protocol_error(command: str, data: bytes) -> None:
    try:
        result = parse_response(command, data)
    except ProtocolError:
        return
    assert result is None or isinstance(result, AtResponse)


@given(data=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=200))
def test_splitting_is_independent_of_read_boundaries(data: bytes, cut: int) -> None:
    def lines(chunks: list[bytes]) -> list[str] | str:
        splitter = LineSplitter()
        out: list[str] = []
        try:
            for chunk in chunks:
                out += splitter.feed(chunk)
        except ProtocolError as exc:
            return exc.kind
        return out

    whole = lines([data])
    split = lines([data[:cut], data[cut:]])
    assert whole == split


@given(urcs=st.lists(st.sampled_from(["RING", "+CEREG: 2", '+CREG: 3,"1A2B","01C3",7',
                                      '+QIND: "csq",3,99']), max_size=4),
       echo=st.booleans(), rssi=st.integers(0, 31))
def test_urcs_never_change_the_answer(urcs: list[str], echo: bool, rssi: int) -> None:
    before = "".join(f"\r\n{u}\r\n" for u in urcs)
    data = (("AT+CSQ\r" if echo else "") + before + f"\r\n+CSQ: {rssi},99\r\n" + before
            + "\r\nOK\r\n").encode()
    response = parse_response("AT+CSQ", data)
    assert response is not None
    assert parse_csq(response.one("+CSQ")) == SignalQuality(rssi, 99)
    assert list(response.urcs) == urcs * 2


_PARSERS = [parse_csq, parse_cpin, parse_qcsq, parse_registration, parse_cops, parse_imei]
_PAYLOAD = st.one_of(st.text(max_size=60),
                     st.lists(st.sampled_from(['"', ",", "1", "-", "99", "LTE", "A", " "]),
                              max_size=20).map("".join))


@given(parser=st.sampled_from(_PARSERS),
       prefix=st.sampled_from(["+CSQ: ", "+CPIN: ", "+QCSQ: ", "+CREG: ", "+CGREG: ", "+CEREG: ",
                               "+COPS: ", "+CGSN: ", ""]),
       payload=_PAYLOAD)
def test_answer_parsers_raise_only_protocol_errors(parser: object, prefix: str,
                                                   payload: str) -> None:
    try:
        parser(prefix + payload)  # type: ignore[operator]
    except ProtocolError as exc:
        assert exc.kind == "garbled"


# -- identity ----------------------------------------------------------------------------------


def test_ati_identity() -> None:
    assert parse_ati(("Quectel", "EC25", "Revision: EC25EFAR06A06M4G")) == Identity(
        "Quectel", "EC25", "EC25EFAR06A06M4G")
    assert parse_ati(("SIM800 R14.18",)) == Identity(model="SIM800 R14.18")
    assert parse_ati(("Manufacturer: huawei", "Model: ME909s-821", "Revision: 11.617.01.00.00",
                      "IMEI: 867223020017634", "+GCAP: +CGSM,+DS,+ES")) == Identity(
        "huawei", "ME909s-821", "11.617.01.00.00", "867223020017634")
    with pytest.raises(ProtocolError):
        parse_ati(("+GCAP: +CGSM",))


@pytest.mark.parametrize("text", ["866758040123453", '+CGSN: "866758040123453"',
                                  "+CGSN: 866758040123453"])
def test_imei_bare_or_prefixed(text: str) -> None:
    assert parse_imei(text) == "866758040123453"


@pytest.mark.parametrize("text", ["", "86675804012345X", "12", "+CGSN: "])
def test_bad_imei(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_imei(text)


# -- SIM ---------------------------------------------------------------------------------------

CPIN_TABLE = [
    ("READY", SimState.READY), ("SIM PIN", SimState.SIM_PIN), ("SIM PUK", SimState.SIM_PUK),
    ("SIM PIN2", SimState.SIM_PIN2), ("SIM PUK2", SimState.SIM_PUK2),
    ("PH-SIM PIN", SimState.PH_SIM_PIN), ("PH-FSIM PIN", SimState.PH_FSIM_PIN),
    ("PH-FSIM PUK", SimState.PH_FSIM_PUK), ("PH-NET PIN", SimState.PH_NET_PIN),
    ("PH-NET PUK", SimState.PH_NET_PUK), ("PH-NETSUB PIN", SimState.PH_NETSUB_PIN),
    ("PH-NETSUB PUK", SimState.PH_NETSUB_PUK), ("PH-SP PIN", SimState.PH_SP_PIN),
    ("PH-SP PUK", SimState.PH_SP_PUK), ("PH-CORP PIN", SimState.PH_CORP_PIN),
    ("PH-CORP PUK", SimState.PH_CORP_PUK),
]


@pytest.mark.parametrize(("code", "state"), CPIN_TABLE)
def test_every_cpin_state(code: str, state: SimState) -> None:
    assert parse_cpin(f"+CPIN: {code}") is state
    assert parse_cpin(f'+CPIN: "{code}"') is state  # some phones quote it


def test_pin2_is_not_taken_for_pin() -> None:
    assert parse_cpin("+CPIN: SIM PIN2") is SimState.SIM_PIN2
    assert SimState.SIM_PIN2.usable and not SimState.SIM_PIN2.locked
    assert SimState.SIM_PIN.locked and not SimState.SIM_PIN.usable


@pytest.mark.parametrize("line", ["+CPIN: WHATEVER", "+CPIN: ", "+CSQ: READY", "READY"])
def test_unknown_cpin_is_garbled(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_cpin(line)


@pytest.mark.parametrize(("code", "state"), [
    (10, SimState.NOT_INSERTED), (11, SimState.SIM_PIN), (12, SimState.SIM_PUK),
    (13, SimState.FAILURE), (14, SimState.BUSY), (15, SimState.WRONG), (5, SimState.PH_SIM_PIN),
    (17, SimState.SIM_PIN2), (18, SimState.SIM_PUK2),
])
def test_cme_codes_that_describe_the_sim(code: int, state: SimState) -> None:
    assert SIM_STATE_BY_CME[code] is state


def test_missing_sim_is_not_present() -> None:
    assert not SimState.NOT_INSERTED.present and not SimState.NOT_INSERTED.usable
    assert SimState.READY.present and SimState.READY.usable


# -- signal ------------------------------------------------------------------------------------

CSQ_DBM = [(0, -113), (1, -111), (2, -109), (3, -107), (10, -93), (15, -83), (20, -73),
           (29, -55), (30, -53), (31, -51), (99, None),
           (100, -116), (101, -115), (191, -25), (199, None)]


@pytest.mark.parametrize(("rssi", "dbm"), CSQ_DBM)
def test_csq_rssi_to_dbm(rssi: int, dbm: int | None) -> None:
    assert parse_csq(f"+CSQ: {rssi},99").dbm == dbm


@pytest.mark.parametrize("rssi", range(2, 31))
def test_csq_middle_range_is_2_db_steps(rssi: int) -> None:
    assert SignalQuality(rssi, 99).dbm == -113 + 2 * rssi


@pytest.mark.parametrize(("ber", "expected"), [*((b, b) for b in range(8)), (99, None)])
def test_csq_ber(ber: int, expected: int | None) -> None:
    assert parse_csq(f"+CSQ: 20,{ber}").ber_class == expected


@pytest.mark.parametrize(("rssi", "percent"), [(0, 0), (31, 100), (15, 48), (99, None)])
def test_csq_percent_like_modemmanager(rssi: int, percent: int | None) -> None:
    assert SignalQuality(rssi, 99).percent == percent


@pytest.mark.parametrize(("line", "rssi", "ber", "named"), [
    ("+CSQ: 32,99", None, 99, "+CSQ <rssi> '32'"), ("+CSQ: 98,99", None, 99, "+CSQ <rssi> '98'"),
    ("+CSQ: 192,99", None, 99, "+CSQ <rssi> '192'"), ("+CSQ: 20,8", 20, None, "+CSQ <ber> '8'"),
    ("+CSQ: 20", 20, None, "+CSQ <ber> missing"), ("+CSQ: -1,99", None, 99, "+CSQ <rssi> '-1'"),
])
def test_odd_csq_field_is_named_and_the_other_kept(line: str, rssi: int | None, ber: int | None,
                                                    named: str) -> None:
    csq = parse_csq(line)
    assert (csq.rssi, csq.ber, csq.unreadable) == (rssi, ber, (named,))


def test_csq_with_spaces_and_a_trailing_field() -> None:
    assert parse_csq("+CSQ: 2 0, 99, 1") == SignalQuality(20, 99)


@pytest.mark.parametrize("line", ["+CSQ: ,", "+CSQ: a,b", "+CESQ: 20,99", "+CSQ: 200,98"])
def test_bad_csq_is_garbled(line: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_csq(line)
    assert info.value.kind == "garbled"


@pytest.mark.parametrize(("raw", "db"), [(0, -20.0), (100, 0.0), (111, 2.2), (195, 19.0),
                                         (250, 30.0)])
def test_qcsq_lte_sinr_is_in_fifths_of_a_db(raw: int, db: float) -> None:
    signal = parse_qcsq(f'+QCSQ: "LTE",-52,-81,{raw},-10')
    assert (signal.sysmode, signal.rssi_dbm, signal.rsrp_dbm, signal.rsrq_db) == (
        "LTE", -52, -81, -10)
    assert signal.sinr_db == db


def test_qcsq_other_modes() -> None:
    assert parse_qcsq('+QCSQ: "NOSERVICE"').rsrp_dbm is None
    assert parse_qcsq('+QCSQ: "GSM",-71').rssi_dbm == -71
    wcdma = parse_qcsq('+QCSQ: "WCDMA",-70,-80,-9')
    assert (wcdma.rssi_dbm, wcdma.rscp_dbm, wcdma.sinr_db) == (-70, -80, None)
    assert parse_qcsq('+QCSQ: "eMTC",-70,-95,120,-11').sinr_db == 4.0


def test_odd_qcsq_fields_are_named_and_the_mode_kept() -> None:
    sinr = parse_qcsq('+QCSQ: "LTE",-52,-81,251,-10')
    assert (sinr.rsrp_dbm, sinr.sinr_db, sinr.unreadable) == (-81, None, ("+QCSQ <sinr> '251'",))
    rsrp = parse_qcsq('+QCSQ: "LTE",-52,x,111,-10')
    assert (rsrp.rsrp_dbm, rsrp.sinr_db, rsrp.unreadable) == (None, 2.2, ("+QCSQ LTE value 'x'",))
    assert parse_qcsq('+QCSQ: "LTE",-52,-81').rsrp_dbm == -81
    assert parse_qcsq('+QCSQ: "NR5G",-52').sysmode == "NR5G"  # a newer mode is kept


@pytest.mark.parametrize("line", ["+QCSQ: ", "+CSQ: 1,2", '+QCSQ: ""'])
def test_bad_qcsq_is_garbled(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_qcsq(line)


# -- registration ------------------------------------------------------------------------------

# protocols.md §4.5 stat table: (stat, registered, roaming)
STAT_TABLE = [
    (0, False, False), (1, True, False), (2, False, False), (3, False, False),
    (4, False, False), (5, True, True), (6, True, False), (7, True, True), (8, False, False),
    (9, True, False), (10, True, True), (11, False, False),
]
REG_PREFIXES = ["+CREG", "+CGREG", "+CEREG"]


@pytest.mark.parametrize("prefix", REG_PREFIXES)
@pytest.mark.parametrize(("stat", "registered", "roaming"), STAT_TABLE)
def test_every_stat_in_both_read_forms(prefix: str, stat: int, registered: bool,
                                       roaming: bool) -> None:
    short = parse_registration(f"{prefix}: 0,{stat}")
    assert short == Registration(prefix, RegistrationStat(stat), n=0)
    long = parse_registration(f'{prefix}: 2,{stat},"1A2B","01C3D4E5",7')
    assert long == Registration(prefix, RegistrationStat(stat), 2, "1A2B", "01C3D4E5", 7)
    for reg in (short, long):
        assert (reg.registered, reg.roaming, reg.unsolicited) == (registered, roaming, False)


@pytest.mark.parametrize("prefix", REG_PREFIXES)
@pytest.mark.parametrize(("stat", "registered", "roaming"), STAT_TABLE)
def test_every_stat_in_both_urc_forms(prefix: str, stat: int, registered: bool,
                                      roaming: bool) -> None:
    short = parse_registration(f"{prefix}: {stat}")
    long = parse_registration(f'{prefix}: {stat},"1A2B","01C3D4E5",7')
    assert short == Registration(prefix, RegistrationStat(stat))
    assert long == Registration(prefix, RegistrationStat(stat), None, "1A2B", "01C3D4E5", 7)
    for reg in (short, long):
        assert (reg.registered, reg.roaming, reg.unsolicited) == (registered, roaming, True)


def test_registration_variants() -> None:
    # Unquoted LAC (some vendors), CGREG's trailing RAC, CEREG n=4 PSM timers, empty location.
    assert parse_registration("+CREG: 2,1,31AE,5B7C").area == "31AE"
    assert parse_registration('+CGREG: 2,1,"31AE","5B7C",2,"A5"').act == 2
    psm = parse_registration('+CEREG: 4,1,"D6E7","844D92A",7,,,"00100100","01000111"')
    assert (psm.n, psm.stat, psm.cell_id) == (4, RegistrationStat.HOME, "844D92A")
    assert parse_registration("+CEREG: 2,4,,,").area is None


@pytest.mark.parametrize(("act", "name"), sorted(ACCESS_TECHNOLOGIES.items()))
def test_access_technologies(act: int, name: str) -> None:
    assert parse_registration(f'+CEREG: 2,1,"D6E7","844D92A",{act}').technology == name


@pytest.mark.parametrize(("line", "stat", "named"), [
    ("+CREG: 0,12", None, "+CREG <stat> 12 (not a 27.007 value)"),
    ("+CEREG: 6,1", RegistrationStat.HOME, "+CEREG <n> '6'"),
    ('+CREG: 2,1,"XYZ","01"', RegistrationStat.HOME, "+CREG <lac> '\"XYZ\"'"),
    ('+CEREG: 2,5,"D6E7","844D92A",42', RegistrationStat.ROAMING,
     "+CEREG <AcT> 42 (not a 27.007 value)"),
])
def test_odd_registration_field_is_named_and_stat_kept(line: str, stat: RegistrationStat | None,
                                                       named: str) -> None:
    reg = parse_registration(line)
    assert (reg.stat, reg.unreadable) == (stat, (named,))


@pytest.mark.parametrize("line", ["+CREG: x", "+CREG: ", "+CSQ: 0,1", "CREG: 0,1",
                                  "+CREG: 1,x"])
def test_bad_registration_is_garbled(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_registration(line)


# -- operator ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "operator"), [
    ("+COPS: 0", Operator(0)),
    ('+COPS: 0,0,"Example Mobile",7', Operator(0, 0, "Example Mobile", 7)),
    ('+COPS: 1,1,"EXMOB"', Operator(1, 1, "EXMOB")),
    ('+COPS: 0,2,"26202",7', Operator(0, 2, "26202", 7)),
    ('+COPS: 4,2,"310410",2', Operator(4, 2, "310410", 2)),
    ("+COPS: 2", Operator(2)),
    ("+COPS: 0,0", Operator(0, 0)),
])
def test_cops(line: str, operator: Operator) -> None:
    assert parse_cops(line) == operator


def test_cops_technology_name() -> None:
    assert parse_cops('+COPS: 0,0,"Example Mobile",7').technology == "E-UTRAN"


@pytest.mark.parametrize(("line", "operator"), [
    ('+COPS: 5,0,"x"', Operator(None, 0, "x", None, ("+COPS <mode> '5'",))),
    ('+COPS: 0,3,"x",7', Operator(0, None, "x", 7, ("+COPS <format> '3'",))),
    ('+COPS: 0,0,"x",7,1', Operator(0, 0, "x", 7)),
    ('+COPS: 0,0,"x",q', Operator(0, 0, "x", None, ("+COPS <AcT> 'q'",))),
])
def test_odd_cops_field_is_named_and_the_name_kept(line: str, operator: Operator) -> None:
    assert parse_cops(line) == operator


@pytest.mark.parametrize("line", ["+COPS: ", "+COPS: x", "+CSQ: 0", "+COPS: 5"])
def test_bad_cops_is_garbled(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_cops(line)
