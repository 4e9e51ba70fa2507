"""Processor count from ``<procfs>/cpuinfo`` (one ``processor : N`` line per online CPU)."""

from __future__ import annotations

import re
from pathlib import Path

from posdiag.drivers.kernel_file import read_text

_PROCESSOR = re.compile(r"processor\s*:\s*[0-9]+")


def parse_processor_count(text: str) -> int | None:
    n = sum(1 for line in text.splitlines() if _PROCESSOR.fullmatch(line.strip()))
    return n or None


def read_processor_count(procfs: Path) -> int | None:
    # Large on many-core machines (flags lines), hence the generous limit.
    text = read_text(procfs / "cpuinfo", 4 * 1024 * 1024)
    return parse_processor_count(text) if text is not None else None
