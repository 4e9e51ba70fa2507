"""Typed values of the 27.007 / Quectel answers a diagnostic probe reads, and their parsers.

Every parser takes one information line (``+CSQ: 20,99``) and returns a frozen dataclass, or raises
``ProtocolError(kind="garbled")`` when nothing in the line can be read. Real firmware bends the
formats (spaces inside fields, vendor fields, values newer than the release we know): a field
that cannot be read is left None and named in the value's ``unreadable``, and the rest is kept.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from posdiag.drivers.errors import ProtocolError
from posdiag.drivers.modem.at import (
    garbled,
    is_registration_urc,
    payload_of,
    split_fields,
    unquote,
)
from posdiag.drivers.modem.charset import decode_text

T = TypeVar("T")


def _int(field: str, what: str, *, signed: bool = False) -> int:
    text = "".join(unquote(field).split())
    digits = text[1:] if signed and text.startswith("-") else text
    if not digits.isdigit() or not digits.isascii() or len(digits) > 9:
        raise garbled(f"{what}: {field!r} is not a number")
    return int(text)


def _hex(field: str, what: str) -> str | None:
    """LAC/TAC/cell id: a hex string, quoted on most modems; empty means not given.

    Spaces some firmware pads the field with are dropped (``"  0 5"`` → ``05``).
    """
    text = "".join(unquote(field).split()).upper()
    if not text:
        return None
    if len(text) > 16 or not all(c in "0123456789ABCDEF" for c in text):
        raise garbled(f"{what}: {field!r} is not hexadecimal")
    return text


def _unreadable(what: str, field: str) -> str:
    """How an unreadable field is named in ``unreadable``: ``+CREG <lac> 'Z1'``."""
    shown = field if len(field) <= 24 else field[:21] + "..."
    return f"{what} {shown!r}"


# -- identity ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """+CGMI / +CGMM / +CGMR / +CGSN (27.007 §5.1–5.4) or V.250 ATI.

    Identity is nice to have, not needed for a diagnosis: a field is None when the modem refused
    or garbled it, and ``unreadable`` names what could not be read.
    """

    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    unreadable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("manufacturer", "model", "revision"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise garbled(f"empty {name} in modem identity")
        if self.imei is not None and not (self.imei.isdigit() and 14 <= len(self.imei) <= 17):
            # 14 digits + check digit (IMEI) or 16 (IMEISV)
            raise garbled(f"IMEI {self.imei!r} is not 14–17 digits")


def parse_imei(text: str) -> str:
    """``AT+CGSN`` text, bare or as ``+CGSN: "<imei>"`` (newer 27.007) or ``IMEI: <imei>``."""
    value = text.split(":", 1)[1] if text.upper().startswith(("+CGSN:", "IMEI:")) else text
    value = unquote(value.strip())
    if not (value.isdigit() and value.isascii() and 14 <= len(value) <= 17):
        raise garbled(f"IMEI {text!r} is not 14–17 digits")
    return value


_ATI_LABELS = {"manufacturer": "manufacturer", "model": "model", "revision": "revision",
               "imei": "imei"}


def parse_ati(lines: tuple[str, ...]) -> Identity:
    """``ATI``: Quectel prints manufacturer, model, ``Revision: <rev>`` on separate lines;
    Huawei and u-blox label every line (``Manufacturer: huawei``); SIMCom prints one line
    (``SIM800 R14.18``); Wavecom two (``WAVECOM MODEM`` / ``MULTIBAND  900E  1800``).
    Whatever is there is kept; capability lines (``+GCAP: …``) are skipped."""
    found: dict[str, str] = {}
    bare: list[str] = []
    for line in lines:
        text = " ".join(line.split())
        if not text or text.startswith("+"):
            continue
        label, sep, value = text.partition(":")
        key = _ATI_LABELS.get(label.strip().lower()) if sep else None
        if key is not None:
            if value.strip():
                found.setdefault(key, value.strip())
        else:
            bare.append(text)
    if len(bare) == 1 and "model" not in found:
        found["model"] = bare[0]
    elif bare:
        found.setdefault("manufacturer", bare[0])
        found.setdefault("model", bare[1])
    if not found:
        raise garbled(f"ATI answer {list(lines)!r} names no manufacturer, model or revision")
    imei = found.get("imei")
    unreadable: tuple[str, ...] = ()
    if imei is not None and not (imei.isdigit() and 14 <= len(imei) <= 17):
        unreadable, imei = (_unreadable("ATI IMEI", imei),), None
    return Identity(found.get("manufacturer"), found.get("model"), found.get("revision"), imei,
                    unreadable)


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
    # Not in 27.007, but printed by SIMCom and Telit firmware instead of +CME ERROR: 10/14.
    "NOT INSERTED": SimState.NOT_INSERTED,
    "SIM NOT INSERTED": SimState.NOT_INSERTED,
    "NOT READY": SimState.BUSY,
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

def _rssi_ok(rssi: int) -> bool:
    # 100..191 and 199 are TD-SCDMA RSCP (Quectel EC25 manual); 32..98 and 192..198 undefined.
    return 0 <= rssi <= 31 or rssi == 99 or 100 <= rssi <= 191 or rssi == 199


@dataclass(frozen=True)
class SignalQuality:
    """``+CSQ: <rssi>,<ber>`` (27.007 §8.5), kept as the modem's indices.

    ``rssi``/``ber`` are None when the field could not be read (named in ``unreadable``); 99 is
    the modem saying "not known or not detectable", which is a measurement.
    """

    rssi: int | None
    ber: int | None
    unreadable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rssi is not None and not _rssi_ok(self.rssi):
            raise garbled(f"+CSQ rssi {self.rssi} out of range")
        if self.ber is not None and not (0 <= self.ber <= 7 or self.ber == 99):
            raise garbled(f"+CSQ ber {self.ber} out of range")

    @property
    def undetectable(self) -> bool:
        """The modem measured no signal it can detect (rssi 99)."""
        return self.rssi == 99

    @property
    def dbm(self) -> int | None:
        """Received power in dBm; 0 means ≤ −113, 31 means ≥ −51; None when not known (99)."""
        if self.rssi is None:
            return None
        if self.rssi <= 31:
            return -113 + 2 * self.rssi
        if 100 <= self.rssi <= 191:
            return self.rssi - 216  # 100 → −116 dBm … 191 → −25 dBm
        return None

    @property
    def ber_class(self) -> int | None:
        """RXQUAL class 0..7 (TS 45.008 §8.2.4); None when not known (99, normal on LTE)."""
        return None if self.ber is None or self.ber == 99 else self.ber

    @property
    def percent(self) -> int | None:
        """ModemManager's signal quality: clamp(rssi, 0, 31) · 100 / 31."""
        return self.rssi * 100 // 31 if self.rssi is not None and self.rssi <= 31 else None


