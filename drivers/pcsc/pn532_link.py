"""The PN532 behind a CCID reader (ACR122U family): one protocol, a second transport.

The reader passes a PN532 command through the pseudo-APDU ``FF 00 00 00 Lc D4 <command>`` and
returns the chip's answer as ``D5 <code+1> <data> 90 00`` (ACS ACR122U API, "Direct
Transmit"); the reader's firmware does the HSU framing, ACK and wake-up itself. So the PN532
operations (firmware, Diagnose self-tests, scan) are the HSU driver's own — ``PN532`` defines
them all over one ``_call(command) -> response payload`` — and only that call is replaced here.
"""

from __future__ import annotations

from posdiag.drivers.errors import DeviceTimeout, ProtocolError
from posdiag.drivers.pcsc import status_words as sw
from posdiag.drivers.pcsc.emv import Channel
from posdiag.drivers.pn532.device import PN532
from posdiag.drivers.pn532.framing import TFI_HOST, TFI_PN532
from posdiag.drivers.pn532.protocol import Command

PSEUDO_APDU_HEADER = bytes([0xFF, 0x00, 0x00, 0x00])
SW_PN532_TIMEOUT = 0x6300  # the reader's "operation failed": the chip did not answer


def pseudo_apdu(payload: bytes) -> bytes:
    data = bytes([TFI_HOST]) + payload
    if len(data) > 255:
        raise ValueError("PN532 command too long for one pseudo-APDU")
    return PSEUDO_APDU_HEADER + bytes([len(data)]) + data


class Pn532OverCcid(PN532):
    """A PN532 reached through a PC/SC channel instead of a serial port."""

    def __init__(self, channel: Channel, *, device: str | None = None) -> None:
        # Deliberately not PN532.__init__: there is no serial port to configure.
        self._channel = channel
        self._device = device
        self._awake = True

    def wake_up(self) -> None:
        """The reader's firmware keeps its PN532 awake and configured: nothing to send."""
        self._awake = True

    def abort(self) -> None:
        """Nothing is left running: each pseudo-APDU is one complete exchange."""

    def _call(self, command: Command) -> bytes:
        resp = self._channel.transmit(pseudo_apdu(command.payload()))
        if len(resp) < 2:
            raise ProtocolError("reader answer without status word", device=self._device,
                                kind="framing")
        data, status = resp[:-2], int.from_bytes(resp[-2:], "big")
        if status == SW_PN532_TIMEOUT:
            raise DeviceTimeout(f"the reader's PN532 did not answer command "
                                f"{command.CODE:#04x}", device=self._device,
                                timeout_s=command.timeout_s)
        if status != sw.OK:
            raise sw.error_for(status, device=self._device,
                               what=f"PN532 pseudo-APDU {command.CODE:#04x}")
        if not data or data[0] != TFI_PN532:
            raise ProtocolError("reader answer does not start with the PN532's D5",
                                device=self._device, kind="unexpected")
        return bytes(data[1:])
