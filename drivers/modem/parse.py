"""Typed values of the 27.007 / Quectel answers a diagnostic probe reads, and their parsers.

Every parser takes one information line (``+CSQ: 20,99``) and returns a frozen dataclass, or raises
``ProtocolError(kind="garbled")`` when the line breaks the documented format or range.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from posdiag.drivers.modem.at import garbled, payload_of, split_fields, unquote


def _int(field: str, what: str, *, signed: bool = False) -> int:
    text = field.strip()
    digits = text[1:] if signed and text.startswith("-") else text
    if not digits.isdigit() or not digits.isascii():
        raise garbled(f"{what}: {field!r} is not a number")
    return int(text)


def _hex(field: str, what: str) -> str | None:
    """LAC/TAC/cell id: a hex string, quoted on most modems; empty means not given."""
    text = unquote(field).strip().upper()
    if not text:
        return None
    if not all(c in "0123456789ABCDEF" for c in text):
        raise garbled(f"{what}: {field!r} is not hexadecimal")
    return text


# -- identity ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """+CGMI / +CGMM / +CGMR / +CGSN (27.007 §5.1–5.4)."""

    manufacturer: str
    model: str
    revision: str
    imei: str | None = None

    def __post_init__(self) -> None:
        for name in ("manufacturer", "model", "revision"):
            if not getattr(self, name).strip():
                raise garbled(f"empty {name} in modem identity")
        if self.imei is not None and not (self.imei.isdigit() and 14 <= len(self.imei) <= 17):
            # 14 digits + check digit (IMEI) or 16 (IMEISV)
            raise garbled(f"IMEI {self.imei!r} is not 14–17 digits")


def parse_imei(text: str) -> str:
    """``AT+CGSN`` text, bare or as ``+CGSN: "<imei>"`` (newer 27.007)."""
    value = unquote(text.split(":", 1)[1]) if text.upper().startswith("+CGSN:") else text
    value = unquote(value.strip())
    if not (value.isdigit() and value.isascii() and 14 <= len(value) <= 17):
        raise garbled(f"IMEI {text!r} is not 14–17 digits")
    return value


def parse_ati(lines: tuple[str, ...]) -> Identity:
    """``ATI`` on Quectel/SIMCom: manufacturer, model, ``Revision: <rev>`` on separate lines."""
    texts = [line.strip() for line in lines if line.strip()]
    revision = next((t.split(":", 1)[1].strip() for t in texts
                     if t.lower().startswith("revision:")), None)
    rest = [t for t in texts if not t.lower().startswith("revision:")]
    if len(rest) < 2 or not revision:
        raise garbled(f"ATI answer {texts!r} lacks manufacturer, model or revision")
    return Identity(manufacturer=rest[0], model=rest[1], revision=revision)


# -- SIM ---------------------------------------------------------------------------------------

class SimState(enum.StrEnum):
    """What ``AT+CPIN?`` says, or what its +CME ERROR means for the SIM (27.007 §8.3)."""

    READY = "ready"
    SIM_PIN = "sim_pin"
    SIM_PUK = "sim_puk"
    SIM_PIN2 = "sim_pin2"
    SIM_PUK2 = "sim_puk2"
    PH_SIM_PIN = "ph_sim_pin"
    PH_FSIM_PIN = "ph_fsim_pin"
    PH_FSIM_PUK = "ph_fsim_puk"
    PH_NET_PIN = "ph_net_pin"
    PH_NET_PUK = "ph_net_puk"
    PH_NETSUB_PIN = "ph_netsub_pin"
    PH_NETSUB_PUK = "ph_netsub_puk"
    PH_SP_PIN = "ph_sp_pin"
    PH_SP_PUK = "ph_sp_puk"
    PH_CORP_PIN = "ph_corp_pin"
    PH_CORP_PUK = "ph_corp_puk"
    NOT_INSERTED = "not_inserted"  # +CME ERROR: 10
    FAILURE = "failure"            # 13
    BUSY = "busy"                  # 14 (still initialising)
    WRONG = "wrong"                # 15

    @property
    def present(self) -> bool:
        return self is not SimState.NOT_INSERTED

    @property
    def usable(self) -> bool:
        """The modem can register with this SIM (PIN2/PUK2 only guard some phonebook features)."""
        return self in (SimState.READY, SimState.SIM_PIN2, SimState.SIM_PUK2)

    @property
    def locked(self) -> bool:
        """A PIN or PUK must be entered before the SIM can be used."""
        return self.value.endswith(("_pin", "_puk"))


# <code> texts of +CPIN (ModemManager's unlock_results table).
_CPIN_CODES: dict[str, SimState] = {
    "READY": SimState.READY,
    "SIM PIN": SimState.SIM_PIN,
    "SIM PUK": SimState.SIM_PUK,
    "SIM PIN2": SimState.SIM_PIN2,
    "SIM PUK2": SimState.SIM_PUK2,
    "PH-SIM PIN": SimState.PH_SIM_PIN,
    "PH-FSIM PIN": SimState.PH_FSIM_PIN,
    "PH-FSIM PUK": SimState.PH_FSIM_PUK,
    "PH-NET PIN": SimState.PH_NET_PIN,
    "PH-NET PUK": SimState.PH_NET_PUK,
    "PH-NETSUB PIN": SimState.PH_NETSUB_PIN,
    "PH-NETSUB PUK": SimState.PH_NETSUB_PUK,
    "PH-SP PIN": SimState.PH_SP_PIN,
    "PH-SP PUK": SimState.PH_SP_PUK,
    "PH-CORP PIN": SimState.PH_CORP_PIN,
    "PH-CORP PUK": SimState.PH_CORP_PUK,
}

# +CME ERROR codes that answer AT+CPIN? with a SIM state instead of the state line.
SIM_STATE_BY_CME: dict[int, SimState] = {
    5: SimState.PH_SIM_PIN,
    6: SimState.PH_FSIM_PIN,
    7: SimState.PH_FSIM_PUK,
    10: SimState.NOT_INSERTED,
    11: SimState.SIM_PIN,
    12: SimState.SIM_PUK,
    13: SimState.FAILURE,
    14: SimState.BUSY,
    15: SimState.WRONG,
    17: SimState.SIM_PIN2,
    18: SimState.SIM_PUK2,
}


def parse_cpin(line: str) -> SimState:
    """``+CPIN: READY`` / ``+CPIN: SIM PIN`` / ``+CPIN: "PH-NET PUK"`` …"""
    code = " ".join(unquote(payload_of(line, "+CPIN")).upper().split())
    state = _CPIN_CODES.get(code)
    if state is None:
        raise garbled(f"unknown +CPIN state {code!r}")
    return state


# -- signal ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignalQuality:
    """``+CSQ: <rssi>,<ber>`` (27.007 §8.5), kept as the modem's indices."""

    rssi: int
    ber: int

    def __post_init__(self) -> None:
        # 100..191 and 199 are TD-SCDMA RSCP (Quectel EC25 manual); 192..198 are undefined.
        if not (0 <= self.rssi <= 31 or self.rssi == 99 or 100 <= self.rssi <= 191
                or self.rssi == 199):
            raise garbled(f"+CSQ rssi {self.rssi} out of range")
        if not (0 <= self.ber <= 7 or self.ber == 99):
            raise garbled(f"+CSQ ber {self.ber} out of range")

    @property
    def dbm(self) -> int | None:
        """Received power in dBm; 0 means ≤ −113, 31 means ≥ −51; None when not known (99)."""
        if self.rssi <= 31:
            return -113 + 2 * self.rssi
        if 100 <= self.rssi <= 191:
            return self.rssi - 216  # 100 → −116 dBm … 191 → −25 dBm
        return None

    @property
    def ber_class(self) -> int | None:
        """RXQUAL class 0..7 (TS 45.008 §8.2.4); None when not known (99, normal on LTE)."""
        return None if self.ber == 99 else self.ber

    @property
    def percent(self) -> int | None:
        """ModemManager's signal quality: clamp(rssi, 0, 31) · 100 / 31."""
        return self.rssi * 100 // 31 if self.rssi <= 31 else None


