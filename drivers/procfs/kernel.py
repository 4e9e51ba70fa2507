"""Small kernel facts from procfs: boot id, uptime, host name."""

from __future__ import annotations

from pathlib import Path


def boot_id(procfs: Path) -> str | None:
    """``/proc/sys/kernel/random/boot_id``: changes at every boot, so a backend can see reboots."""
    try:
        return (procfs / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def uptime_s(procfs: Path) -> float | None:
    try:
        return float((procfs / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
