"""Memory totals from ``<procfs>/meminfo`` (``Key:   value kB`` lines)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.kernel_file import read_text

_LINE = re.compile(r"([A-Za-z0-9_()]+):\s+([0-9]{1,19})(?:\s+kB)?")


@dataclass(frozen=True)
class MemInfo:
    total_kib: int
    available_kib: int
    free_kib: int
    # Kernels before 3.14 have no MemAvailable; then it is MemFree + Buffers + Cached (an upper
    # bound, since not all page cache can be dropped).
    available_estimated: bool = False
    swap_total_kib: int | None = None
    swap_free_kib: int | None = None

    def __post_init__(self) -> None:
        if self.total_kib <= 0:
            raise ValueError(f"MemTotal must be > 0, not {self.total_kib}")
        for key in ("available_kib", "free_kib"):
            v = getattr(self, key)
            if not 0 <= v <= self.total_kib:
                raise ValueError(f"{key} must be within 0..MemTotal, not {v}")
        if self.swap_total_kib is not None and self.swap_total_kib < 0:
            raise ValueError("SwapTotal must be >= 0")
        if self.swap_free_kib is not None and self.swap_free_kib < 0:
            raise ValueError("SwapFree must be >= 0")

    @property
    def available_percent(self) -> float:
        return 100.0 * self.available_kib / self.total_kib


def parse_meminfo(text: str) -> MemInfo | None:
    """None when MemTotal/MemFree are missing or the numbers contradict each other."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if m:
            values.setdefault(m.group(1), int(m.group(2)))
    total = values.get("MemTotal")
    free = values.get("MemFree")
    if not total or free is None or free > total:
        return None
    available = values.get("MemAvailable")
    estimated = available is None
    if available is None:
        available = min(total, free + values.get("Buffers", 0) + values.get("Cached", 0))
    if available > total:
        return None
    return MemInfo(total, available, free, estimated, values.get("SwapTotal"),
                   values.get("SwapFree"))


def read_meminfo(procfs: Path) -> MemInfo | None:
    text = read_text(procfs / "meminfo")
    return parse_meminfo(text) if text is not None else None