def parse_csq(line: str) -> SignalQuality:
    """``+CSQ: <rssi>,<ber>``; a field out of 27.007's range is unreadable, the other kept.
    Fields after ``<ber>`` (seen on some CDMA modules) are ignored."""
    fields = split_fields(payload_of(line, "+CSQ"))
    unreadable: list[str] = []

    def index(position: int, name: str, valid: Callable[[int], bool]) -> int | None:
        if position >= len(fields):
            unreadable.append(f"+CSQ <{name}> missing")
            return None
        try:
            value = _int(fields[position], f"+CSQ {name}")
        except ProtocolError:
            value = None
        if value is None or not valid(value):
            unreadable.append(_unreadable(f"+CSQ <{name}>", fields[position]))
            return None
        return value

    rssi = index(0, "rssi", _rssi_ok)
    ber = index(1, "ber", lambda b: 0 <= b <= 7 or b == 99)
    if rssi is None and ber is None:
        raise garbled(f"+CSQ answer not understood: {line!r}")
    return SignalQuality(rssi, ber, tuple(unreadable))


@dataclass(frozen=True)
class QuectelSignal:
    """``+QCSQ: <sysmode>[,…]``. For LTE: rssi, rsrp (dBm), sinr, rsrq (dB)."""

    sysmode: str
    rssi_dbm: int | None = None
    rsrp_dbm: int | None = None
    sinr_db: float | None = None
    rsrq_db: int | None = None
    rscp_dbm: int | None = None
    unreadable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sysmode:
            raise garbled("empty +QCSQ sysmode")
        if self.sinr_db is not None and not -20.0 <= self.sinr_db <= 30.0:
            raise garbled(f"+QCSQ sinr {self.sinr_db} dB out of range")


