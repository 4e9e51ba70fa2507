"""EMV application selection by SELECT only (EMV 4.4 Book 1 §11.3, §12; ISO/IEC 7816-4 §7.1.1).

What goes out: SELECT of the PSE ``1PAY.SYS.DDF01`` (contact), the PPSE ``2PAY.SYS.DDF01``
(contactless), and by AID from the brand table when neither lists an application; GET RESPONSE
after ``61xx`` and one resend with the right Le after ``6Cxx`` (T=0 cases). Never READ RECORD:
the records hold the PAN and the track-2 equivalent, and nothing here may touch them. What comes
out: AIDs, labels, priorities and brands, which identify the application, not the card.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from posdiag.drivers.errors import DriverError, ProtocolError
from posdiag.drivers.pcsc import status_words as sw
from posdiag.drivers.pcsc.tlv import Tlv, find, parse_tlv

PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"
MAX_GET_RESPONSE = 8  # 8 x 256 bytes is far more than any FCI
_LABEL_MAX = 16  # tag 50 is 1-16 characters (Book 1 Annex B)
_DIGIT_RUN = re.compile(r"\d{8,}")


class Channel(Protocol):
    """One APDU out, the response (data + SW1 SW2) back. The session implements it."""

    def transmit(self, apdu: bytes) -> bytes: ...


@dataclass(frozen=True)
class Brand:
    id: str
    name: str
    rid: str
    aids: tuple[str, ...]


@cache
def brands() -> tuple[Brand, ...]:
    text = importlib.resources.files("posdiag.drivers.pcsc").joinpath("brands.toml").read_text()
    data = tomllib.loads(text)
    return tuple(Brand(b["id"], b["name"], b["rid"].upper(), tuple(a.upper() for a in b["aids"]))
                 for b in data["brand"])


def brand_of(aid: str) -> Brand | None:
    aid = aid.upper()
    return next((b for b in brands() if aid.startswith(b.rid)), None)


@dataclass(frozen=True)
class Application:
    """One payment application as the directory or its own FCI names it."""

    aid: str  # hex, upper case
    label: str | None
    priority: int | None  # tag 87 low nibble; 1 is the highest, None when not given
    source: str  # "pse", "ppse" or "aid" (selected from the brand table)
    blocked: bool = False

    @property
    def brand(self) -> Brand | None:
        return brand_of(self.aid)


@dataclass(frozen=True)
class Selection:
    """What selecting the directories (and then the first application) found."""

    pse: str  # "ok", "absent", "blocked", "invalidated", "error"
    ppse: str
    applications: tuple[Application, ...] = ()
    card_blocked: bool = False  # 6A81 to SELECT: the card is blocked (Book 1 §12.3.2)
    final: Application | None = None  # the one selected last, with its own FCI's answer
    notes: tuple[str, ...] = field(default=())

    @property
    def brand(self) -> Brand | None:
        app = self.final or (self.applications[0] if self.applications else None)
        return app.brand if app else None


def select_apdu(name: bytes, *, first: bool = True) -> bytes:
    """SELECT by DF name; P2 00 first occurrence (02 next), Le 00."""
    return bytes([0x00, 0xA4, 0x04, 0x00 if first else 0x02, len(name)]) + name + b"\x00"


def command(channel: Channel, apdu: bytes) -> tuple[bytes, int]:
    """Send ``apdu``; follow 61xx with GET RESPONSE and 6Cxx with a resend; (data, SW)."""
    resp = channel.transmit(apdu)
    data, status = _split(resp)
    if status >> 8 == 0x6C:
        resend = apdu[:-1] + bytes([status & 0xFF]) if len(apdu) > 4 else apdu + bytes(
            [status & 0xFF])
        data, status = _split(channel.transmit(resend))
    collected = data
    for _ in range(MAX_GET_RESPONSE):
        if status >> 8 != 0x61:
            break
        data, status = _split(channel.transmit(bytes([0x00, 0xC0, 0x00, 0x00, status & 0xFF])))
        collected += data
    else:
        if status >> 8 == 0x61:
            raise ProtocolError("card keeps answering 61xx (more data) to GET RESPONSE",
                                kind="status_word")
    return collected, status


def _split(resp: bytes) -> tuple[bytes, int]:
    if len(resp) < 2:
        raise ProtocolError(f"response of {len(resp)} bytes has no status word",
                            kind="no_status_word")
    return bytes(resp[:-2]), int.from_bytes(resp[-2:], "big")


def clean_label(raw: bytes) -> str | None:
    """Tag 50 is ans (printable ASCII); anything else, or a long digit run, is not shown."""
    text = raw[:_LABEL_MAX].decode("ascii", "replace")
    if not text or any(not (0x20 <= ord(c) < 0x7F) for c in text) or _DIGIT_RUN.search(text):
        return None
    return text.strip() or None


def directory_entries(fci: tuple[Tlv, ...], source: str) -> tuple[Application, ...]:
    """The ``61`` entries (4F AID, 50 label, 87 priority) under ``BF0C`` of a PSE/PPSE FCI."""
    apps = []
    bf0c = find(fci, 0xBF0C)
    for entry in (bf0c.find_all(0x61) if bf0c else ()):
        aid = entry.find(0x4F)
        if aid is None or not 5 <= len(aid.value) <= 16:
            continue
        label = entry.find(0x50)
        prio = entry.find(0x87)
        apps.append(Application(aid.value.hex().upper(),
                                clean_label(label.value) if label else None,
                                (prio.value[0] & 0x0F) or None if prio and prio.value else None,
                                source))
    return tuple(sorted(apps, key=lambda a: a.priority or 16))


def application_fci(fci: tuple[Tlv, ...], aid: str, source: str, *,
                    blocked: bool = False) -> Application:
    """An ADF's FCI: 84 DF name (the full AID), A5/50 label, A5/87 priority."""
    name = find(fci, 0x84)
    label = find(fci, 0x50)
    prio = find(fci, 0x87)
    full = name.value.hex().upper() if name and 5 <= len(name.value) <= 16 else aid
    return Application(full, clean_label(label.value) if label else None,
                       (prio.value[0] & 0x0F) or None if prio and prio.value else None,
                       source, blocked)