def parse_csq(line: str) -> SignalQuality:
    fields = split_fields(payload_of(line, "+CSQ"))
    if len(fields) != 2:
        raise garbled(f"+CSQ needs <rssi>,<ber>: {line!r}")
    return SignalQuality(_int(fields[0], "+CSQ rssi"), _int(fields[1], "+CSQ ber"))


@dataclass(frozen=True)
class QuectelSignal:
    """``+QCSQ: <sysmode>[,…]``. For LTE: rssi, rsrp (dBm), sinr, rsrq (dB)."""

    sysmode: str
    rssi_dbm: int | None = None
    rsrp_dbm: int | None = None
    sinr_db: float | None = None
    rsrq_db: int | None = None
    rscp_dbm: int | None = None

    def __post_init__(self) -> None:
        if not self.sysmode:
            raise garbled("empty +QCSQ sysmode")
        if self.sinr_db is not None and not -20.0 <= self.sinr_db <= 30.0:
            raise garbled(f"+QCSQ sinr {self.sinr_db} dB out of range")


_LTE_MODES = frozenset({"LTE", "EMTC", "NBIOT", "CAT-M", "CAT-NB"})


def parse_qcsq(line: str) -> QuectelSignal:
    fields = split_fields(payload_of(line, "+QCSQ"))
    mode = unquote(fields[0]).upper()
    values = [_int(f, "+QCSQ value", signed=True) for f in fields[1:]]
    if mode == "NOSERVICE":
        return QuectelSignal("NOSERVICE")
    if mode == "GSM" and len(values) >= 1:
        return QuectelSignal(mode, rssi_dbm=values[0])
    if mode in ("WCDMA", "TDSCDMA") and len(values) >= 2:
        return QuectelSignal(mode, rssi_dbm=values[0], rscp_dbm=values[1])
    if mode in _LTE_MODES and len(values) >= 4:
        raw_sinr = values[2]
        if not 0 <= raw_sinr <= 250:
            raise garbled(f"+QCSQ sinr {raw_sinr} outside 0..250")
        # Quectel codes SINR in 1/5 dB from −20 dB: 0..250 ↔ −20..+30 dB.
        return QuectelSignal(mode, rssi_dbm=values[0], rsrp_dbm=values[1],
                             sinr_db=round(raw_sinr / 5 - 20, 1), rsrq_db=values[3])
    raise garbled(f"+QCSQ answer not understood: {line!r}")


