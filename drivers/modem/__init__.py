"""Cellular modem over AT commands (ITU-T V.250, 3GPP TS 27.007, Quectel extensions).

``at`` is the pure line protocol, ``parse`` the typed answers, ``device`` the ``Modem`` on a port.
"""

from __future__ import annotations

from posdiag.drivers.modem.at import AtCommandError, AtResponse
from posdiag.drivers.modem.device import Modem, ModemProbe, Registrations, Signal
from posdiag.drivers.modem.parse import (
    Identity,
    Operator,
    QuectelSignal,
    Registration,
    RegistrationStat,
    SignalQuality,
    SimState,
)

__all__ = [
    "AtCommandError",
    "AtResponse",
    "Identity",
    "Modem",
    "ModemProbe",
    "Operator",
    "QuectelSignal",
    "Registration",
    "RegistrationStat",
    "Registrations",
    "Signal",
    "SignalQuality",
    "SimState",
]