_LTE_MODES = frozenset({"LTE", "EMTC", "NBIOT", "CAT-M", "CAT-NB"})


def parse_qcsq(line: str) -> QuectelSignal:
    """Quectel ``+QCSQ`` (EC25 AT manual §6.x): a service report plus the radio figures of
    the mode. A figure that is not a number is unreadable; the others are kept."""
    fields = split_fields(payload_of(line, "+QCSQ"))
    mode = "".join(unquote(fields[0]).split()).upper()
    if not mode:
        raise garbled(f"+QCSQ without a sysmode: {line!r}")
    unreadable: list[str] = []
    values: list[int | None] = []
    for field in fields[1:]:
        try:
            values.append(_int(field, "+QCSQ value", signed=True))
        except ProtocolError:
            unreadable.append(_unreadable(f"+QCSQ {mode} value", field))
            values.append(None)
    values += [None] * (4 - len(values))
    if mode == "GSM":
        return QuectelSignal(mode, rssi_dbm=values[0], unreadable=tuple(unreadable))
    if mode in ("WCDMA", "TDSCDMA"):
        return QuectelSignal(mode, rssi_dbm=values[0], rscp_dbm=values[1],
                             unreadable=tuple(unreadable))
    if mode in _LTE_MODES:
        raw_sinr, sinr = values[2], None
        if raw_sinr is not None:
            if 0 <= raw_sinr <= 250:
                # Quectel codes SINR in 1/5 dB from −20 dB: 0..250 ↔ −20..+30 dB.
                sinr = round(raw_sinr / 5 - 20, 1)
            else:
                unreadable.append(_unreadable("+QCSQ <sinr>", str(raw_sinr)))
        return QuectelSignal(mode, rssi_dbm=values[0], rsrp_dbm=values[1], sinr_db=sinr,
                             rsrq_db=values[3], unreadable=tuple(unreadable))
    # NOSERVICE, or a mode this firmware knows and we do not: the report itself is kept.
    return QuectelSignal(mode, unreadable=tuple(unreadable))


# -- registration ------------------------------------------------------------------------------

class RegistrationStat(enum.IntEnum):
    """<stat> of +CREG/+CGREG/+CEREG/+C5GREG (27.007 §7.2, §10.1.20, §10.1.22, §10.1.51).

    6..11 arrived in later releases: "SMS only" (6, 7), emergency bearer services only (8),
    "CSFB not preferred" (9, 10: full registrations, only CS fallback is deprioritised) and
    attached for access to restricted local operator services, RLOS (11).
    """

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

_REG_N_MAX = {"+CREG": 3, "+CGREG": 4, "+CEREG": 5, "+C5GREG": 3}


@dataclass(frozen=True)
class Registration:
    """One registration answer or URC. ``n`` is None for a URC (which omits it).

    ``stat`` is None only when the modem's <stat> could not be read; every field that could not
    be read is named in ``unreadable`` and the others are kept.
    """

    command: str  # "+CREG" (circuit switched), "+CGREG" (GPRS), "+CEREG" (EPS/LTE), "+C5GREG"
    stat: RegistrationStat | None
    n: int | None = None
    area: str | None = None  # LAC (2G/3G) or TAC (LTE/5G), hex
    cell_id: str | None = None  # hex
    act: int | None = None
    rac: str | None = None  # routing area code, when the modem gives one
    unreadable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.command not in _REG_N_MAX:
            raise ValueError(f"not a registration command: {self.command!r}")
        if self.n is not None and not 0 <= self.n <= 5:
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
        return self.stat is not None and self.stat.registered

    @property
    def roaming(self) -> bool:
        return self.stat is not None and self.stat.roaming


def _looks_hex(field: str) -> bool:
    text = "".join(unquote(field).split()).upper()
    return bool(text) and all(c in "0123456789ABCDEF" for c in text)


