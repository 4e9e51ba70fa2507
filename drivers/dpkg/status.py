"""The dpkg database of installed packages: ``<rootfs>/var/lib/dpkg/status``.

The file is a sequence of RFC 822-style stanzas separated by blank lines; a line starting with a
space or tab continues the field above it (Description, Conffiles). Only Package, Status, Version
and Architecture matter here. The parser never raises on content: a stanza it cannot use is
counted as damaged and left out, so one corrupt entry does not hide the other packages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from posdiag.drivers.errors import DriverError, PermissionDenied
from posdiag.drivers.kernel_file import read_regular

STATUS_PATH = "var/lib/dpkg/status"
# A real status file is a few MB; refuse to pull a runaway file into memory.
MAX_BYTES = 64 * 1024 * 1024

WANTS = frozenset({"unknown", "install", "hold", "deinstall", "purge"})
FLAGS = frozenset({"ok", "reinstreq"})
STATES = frozenset({"not-installed", "config-files", "half-installed", "unpacked",
                    "half-configured", "triggers-awaited", "triggers-pending", "installed"})
# Unpacked and configured; triggers-* only wait for another package's trigger to run.
_INSTALLED_STATES = frozenset({"installed", "triggers-awaited", "triggers-pending"})

_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_FIELD = re.compile(r"([!-9;-~][!-9;-~]*):(.*)")  # field names: printable ASCII, no colon
_WANTED = ("package", "status", "version", "architecture")


def valid_package_name(name: str) -> bool:
    """Debian Policy §5.6.1: lower-case letters, digits, ``+ - .``; at least two characters."""
    return bool(_PACKAGE_NAME.fullmatch(name))


@dataclass(frozen=True)
class PackageState:
    """The three words of a Status field: ``install ok installed``."""

    want: str
    flag: str
    state: str

    def __post_init__(self) -> None:
        if self.want not in WANTS or self.flag not in FLAGS or self.state not in STATES:
            raise ValueError(f"not a dpkg package state: {self}")

    @classmethod
    def parse(cls, text: str) -> PackageState:
        words = text.split()
        if len(words) != 3:
            raise ValueError(f"a dpkg Status has three words, not {text!r}")
        return cls(*words)

    @property
    def installed(self) -> bool:
        """Unpacked, configured and wanted: ``install`` or ``hold`` (apt-mark hold), flag ``ok``."""
        return (self.want in ("install", "hold") and self.flag == "ok"
                and self.state in _INSTALLED_STATES)

    def __str__(self) -> str:
        return f"{self.want} {self.flag} {self.state}"


@dataclass(frozen=True)
class Package:
    name: str
    state: PackageState
    version: str | None = None  # the raw Version field; packages that were never unpacked lack it
    architecture: str | None = None

    @property
    def installed(self) -> bool:
        return self.state.installed and self.version is not None


@dataclass(frozen=True)
class DpkgStatus:
    """Every usable stanza of the status file, and how many stanzas were damaged."""

    packages: tuple[Package, ...] = ()
    damaged: int = 0  # stanzas with a garbage line, a duplicate field or no usable Package/Status
    _by_name: Mapping[str, tuple[Package, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[Package]] = {}
        for p in self.packages:
            index.setdefault(p.name, []).append(p)
        object.__setattr__(self, "_by_name",
                           MappingProxyType({k: tuple(v) for k, v in index.items()}))

    def entries(self, query: str) -> tuple[Package, ...]:
        """All stanzas of ``name`` or ``name:arch`` (Multi-Arch lists one stanza per arch)."""
        name, _, arch = query.partition(":")
        found = self._by_name.get(name, ())
        return tuple(p for p in found if p.architecture == arch) if arch else found

    def installed(self, query: str) -> tuple[Package, ...]:
        """The installed instances of ``name`` or ``name:arch``; empty when not installed."""
        return tuple(p for p in self.entries(query) if p.installed)

    @property
    def installed_count(self) -> int:
        return sum(1 for p in self.packages if p.installed)


def _stanzas(text: str) -> Iterator[list[str]]:
    block: list[str] = []
    for line in text.splitlines():
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def _parse_stanza(lines: list[str]) -> tuple[Package | None, bool]:
    """The package of one stanza (None if unusable) and whether the stanza was damaged."""
    fields: dict[str, str] = {}
    damaged = False
    current: str | None = None
    for line in lines:
        if line[0] in " \t":
            if current is None:
                damaged = True  # a continuation with nothing to continue
            continue  # continuation values (Description, Conffiles) are not needed
        if line.startswith("#"):
            continue
        m = _FIELD.match(line)
        if m is None:
            damaged = True
            current = None
            continue
        current = m.group(1).lower()
        if current in fields:
            damaged = True  # dpkg refuses a duplicate field; keep the first
        elif current in _WANTED:
            fields[current] = m.group(2).strip()
    name = fields.get("package", "")
    if not valid_package_name(name):
        return None, True
    try:
        state = PackageState.parse(fields.get("status", ""))
    except ValueError:
        return None, True
    version = fields.get("version") or None
    if version is not None and (len(version) > 256 or any(c.isspace() for c in version)):
        return None, True
    return Package(name, state, version, fields.get("architecture") or None), damaged


def parse_status(text: str) -> DpkgStatus:
    """Parse the text of a dpkg status file. Never raises on bad content."""
    packages: list[Package] = []
    damaged = 0
    for block in _stanzas(text):
        package, bad = _parse_stanza(block)
        damaged += bad
        if package is not None:
            packages.append(package)
    return DpkgStatus(tuple(packages), damaged)


def read_status(rootfs: Path) -> DpkgStatus | None:
    """Read ``<rootfs>/var/lib/dpkg/status``; None when there is no such file (no dpkg).

    Raises PermissionDenied when it may not be read and DriverError for other read failures.
    """
    device = "/" + STATUS_PATH
    try:
        raw = read_regular(rootfs / STATUS_PATH, MAX_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except PermissionError:
        raise PermissionDenied("permission denied", device=device) from None
    except OSError as e:
        raise DriverError(str(e.strerror or e), device=device) from None
    except ValueError:  # a NUL byte in the configured root
        raise DriverError("invalid path", device=device) from None
    if raw is None:
        raise DriverError("not a regular file", device=device)
    if len(raw) > MAX_BYTES:
        raise DriverError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB: not a dpkg database",
                          device=device)
    # Old packages may carry Latin-1 descriptions; they do not affect the fields read here.
    return parse_status(raw.decode("utf-8", errors="replace"))
