"""The check registry: one line per check, in the field guides' troubleshooting order
(power → system → network/cellular → payment host → clock → software → devices). The CLI and
the daemon run this same tuple through the same runner."""

from __future__ import annotations

from posdiag.checks import (
    card_reader,
    cellular,
    chip_reader,
    clock,
    contactless,
    hid_card_reader,
    network,
    payment_host,
    power,
    printer,
    software,
    system,
)
from posdiag.checks.base import AnySpec

REGISTRY: tuple[AnySpec, ...] = (
    power.SPEC,
    system.SPEC,
    network.SPEC,
    cellular.SPEC,
    payment_host.SPEC,
    clock.SPEC,
    software.SPEC,
    card_reader.SPEC,
    hid_card_reader.SPEC,
    contactless.SPEC,
    chip_reader.SPEC,
    printer.SPEC,
)
