"""Load averages from ``<procfs>/loadavg``: ``0.42 0.31 0.25 2/187 12345``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.kernel_file import read_text

_LOADAVG = re.compile(r"([0-9]{1,9}\.[0-9]{2}) ([0-9]{1,9}\.[0-9]{2}) ([0-9]{1,9}\.[0-9]{2})"
                      r" ([0-9]{1,9})/([0-9]{1,9}) ([0-9]{1,10})")


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    runnable: int  # scheduling entities runnable now
    threads: int  # scheduling entities that exist

    def __post_init__(self) -> None:
        for key in ("load1", "load5", "load15"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, not {v!r}")
        if self.runnable < 0 or self.threads < 0:
            raise ValueError("thread counts must be >= 0")


def parse_loadavg(text: str) -> LoadAvg | None:
    m = _LOADAVG.fullmatch(text.strip())
    if not m:
        return None
    return LoadAvg(float(m.group(1)), float(m.group(2)), float(m.group(3)),
                   int(m.group(4)), int(m.group(5)))


def read_loadavg(procfs: Path) -> LoadAvg | None:
    text = read_text(procfs / "loadavg", 256)
    return parse_loadavg(text) if text is not None else None
