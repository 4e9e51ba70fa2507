"""The mount table from ``<procfs>/self/mounts`` (or ``<procfs>/mounts``), fstab format.

Each line is ``source mount_point fstype options dump pass``; the kernel escapes space, tab,
newline and backslash in the first two fields as ``\\040``, ``\\011``, ``\\012``, ``\\134``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.kernel_file import read_bytes

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class Mount:
    source: str
    mount_point: str
    fstype: str
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.mount_point.startswith("/"):
            raise ValueError(f"mount point must be absolute: {self.mount_point!r}")
        if not self.fstype:
            raise ValueError("fstype must not be empty")

    @property
    def read_only(self) -> bool:
        # /proc/mounts shows "ro" when either the mount or its super block is read-only, e.g.
        # after ext4 "errors=remount-ro" kicked in.
        return "ro" in self.options


def parse_mounts(text: str) -> tuple[Mount, ...]:
    """Every well-formed line in table order; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount_point = _unescape(fields[1])
        if not mount_point.startswith("/") or not fields[2]:
            continue
        mounts.append(Mount(_unescape(fields[0]), posixpath.normpath(mount_point), fields[2],
                            tuple(o for o in fields[3].split(",") if o)))
    return tuple(mounts)


def read_mounts(procfs: Path) -> tuple[Mount, ...]:
    """Empty when neither file can be read."""
    for candidate in (procfs / "self" / "mounts", procfs / "mounts"):
        raw = read_bytes(candidate, 8 * 1024 * 1024)
        if raw is not None:
            # Paths are bytes to the kernel; keep undecodable ones instead of failing the table.
            return parse_mounts(raw.decode("utf-8", "surrogateescape"))
    return ()


def covering_mount(mounts: Iterable[Mount], path: str) -> Mount | None:
    """The mount a path lives on: the longest mount point that contains it, the last mounted
    one when several are stacked on the same point."""
    path = posixpath.normpath("/" + path.lstrip("/"))
    best: Mount | None = None
    for m in mounts:
        mp = m.mount_point
        inside = mp == "/" or path == mp or path.startswith(mp + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = m
    return best
