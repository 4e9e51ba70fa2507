"""Reading the small text files the kernel generates: sysfs attributes and procfs tables.

Such a read must never hang and never raise. A sysfs attribute can fail with EIO, ENODATA, ENODEV
or EAGAIN (the device went away, the firmware did not answer), and a redirected tree (``--sysfs``)
may hold anything. Every failure is "no value" (``None``) for that one file, so a caller keeps
whatever else it could read.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_INT = re.compile(r"[+-]?[0-9]{1,19}")
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def read_regular(path: Path, limit: int = 64 * 1024) -> bytes | None:
    """At most ``limit`` bytes of a regular file; None when ``path`` is not a regular file.

    Opened non-blocking and only read when it is a regular file: a FIFO or a device node in its
    place (a broken fixture, a hostile mount) gives None at once instead of blocking forever.
    Open and read errors propagate as OSError, for callers that must tell them apart.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, min(64 * 1024, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_bytes(path: Path, limit: int = 64 * 1024) -> bytes | None:
    """Like ``read_regular``, but every failure is None: for files where "no data" is normal."""
    try:
        return read_regular(path, limit)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None


def read_text(path: Path, limit: int = 64 * 1024) -> str | None:
    """The file as UTF-8 text, or None if it cannot be read or is not text."""
    raw = read_bytes(path, limit)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_attribute(path: Path) -> str | None:
    """One sysfs attribute value (printed by the kernel as ``"%s\\n"``), stripped.

    Empty, multi-line or control-character values are garbage for a one-value attribute: None.
    """
    text = read_text(path, 4096)
    if text is None:
        return None
    value = text.strip()
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    return value


def parse_int(text: str | None) -> int | None:
    """A decimal integer as the kernel prints it with ``"%d"``; anything else is None."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if _INT.fullmatch(text) else None


def read_int(path: Path) -> int | None:
    return parse_int(read_attribute(path))
