"""NXP PN532 contactless reader over HSU (UART): framing, protocol values and the device."""

from __future__ import annotations

from posdiag.drivers.pn532.device import PN532, CardScan, Pn532Probe, SelfTestResult
from posdiag.drivers.pn532.protocol import FirmwareVersion

__all__ = ["PN532", "CardScan", "FirmwareVersion", "Pn532Probe", "SelfTestResult"]