def _directory(channel: Channel, name: bytes, source: str) -> tuple[str, tuple[Application, ...]]:
    data, status = command(channel, select_apdu(name))
    if status == sw.OK:
        return "ok", directory_entries(parse_tlv(data), source)
    if status == sw.NOT_FOUND:
        return "absent", ()
    if status == sw.FUNCTION_NOT_SUPPORTED:
        return "blocked", ()
    if status == sw.INVALIDATED:
        return "invalidated", ()
    raise sw.error_for(status, what=f"SELECT {name.decode()}")


def select_applications(channel: Channel) -> Selection:
    """PSE, PPSE, then (if they list nothing) the brand table's AIDs; then the first application.

    A card that answers 6A81 to the first SELECT is blocked: nothing further is sent.
    """
    pse, from_pse = _directory(channel, PSE, "pse")
    if pse == "blocked":
        return Selection(pse, "not_tried", card_blocked=True)
    ppse, from_ppse = _directory(channel, PPSE, "ppse")
    if ppse == "blocked" and pse != "ok":
        return Selection(pse, ppse, card_blocked=True)
    listed = {a.aid: a for a in (*from_pse, *from_ppse)}
    apps = list(listed.values())
    if not apps:
        for brand in brands():
            for aid in brand.aids:
                found = _select_aid(channel, aid, "aid")
                if found is not None:
                    apps.append(found)
    final = None
    if apps:
        first = apps[0]
        if first.source != "aid":
            final = _select_aid(channel, first.aid, first.source) or first
        else:
            final = first
        apps = [final if a.aid == first.aid else a for a in apps]
    return Selection(pse, ppse, tuple(apps), final=final)


def _select_aid(channel: Channel, aid: str, source: str) -> Application | None:
    data, status = command(channel, select_apdu(bytes.fromhex(aid)))
    if status == sw.OK:
        return application_fci(parse_tlv(data), aid, source)
    if status == sw.INVALIDATED:
        try:
            fci = parse_tlv(data)
        except DriverError:
            fci = ()
        return application_fci(fci, aid, source, blocked=True)
    if status in (sw.NOT_FOUND, sw.FUNCTION_NOT_SUPPORTED):
        return None
    raise sw.error_for(status, what=f"SELECT of application {aid}")
