"""Online CPUs from ``<sysfs>/devices/system/cpu/online`` (a cpulist such as ``0-3,6,8-9``)."""

from __future__ import annotations

import re
from pathlib import Path

from posdiag.drivers.kernel_file import read_attribute

_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")


def parse_cpu_list(text: str) -> frozenset[int] | None:
    """The CPU numbers of a kernel cpulist; None when it is not one."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        m = _RANGE.fullmatch(part)
        if not m:
            return None
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            return None
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def online_cpu_count(sysfs: Path) -> int | None:
    text = read_attribute(sysfs / "devices" / "system" / "cpu" / "online")
    cpus = parse_cpu_list(text) if text is not None else None
    return len(cpus) if cpus else None
