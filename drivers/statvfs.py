"""Free space of the file system holding a path (``statvfs(3)``), with a deadline.

``statvfs`` on a dead network mount blocks in the kernel; it runs in a daemon thread so the
caller gets ``DeviceTimeout`` instead of hanging with it.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.errors import DeviceTimeout, DriverError, PermissionDenied


@dataclass(frozen=True)
class DiskSpace:
    path: str
    device: int  # st_dev: two paths on one file system have the same value
    total_bytes: int
    free_bytes: int  # including the blocks reserved for root
    available_bytes: int  # what an unprivileged writer (the POS application) can still use
    files_total: int  # 0 on file systems without an inode limit (btrfs, vfat)
    files_available: int
    read_only: bool

    def __post_init__(self) -> None:
        if min(self.total_bytes, self.free_bytes, self.available_bytes, self.files_total,
               self.files_available) < 0:
            raise ValueError("sizes and counts must be >= 0")
        if self.available_bytes > self.free_bytes or self.free_bytes > self.total_bytes:
            raise ValueError("expected available <= free <= total")

    @property
    def available_percent(self) -> float | None:
        """Free share as ``df`` shows it: available / (used + available)."""
        usable = self.total_bytes - self.free_bytes + self.available_bytes
        return 100.0 * self.available_bytes / usable if usable > 0 else None

    @property
    def available_mib(self) -> float:
        return self.available_bytes / (1024 * 1024)

    @property
    def inodes_available_percent(self) -> float | None:
        if self.files_total <= 0:
            return None
        return 100.0 * min(self.files_available, self.files_total) / self.files_total


def _measure(path: Path) -> DiskSpace:
    st = os.stat(path)
    vfs = os.statvfs(path)
    frsize = vfs.f_frsize or vfs.f_bsize
    total = vfs.f_blocks * frsize
    free = min(vfs.f_bfree * frsize, total)
    return DiskSpace(
        path=str(path),
        device=st.st_dev,
        total_bytes=total,
        free_bytes=free,
        available_bytes=min(vfs.f_bavail * frsize, free),
        files_total=vfs.f_files,
        files_available=vfs.f_favail,
        read_only=bool(vfs.f_flag & os.ST_RDONLY),
    )


def disk_space(path: Path, timeout_s: float = 2.0) -> DiskSpace | None:
    """None when the path does not exist; ``DeviceTimeout`` when the file system does not answer
    in ``timeout_s``; ``PermissionDenied`` / ``DriverError`` for other failures."""
    answers: queue.SimpleQueue[DiskSpace | OSError] = queue.SimpleQueue()

    def work() -> None:
        try:
            answers.put(_measure(path))
        except OSError as e:
            answers.put(e)

    threading.Thread(target=work, name="statvfs", daemon=True).start()
    try:
        answer = answers.get(timeout=timeout_s)
    except queue.Empty:
        raise DeviceTimeout(f"statvfs did not return within {timeout_s:g} s",
                            device=str(path), timeout_s=timeout_s) from None
    if isinstance(answer, DiskSpace):
        return answer
    if answer.errno in (errno.ENOENT, errno.ENOTDIR):
        return None
    if answer.errno in (errno.EACCES, errno.EPERM):
        raise PermissionDenied(f"statvfs: {answer.strerror}", device=str(path))
    raise DriverError(f"statvfs: {answer.strerror or answer}", device=str(path))
