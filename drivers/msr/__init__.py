"""Magnetic stripe readers: ID TECH MiniMag framing and device, ISO 7811 tracks, Luhn, masking.

Card data never leaves this package: a swipe comes out as a ``SwipeResult`` of verdicts only.
"""

from __future__ import annotations

from posdiag.drivers.msr.idtech import IdTechMsr, MsrFirmware, MsrProbe, MsrSettings
from posdiag.drivers.msr.tracks import ExpiryState, SwipeResult, TrackProblem, TrackVerdict

__all__ = [
    "ExpiryState",
    "IdTechMsr",
    "MsrFirmware",
    "MsrProbe",
    "MsrSettings",
    "SwipeResult",
    "TrackProblem",
    "TrackVerdict",
]
