"""PN532 commands and responses as frozen dataclasses (UM0701-02 §7; protocols.md §1.4).

A command knows its code, its payload (PD0..PDn, code first), how long the chip may take to answer,
and how to parse the response payload. A response's first byte is always the command code + 1;
anything else is ``ProtocolError(kind="unexpected")``; a short or malformed body is
``kind="framing"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Protocol

from posdiag.drivers.errors import ProtocolError


class Command(Protocol):
    """What the device layer needs from a command."""

    CODE: ClassVar[int]

    @property
    def timeout_s(self) -> float: ...

    def payload(self) -> bytes: ...


def response_body(code: int, payload: bytes) -> bytes:
    """The response data after PD0, once PD0 is checked to be ``code + 1``."""
    if not payload:
        raise ProtocolError("empty response frame", kind="framing")
    if payload[0] != (code + 1) & 0xFF:
        raise ProtocolError(f"response code {payload[0]:#04x} to command {code:#04x} "
                            f"(expected {(code + 1) & 0xFF:#04x})", kind="unexpected")
    return payload[1:]


def _expect_empty(code: int, payload: bytes) -> None:
    body = response_body(code, payload)
    if body:
        raise ProtocolError(f"response to {code:#04x} carries {len(body)} unexpected bytes",
                            kind="framing")


# -- GetFirmwareVersion 0x02 ------------------------------------------------------------------

SUPPORT_ISO14443A = 0x01
SUPPORT_ISO14443B = 0x02
SUPPORT_ISO18092 = 0x04
IC_PN532 = 0x32


@dataclass(frozen=True)
class FirmwareVersion:
    """``D5 03 IC Ver Rev Support``. A PN532 C106 answers 32 01 06 07."""

    ic: int
    version: int
    revision: int
    support: int

    def __post_init__(self) -> None:
        for name in ("ic", "version", "revision", "support"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} must be one byte")

    @property
    def is_pn532(self) -> bool:
        return self.ic == IC_PN532

    @property
    def version_text(self) -> str:
        return f"{self.version}.{self.revision}"

    @property
    def supports_iso14443a(self) -> bool:
        return bool(self.support & SUPPORT_ISO14443A)

    @property
    def supports_iso14443b(self) -> bool:
        return bool(self.support & SUPPORT_ISO14443B)

    @property
    def supports_iso18092(self) -> bool:
        return bool(self.support & SUPPORT_ISO18092)


@dataclass(frozen=True)
class GetFirmwareVersion:
    CODE: ClassVar[int] = 0x02
    timeout_s: float = 0.35  # libnfc default command timeout; nfcpy uses 0.1 s

    def payload(self) -> bytes:
        return bytes([self.CODE])

    def parse(self, payload: bytes) -> FirmwareVersion:
        body = response_body(self.CODE, payload)
        if len(body) != 4:
            raise ProtocolError(f"firmware version has {len(body)} bytes, expected 4",
                                kind="framing")
        return FirmwareVersion(*body)


# -- SAMConfiguration 0x14 --------------------------------------------------------------------

class SamMode(IntEnum):
    NORMAL = 0x01
    VIRTUAL_CARD = 0x02
    WIRED_CARD = 0x03
    DUAL_CARD = 0x04


@dataclass(frozen=True)
class SAMConfiguration:
    """``D4 14 Mode [Timeout [IRQ]]``; also the command that takes a C106 out of LowVbat."""

    CODE: ClassVar[int] = 0x14
    mode: SamMode = SamMode.NORMAL
    timeout_units: int | None = None  # 50 ms units; mandatory in virtual card mode only
    irq: int | None = None
    timeout_s: float = 1.0  # libnfc allows 1 s for SAMConfiguration at wake-up

    def __post_init__(self) -> None:
        SamMode(self.mode)
        if self.timeout_units is not None and not 0 <= self.timeout_units <= 0xFF:
            raise ValueError("SAM timeout must be one byte")
        if self.irq is not None and self.timeout_units is None:
            raise ValueError("IRQ needs the timeout byte before it")
        if self.irq not in (None, 0, 1):
            raise ValueError("IRQ must be 0 or 1")
        if self.mode == SamMode.VIRTUAL_CARD and self.timeout_units is None:
            raise ValueError("virtual card mode needs a timeout")

    def payload(self) -> bytes:
        extra = [b for b in (self.timeout_units, self.irq) if b is not None]
        return bytes([self.CODE, int(self.mode), *extra])

    def parse(self, payload: bytes) -> None:
        _expect_empty(self.CODE, payload)


# -- Diagnose 0x00 ----------------------------------------------------------------------------

class DiagnoseTest(IntEnum):
    COMMUNICATION_LINE = 0x00
    ROM = 0x01
    RAM = 0x02
    POLLING = 0x04
    ECHO_BACK = 0x05
    ATTENTION = 0x06
    ANTENNA = 0x07


LINE_TEST_MAX_DATA = 262
DEFAULT_ANTENNA_THRESHOLD = 0x31  # andet_ithl/ithh mid-range + andet_en, as one open driver starts

# Diagnose answer times: ROM/RAM checks take long (dotnet/iot waits 1.5 s), the rest less.
_DIAGNOSE_TIMEOUT_S = {
    DiagnoseTest.COMMUNICATION_LINE: 0.5,
    DiagnoseTest.ROM: 1.5,
    DiagnoseTest.RAM: 1.5,
    DiagnoseTest.POLLING: 1.5,
    DiagnoseTest.ECHO_BACK: 1.0,
    DiagnoseTest.ATTENTION: 1.0,
    DiagnoseTest.ANTENNA: 1.0,
}
_DIAGNOSE_IN_LEN = {
    DiagnoseTest.ROM: 0,
    DiagnoseTest.RAM: 0,
    DiagnoseTest.POLLING: 1,
    DiagnoseTest.ECHO_BACK: 3,
    DiagnoseTest.ATTENTION: 0,
    DiagnoseTest.ANTENNA: 1,
}


@dataclass(frozen=True)
class DiagnoseResult:
    """``D5 01 OutParam…``: what the chip said for one self-test."""

    test: DiagnoseTest
    out: bytes

    @property
    def status_byte(self) -> int | None:
        """The one-byte verdict of ROM/RAM/antenna/attention tests (0x00 = good)."""
        return self.out[0] if len(self.out) == 1 else None


@dataclass(frozen=True)
class Diagnose:
    """``D4 00 NumTst [InParam…]``. Use the named constructors for the tests a probe runs."""

    CODE: ClassVar[int] = 0x00
    test: DiagnoseTest
    in_params: bytes = b""

    def __post_init__(self) -> None:
        DiagnoseTest(self.test)
        if self.test == DiagnoseTest.COMMUNICATION_LINE:
            if len(self.in_params) > LINE_TEST_MAX_DATA:
                raise ValueError(f"line test carries at most {LINE_TEST_MAX_DATA} bytes")
        elif len(self.in_params) != _DIAGNOSE_IN_LEN[self.test]:
            raise ValueError(f"diagnose test {int(self.test):#04x} takes "
                             f"{_DIAGNOSE_IN_LEN[self.test]} parameter bytes")

    @classmethod
    def communication_line(cls, data: bytes) -> Diagnose:
        return cls(DiagnoseTest.COMMUNICATION_LINE, data)

    @classmethod
    def rom(cls) -> Diagnose:
        return cls(DiagnoseTest.ROM)

    @classmethod
    def ram(cls) -> Diagnose:
        return cls(DiagnoseTest.RAM)

    @classmethod
    def antenna(cls, threshold: int = DEFAULT_ANTENNA_THRESHOLD) -> Diagnose:
        if not 0 <= threshold <= 0xFF:
            raise ValueError("antenna threshold must be one byte")
        return cls(DiagnoseTest.ANTENNA, bytes([threshold]))

    @property
    def timeout_s(self) -> float:
        return _DIAGNOSE_TIMEOUT_S[self.test]

    def payload(self) -> bytes:
        return bytes([self.CODE, int(self.test)]) + self.in_params

    def parse(self, payload: bytes) -> DiagnoseResult:
        body = response_body(self.CODE, payload)
        if self.test == DiagnoseTest.ECHO_BACK:
            expected: int | None = 0
        elif self.test == DiagnoseTest.COMMUNICATION_LINE:
            expected = None  # compared with what was sent by the caller
        else:
            expected = 1
        if expected is not None and len(body) != expected:
            raise ProtocolError(f"diagnose {int(self.test):#04x} answered {len(body)} bytes, "
                                f"expected {expected}", kind="framing")
        return DiagnoseResult(self.test, body)


# -- RFConfiguration 0x32 ---------------------------------------------------------------------

RF_ITEM_MAX_RETRIES = 0x05
RETRY_FOREVER = 0xFF


@dataclass(frozen=True)
class RFConfiguration:
    """``D4 32 CfgItem ConfigurationData…``; the diagnostic agent only sets max retries."""

    CODE: ClassVar[int] = 0x32
    item: int
    data: bytes
    timeout_s: float = 0.35

    def __post_init__(self) -> None:
        if not 0 <= self.item <= 0xFF:
            raise ValueError("configuration item must be one byte")
        if len(self.data) > 11:
            raise ValueError("RFConfiguration items carry at most 11 bytes")

    @classmethod
    def max_retries(cls, *, atr: int = RETRY_FOREVER, psl: int = 0x01,
                    passive_activation: int = RETRY_FOREVER) -> RFConfiguration:
        """Item 0x05: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation (0xFF = retry forever)."""
        for value in (atr, psl, passive_activation):
            if not 0 <= value <= 0xFF:
                raise ValueError("retry counts are one byte each")
        return cls(RF_ITEM_MAX_RETRIES, bytes([atr, psl, passive_activation]))

    def payload(self) -> bytes:
        return bytes([self.CODE, self.item]) + self.data

    def parse(self, payload: bytes) -> None:
        _expect_empty(self.CODE, payload)


# -- InListPassiveTarget 0x4A -----------------------------------------------------------------

class BaudType(IntEnum):
    TYPE_A_106 = 0x00
    FELICA_212 = 0x01
    FELICA_424 = 0x02
    TYPE_B_106 = 0x03
    JEWEL_106 = 0x04


@dataclass(frozen=True)
class PassiveTarget:
    """One target of an InListPassiveTarget answer.

    ``uid`` is NFCID1 (type A), NFCID2 (FeliCa), PUPI (type B) or the Jewel ID. It identifies a
    card, so it stays out of ``repr`` and the device layer only reports its length.
    """

    number: int
    baud_type: BaudType
    uid: bytes = field(repr=False)
    sens_res: bytes = b""
    sel_res: int | None = None
    ats: bytes = field(default=b"", repr=False)

    @property
    def uid_length(self) -> int:
        return len(self.uid)

    @property
    def iso14443_4(self) -> bool:
        """Type A target that speaks ISO/IEC 14443-4 (SEL_RES bit 6), e.g. a payment card."""
        return self.sel_res is not None and bool(self.sel_res & 0x20)


@dataclass(frozen=True)
class PassiveTargets:
    targets: tuple[PassiveTarget, ...]

    @property
    def found(self) -> bool:
        return bool(self.targets)


class _Cursor:
    """Reads a response body front to back; running short is a framing error."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ProtocolError("target data shorter than its fields say", kind="framing")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    @property
    def left(self) -> int:
        return len(self._data) - self._pos


