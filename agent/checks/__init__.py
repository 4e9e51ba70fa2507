"""The check registry: one line per check, in the field guides' troubleshooting order
(power → network → host → clock/software → devices). The CLI and the daemon run this same tuple."""

from __future__ import annotations

from posdiag.checks import payment_host, power, software, system
from posdiag.checks.base import AnySpec

REGISTRY: tuple[AnySpec, ...] = (
    power.SPEC,
    system.SPEC,
    payment_host.SPEC,
    software.SPEC,
)
