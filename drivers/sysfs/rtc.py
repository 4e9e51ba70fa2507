"""The battery-backed real-time clock: ``<sysfs>/class/rtc/<name>/since_epoch`` and ``hctosys``.

``since_epoch`` is the RTC time in whole seconds, read as UTC; an RTC kept in local time (a dual
boot habit) shows up as an offset of whole hours. ``hctosys`` = 1 marks the RTC the kernel set
the system clock from at boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rtc:
    name: str
    since_epoch_s: int
    hctosys: bool | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"not an RTC name: {self.name!r}")
        if self.since_epoch_s < 0:
            raise ValueError("RTC time before 1970")


def _attr(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("ascii", "replace").strip()
    except OSError:  # an RTC that lost power answers EINVAL
        return None


def read_rtc(sysfs: Path, name: str = "rtc0") -> Rtc | None:
    """The RTC ``name``, or None when it is absent or has no valid time."""
    if not name or "/" in name or name in (".", ".."):
        return None
    base = sysfs / "class" / "rtc" / name
    text = _attr(base / "since_epoch")
    if text is None:
        return None
    try:
        seconds = int(text)
    except ValueError:
        return None
    if seconds < 0:
        return None
    hctosys = {"1": True, "0": False}.get(_attr(base / "hctosys") or "")
    return Rtc(name, seconds, hctosys)