def parse_registration(line: str) -> Registration:
    """``+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>…]]`` or its URC form without ``<n>``.

    Told apart like ``at.is_registration_urc``. Real firmware adds spaces inside fields,
    quotes the LAC/CI or not, puts a one-byte RAC between LAC and CI (27.007 puts it after
    <AcT> in +CGREG), and adds trailing vendor fields; fields after <AcT> (RAC, reject cause,
    PSM timers, vendor extras) are not needed for a diagnosis. A field that cannot be read is
    named in ``unreadable``; only a line with no readable <stat> at all is garbled.
    """
    prefix = "".join(line.partition(":")[0].split()).upper()
    if prefix not in _REG_N_MAX:
        raise garbled(f"not a registration line: {line!r}")
    fields = split_fields(payload_of(line, prefix))
    unreadable: list[str] = []
    n: int | None = None
    if is_registration_urc(line, prefix):
        rest = fields
    else:
        rest = fields[1:]
        try:
            n = _int(fields[0], f"{prefix} <n>")
        except ProtocolError:
            n = None
        if n is None or n > 5:
            unreadable.append(_unreadable(f"{prefix} <n>", fields[0]))
            n = None
    try:
        value = _int(rest[0], f"{prefix} <stat>")
    except ProtocolError:
        raise garbled(f"{prefix} <stat> {rest[0]!r} is not a number") from None
    try:
        stat: RegistrationStat | None = RegistrationStat(value)
    except ValueError:
        stat = None
        unreadable.append(f"{prefix} <stat> {value} (not a 27.007 value)")
    location = rest[1:]
    rac: str | None = None
    # A short hex field (one byte) before a long one is a RAC in front of the cell id.
    if (len(location) >= 3 and len("".join(unquote(location[1]).split())) <= 2
            and _looks_hex(location[1]) and len("".join(unquote(location[2]).split())) >= 3
            and _looks_hex(location[2])):
        rac = "".join(unquote(location[1]).split()).upper()
        location = [location[0], *location[2:]]

    def read(position: int, name: str, reader: Callable[[str, str], T]) -> T | None:
        if position >= len(location) or not location[position].strip():
            return None
        try:
            return reader(location[position], f"{prefix} <{name}>")
        except ProtocolError:
            unreadable.append(_unreadable(f"{prefix} <{name}>", location[position]))
            return None

    area = read(0, "lac" if prefix in ("+CREG", "+CGREG") else "tac", _hex)
    cell = read(1, "ci", _hex)
    act = read(2, "AcT", _int)
    if act is not None and act not in ACCESS_TECHNOLOGIES:
        unreadable.append(f"{prefix} <AcT> {act} (not a 27.007 value)")
        act = None
    return Registration(prefix, stat, n, area, cell, act, rac, tuple(unreadable))


# -- operator ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operator:
    """``+COPS: <mode>[,<format>,<oper>[,<AcT>]]`` (27.007 §7.3); just <mode> if unregistered.

    ``name`` is decoded from the modem's character set (``+CSCS``) when that is UCS2 or HEX.
    """

    mode: int | None
    format: int | None = None
    name: str | None = None  # long/short name or MCCMNC, per ``format``
    act: int | None = None
    unreadable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode is not None and not 0 <= self.mode <= 4:
            raise garbled(f"+COPS <mode> {self.mode} out of range")
        if self.format is not None and not 0 <= self.format <= 2:
            raise garbled(f"+COPS <format> {self.format} out of range")

    @property
    def technology(self) -> str | None:
        return ACCESS_TECHNOLOGIES.get(self.act) if self.act is not None else None


def parse_cops(line: str, charset: str | None = None) -> Operator:
    """``+COPS?`` answer; ``charset`` is the modem's ``+CSCS`` (None: not known)."""
    fields = split_fields(payload_of(line, "+COPS"))
    unreadable: list[str] = []

    def number(position: int, name: str, limit: int) -> int | None:
        if position >= len(fields) or not fields[position].strip():
            return None
        try:
            value = _int(fields[position], f"+COPS <{name}>")
        except ProtocolError:
            value = None
        if value is None or not 0 <= value <= limit:
            unreadable.append(_unreadable(f"+COPS <{name}>", fields[position]))
            return None
        return value

    mode = number(0, "mode", 4)
    fmt = number(1, "format", 2)
    name: str | None = None
    if len(fields) > 2:
        raw = unquote(fields[2]).strip()
        name = decode_text(raw, charset, numeric=fmt == 2) if raw else None
    act = number(3, "AcT", max(ACCESS_TECHNOLOGIES))
    if mode is None and fmt is None and name is None:
        raise garbled(f"+COPS answer not understood: {line!r}")
    return Operator(mode, fmt, name, act, tuple(unreadable))
