"""Where the agent reads the kernel and the file system from.

Every check gets one ``Roots`` value and builds paths through it, so ``--sysfs``, ``--procfs``
and ``--rootfs`` (or ``[paths]``) redirect every read: fixture trees in tests, a host mount in a
container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Roots:
    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    rootfs: Path = Path("/")

    def sys(self, *parts: str) -> Path:
        return self.sysfs.joinpath(*parts)

    def proc(self, *parts: str) -> Path:
        return self.procfs.joinpath(*parts)

    def root(self, path: str | Path) -> Path:
        """Map an absolute path of the terminal (``/etc/os-release``) under ``rootfs``."""
        return self.rootfs.joinpath(str(path).lstrip("/"))

    def unroot(self, path: str | Path) -> str:
        """Inverse of ``root`` for messages: show the path as the terminal sees it."""
        p = Path(path)
        try:
            return "/" + str(p.relative_to(self.rootfs)).removeprefix(".")
        except ValueError:
            return str(p)