# -- registration ------------------------------------------------------------------------------

class RegistrationStat(enum.IntEnum):
    """<stat> of +CREG/+CGREG/+CEREG (27.007 §7.2, §10.1.19, §10.1.22)."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5
    SMS_ONLY_HOME = 6
    SMS_ONLY_ROAMING = 7
    EMERGENCY_ONLY = 8
    CSFB_NOT_PREFERRED_HOME = 9
    CSFB_NOT_PREFERRED_ROAMING = 10
    RLOS = 11  # attached for access to restricted local operator services

    @property
    def registered(self) -> bool:
        return self in _REGISTERED

    @property
    def roaming(self) -> bool:
        return self in (RegistrationStat.ROAMING, RegistrationStat.SMS_ONLY_ROAMING,
                        RegistrationStat.CSFB_NOT_PREFERRED_ROAMING)


_REGISTERED = frozenset({
    RegistrationStat.HOME, RegistrationStat.ROAMING, RegistrationStat.SMS_ONLY_HOME,
    RegistrationStat.SMS_ONLY_ROAMING, RegistrationStat.CSFB_NOT_PREFERRED_HOME,
    RegistrationStat.CSFB_NOT_PREFERRED_ROAMING,
})

# <AcT> (27.007 §7.3), as in ModemManager's get_mm_access_tech_from_etsi_access_tech.
ACCESS_TECHNOLOGIES: dict[int, str] = {
    0: "GSM", 1: "GSM compact", 2: "UTRAN", 3: "EDGE", 4: "HSDPA", 5: "HSUPA", 6: "HSPA",
    7: "E-UTRAN", 8: "EC-GSM-IoT", 9: "E-UTRAN NB-S1", 10: "E-UTRA-5GCN", 11: "NR-5GCN",
    12: "NG-RAN", 13: "EN-DC",
}

_REG_N_MAX = {"+CREG": 3, "+CGREG": 3, "+CEREG": 5, "+C5GREG": 3}


@dataclass(frozen=True)
class Registration:
    """One registration answer or URC. ``n`` is None for a URC (which omits it)."""

    command: str  # "+CREG" (circuit switched), "+CGREG" (GPRS), "+CEREG" (EPS/LTE)
    stat: RegistrationStat
    n: int | None = None
    area: str | None = None  # LAC (2G/3G) or TAC (LTE), hex
    cell_id: str | None = None  # hex
    act: int | None = None

    def __post_init__(self) -> None:
        if self.command not in _REG_N_MAX:
            raise ValueError(f"not a registration command: {self.command!r}")
        if self.n is not None and not 0 <= self.n <= _REG_N_MAX[self.command]:
            raise garbled(f"{self.command} <n> {self.n} out of range")
        if self.act is not None and self.act < 0:
            raise garbled(f"{self.command} <AcT> {self.act} out of range")

    @property
    def unsolicited(self) -> bool:
        return self.n is None

    @property
    def technology(self) -> str | None:
        return ACCESS_TECHNOLOGIES.get(self.act) if self.act is not None else None

    @property
    def registered(self) -> bool:
        return self.stat.registered

    @property
    def roaming(self) -> bool:
        return self.stat.roaming


def _stat(field: str, prefix: str) -> RegistrationStat:
    value = _int(field, f"{prefix} <stat>")
    try:
        return RegistrationStat(value)
    except ValueError:
        raise garbled(f"{prefix} <stat> {value} is not a 27.007 value") from None


def parse_registration(line: str) -> Registration:
    """``+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>…]]`` or its URC form without ``<n>``.

    Told apart like ``at._is_registration_urc``: the read answer's second field is a bare number.
    Fields after ``<AcT>`` (RAC, reject cause, PSM timers) are not needed for a diagnosis.
    """
    prefix = line.partition(":")[0].strip().upper()
    if prefix not in _REG_N_MAX:
        raise garbled(f"not a registration line: {line!r}")
    fields = split_fields(payload_of(line, prefix))
    if len(fields) >= 2 and fields[1].isdigit():
        n: int | None = _int(fields[0], f"{prefix} <n>")
        rest = fields[1:]
    else:
        n = None
        rest = fields
    stat = _stat(rest[0], prefix)
    area = _hex(rest[1], f"{prefix} <lac>") if len(rest) > 1 else None
    cell = _hex(rest[2], f"{prefix} <ci>") if len(rest) > 2 else None
    act = _int(rest[3], f"{prefix} <AcT>") if len(rest) > 3 and rest[3] else None
    return Registration(prefix, stat, n, area, cell, act)


# -- operator ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operator:
    """``+COPS: <mode>[,<format>,<oper>[,<AcT>]]`` (27.007 §7.3); just <mode> if unregistered."""

    mode: int
    format: int | None = None
    name: str | None = None  # long/short name or MCCMNC, per ``format``
    act: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.mode <= 4:
            raise garbled(f"+COPS <mode> {self.mode} out of range")
        if self.format is not None and not 0 <= self.format <= 2:
            raise garbled(f"+COPS <format> {self.format} out of range")
        if self.format == 2 and self.name is not None and not (
                self.name.isdigit() and 5 <= len(self.name) <= 6):
            raise garbled(f"+COPS numeric operator {self.name!r} is not MCC+MNC")

    @property
    def technology(self) -> str | None:
        return ACCESS_TECHNOLOGIES.get(self.act) if self.act is not None else None


def parse_cops(line: str) -> Operator:
    fields = split_fields(payload_of(line, "+COPS"))
    mode = _int(fields[0], "+COPS <mode>")
    if len(fields) == 1:
        return Operator(mode)
    if len(fields) == 2:
        # "+COPS: 0,0" (format set, no operator) is seen on some modules while searching.
        return Operator(mode, _int(fields[1], "+COPS <format>"))
    fmt = _int(fields[1], "+COPS <format>")
    name = unquote(fields[2]) or None
    act = _int(fields[3], "+COPS <AcT>") if len(fields) > 3 and fields[3] else None
    if len(fields) > 4:
        raise garbled(f"+COPS has too many fields: {line!r}")
    return Operator(mode, fmt, name, act)