def _parse_target(cur: _Cursor, baud_type: BaudType) -> PassiveTarget:
    number = cur.byte()
    if baud_type == BaudType.TYPE_A_106:
        sens_res = cur.take(2)
        sel_res = cur.byte()
        uid = cur.take(cur.byte())
        ats = b""
        if sel_res & 0x20:
            ats_len = cur.byte()  # TL counts itself
            if ats_len < 1:
                raise ProtocolError("ATS length byte is 0", kind="framing")
            ats = bytes([ats_len]) + cur.take(ats_len - 1)
        return PassiveTarget(number, baud_type, uid, sens_res, sel_res, ats)
    if baud_type in (BaudType.FELICA_212, BaudType.FELICA_424):
        pol_len = cur.byte()  # counts itself: len, 0x01, NFCID2t(8), PAD(8) [, system code(2)]
        if pol_len < 18:
            raise ProtocolError("FeliCa POL_RES shorter than 18 bytes", kind="framing")
        pol = cur.take(pol_len - 1)
        return PassiveTarget(number, baud_type, pol[1:9])
    if baud_type == BaudType.TYPE_B_106:
        atqb = cur.take(12)
        cur.take(cur.byte())  # ATTRIB_RES
        return PassiveTarget(number, baud_type, atqb[1:5])
    sens_res = cur.take(2)
    return PassiveTarget(number, baud_type, cur.take(4), sens_res)


