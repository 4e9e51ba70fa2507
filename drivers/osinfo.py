"""Which operating system and kernel the terminal runs: os-release(5) and the kernel release.

Both are plain file reads under redirectable roots (no ``uname``, no subprocess), so a fixture
tree or a host mounted into a container is read the same way as the live system.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from posdiag.drivers.kernel_file import read_bytes

# os-release(5): /etc/os-release wins; /usr/lib/os-release is the vendor fallback.
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
MAX_BYTES = 64 * 1024

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_KERNEL_RELEASE = re.compile(r"[!-~]{1,128}")  # printable ASCII, no blanks
_DOUBLE_QUOTED_ESCAPES = frozenset('$"\\`')


@dataclass(frozen=True)
class OsRelease:
    fields: Mapping[str, str] = field(default_factory=dict)
    path: str = ""  # where it was read, as the terminal sees it (/etc/os-release)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def get(self, key: str) -> str | None:
        return self.fields.get(key) or None

    @property
    def id(self) -> str | None:
        return self.get("ID")

    @property
    def version_id(self) -> str | None:
        return self.get("VERSION_ID")

    @property
    def pretty_name(self) -> str | None:
        """PRETTY_NAME, falling back to NAME as os-release(5) allows ("Linux" as last resort)."""
        return self.get("PRETTY_NAME") or self.get("NAME") or None

    @property
    def id_like(self) -> tuple[str, ...]:
        return tuple((self.get("ID_LIKE") or "").split())


def _unquote(value: str) -> str | None:
    """One shell word: unquoted, '…', "…" (with \\ escapes) or a mix; None if malformed."""
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "'":
            end = value.find("'", i + 1)
            if end < 0:
                return None
            out.append(value[i + 1:end])
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    return None
                c = value[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and value[i + 1] in _DOUBLE_QUOTED_ESCAPES:
                    out.append(value[i + 1])
                    i += 2
                else:
                    out.append(c)
                    i += 1
        elif c == "\\":
            if i + 1 < n:
                out.append(value[i + 1])
            i += 2
        elif c in " \t":
            # Unquoted blank ends the word; only a comment may follow.
            rest = value[i:].lstrip()
            return "".join(out) if not rest or rest.startswith("#") else None
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines with shell-style quoting; comments, blanks and bad lines are skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGNMENT.fullmatch(line)
        if m is None:
            continue
        value = _unquote(m.group(2))
        if value is not None and value.isprintable():
            fields[m.group(1)] = value
    return fields


def _inside(rootfs: Path, rel: str) -> Path:
    """Follow symlinks the way the terminal would, without ever leaving ``rootfs``.

    Debian ships /etc/os-release as a link to ../usr/lib/os-release; an absolute target must be
    looked up under the root, not on the machine running the agent (a container, a test).
    """
    parts = [p for p in rel.split("/") if p]
    for _ in range(8):
        try:
            target = os.readlink(rootfs.joinpath(*parts))
        except OSError:
            break  # not a link (or absent: the open reports that)
        base = [] if target.startswith("/") else parts[:-1]
        for p in target.split("/"):
            if p == "..":
                if base:
                    base.pop()  # like "/..", never above the root
            elif p and p != ".":
                base.append(p)
        parts = base
    return rootfs.joinpath(*parts)


def read_os_release(rootfs: Path) -> OsRelease | None:
    """The first readable os-release under ``rootfs``; None when neither file exists."""
    for rel in OS_RELEASE_PATHS:
        raw = read_bytes(_inside(rootfs, rel), MAX_BYTES)
        if raw is None:
            continue
        return OsRelease(parse_os_release(raw.decode("utf-8", errors="replace")), "/" + rel)
    return None


def read_kernel_release(procfs: Path) -> str | None:
    """``/proc/sys/kernel/osrelease`` (what ``uname -r`` prints), or None if absent or garbage."""
    raw = read_bytes(procfs / "sys/kernel/osrelease", 4096)
    if raw is None:
        return None
    text = raw.decode("ascii", errors="replace").strip()
    return text if _KERNEL_RELEASE.fullmatch(text) else None
