"""PC/SC card readers through pcscd: the service, the reader states, the card session, the ATR
and EMV (FCI) parsers, and the PN532 of a CCID contactless reader. pyscard is imported only when
a session is opened (the optional ``pcsc`` extra)."""

from __future__ import annotations

from posdiag.drivers.pcsc.atr import Atr, parse_atr
from posdiag.drivers.pcsc.emv import Application, Brand, Selection, brand_of, select_applications
from posdiag.drivers.pcsc.service import ServiceState, pcsc_clients, service_state
from posdiag.drivers.pcsc.session import CardSession, PcscContext, ReaderState
from posdiag.drivers.pcsc.tlv import Tlv, parse_tlv

__all__ = [
    "Application",
    "Atr",
    "Brand",
    "CardSession",
    "PcscContext",
    "ReaderState",
    "Selection",
    "ServiceState",
    "Tlv",
    "brand_of",
    "parse_atr",
    "parse_tlv",
    "pcsc_clients",
    "select_applications",
    "service_state",
]