@dataclass(frozen=True)
class InListPassiveTarget:
    """``D4 4A MaxTg BrTy [InitiatorData]``.

    With the default RFConfiguration the chip retries forever and only answers when a card comes;
    the device layer sets finite retries first and aborts with an ACK when ``timeout_s`` passes.
    """

    CODE: ClassVar[int] = 0x4A
    max_targets: int = 1
    baud_type: BaudType = BaudType.TYPE_A_106
    initiator_data: bytes = b""
    timeout_s: float = 1.0  # nfcpy

    def __post_init__(self) -> None:
        if self.max_targets not in (1, 2):
            raise ValueError("the PN532 lists 1 or 2 targets")
        BaudType(self.baud_type)
        if self.baud_type == BaudType.TYPE_B_106 and not self.initiator_data:
            raise ValueError("type B polling needs the AFI byte as initiator data")
        if self.timeout_s <= 0:
            raise ValueError("timeout must be positive")

    def payload(self) -> bytes:
        return bytes([self.CODE, self.max_targets, int(self.baud_type)]) + self.initiator_data

    def parse(self, payload: bytes) -> PassiveTargets:
        body = response_body(self.CODE, payload)
        if not body:
            raise ProtocolError("InListPassiveTarget answer without NbTg", kind="framing")
        count = body[0]
        if count > self.max_targets:
            raise ProtocolError(f"{count} targets listed, at most {self.max_targets} asked",
                                kind="framing")
        cur = _Cursor(body[1:])
        targets = tuple(_parse_target(cur, BaudType(self.baud_type)) for _ in range(count))
        if cur.left:
            raise ProtocolError(f"{cur.left} bytes after the target data", kind="framing")
        return PassiveTargets(targets)
