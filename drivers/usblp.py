"""Printer device nodes that are not ttys: ``/dev/usb/lpN`` (usblp) and ``/dev/lpN`` (parallel).

A USB receipt printer of the printer class is bound to ``usblp``, not to a serial driver, so its
node has no termios and ``open_port`` refuses it. ESC/POS still works over it: bytes written go
to the printer's bulk OUT endpoint, and a bidirectional (7/1/2) printer's status replies come
back through ``read``. ``UsbLpPort`` gives that node the part of pyserial's interface the
ESC/POS driver uses (``timeout``, ``write_timeout``, ``read``, ``write``, ``reset_input_buffer``)
with the same meaning, and the same rule as every transport here: no call can block past its
timeout, and failures leave as ``DriverError`` subclasses.

Kernel behaviour it relies on (``drivers/usb/class/usblp.c``): one open at a time (``EBUSY``);
with ``O_NONBLOCK`` reads and writes answer ``EAGAIN`` instead of waiting, and ``poll`` says when
to retry; a read on a unidirectional (7/1/1) interface fails with ``EINVAL``; ``ENODEV`` once the
printer is unplugged.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import math
import os
import select
import stat
import time

from posdiag.drivers.errors import (
    DeviceBusy,
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    NotSupported,
    PermissionDenied,
)
from posdiag.drivers.transport import find_port_holders

__all__ = ["PRINTER_MAJORS", "UsbLpPort", "is_printer_node", "open_usblp"]

# Character-device majors of printer nodes (Linux devices.txt): 6 = parallel lp,
# 180 = USB class devices, whose minors 0-15 are usb/lp0-15.
PRINTER_MAJORS = frozenset({6, 180})

_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO, errno.ESHUTDOWN,
                          errno.EPIPE})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
# A node that reads as end-of-file (no data now) is polled at this interval, never spun on.
_EOF_RETRY_S = 0.01
_MAX_DRAIN_READS = 64


def is_printer_node(path: str) -> bool:
    """True if ``path`` (symlinks followed) is a usblp or parallel printer character device."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in PRINTER_MAJORS


def _check_timeout(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _reason(exc: OSError) -> str:
    if exc.errno:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {os.strerror(exc.errno)}"
    return str(exc) or type(exc).__name__


class UsbLpPort:
    """An open printer node with bounded, pyserial-like I/O. Use ``open_usblp`` to make one.

    ``timeout`` bounds each ``read`` (which returns what arrived, possibly ``b""``, like
    pyserial); None counts as 0, since nothing here may block without a limit.
    ``write_timeout`` bounds each ``write`` (``DeviceTimeout`` if the printer does not take the
    bytes in time). One thread at a time.
    """

    def __init__(self, fd: int, path: str, *, timeout_s: float, write_timeout_s: float) -> None:
        self._fd = fd
        self.port = path  # the name drivers report errors against
        self.timeout: float | None = timeout_s
        self.write_timeout: float | None = write_timeout_s

    # -- life cycle ---------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        """Close the node. Idempotent; never raises."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):  # closed either way
                os.close(fd)

    def __enter__(self) -> UsbLpPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"UsbLpPort({self.port!r}, {'open' if self.is_open else 'closed'})"

    # -- I/O ----------------------------------------------------------------------------------
    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes: what the first successful read returns, or ``b""`` at timeout."""
        if size < 0:
            raise ValueError("size must not be negative")
        fd = self._live()
        if size == 0:
            return b""
        deadline = time.monotonic() + max(0.0, self.timeout or 0.0)
        while True:
            try:
                data: bytes | None = os.read(fd, size)
            except BlockingIOError:
                data = None
            except OSError as exc:
                raise self._fail("reading", exc) from exc
            if data:
                return data
            if data == b"" and self._hung_up():
                self.close()
                raise DeviceNotFound("printer disconnected while reading (hang-up); node "
                                     "closed", device=self.port)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            if data == b"":
                # End of file: nothing to read now, and poll would report "readable" at once.
                time.sleep(min(remaining, _EOF_RETRY_S))
            else:
                self._wait(select.POLLIN, remaining)

    def write(self, data: bytes) -> int:
        """Write all of ``data`` within ``write_timeout``; returns the number of bytes."""
        fd = self._live()
        view = memoryview(bytes(data))
        limit = max(0.0, self.write_timeout or 0.0)
        deadline = time.monotonic() + limit
        sent = 0
        while sent < len(view):
            try:
                sent += os.write(fd, view[sent:])
            except BlockingIOError:
                pass
            except OSError as exc:
                raise self._fail("writing", exc) from exc
            if sent >= len(view):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(f"printer took {sent} of {len(view)} bytes within "
                                    f"{limit:g} s (busy printing, or stalled?)",
                                    device=self.port, timeout_s=limit)
            self._wait(select.POLLOUT, remaining)
        return sent

    def reset_input_buffer(self) -> None:
        """Discard bytes already waiting (a late reply to an earlier request)."""
        fd = self._live()
        for _ in range(_MAX_DRAIN_READS):
            try:
                if not os.read(fd, 4096):
                    return
            except BlockingIOError:
                return
            except OSError as exc:
                raise self._fail("clearing input", exc) from exc

    # -- internals ------------------------------------------------------------------------------
    def _live(self) -> int:
        if self._fd < 0:
            raise DriverError("printer node is closed", device=self.port)
        return self._fd

    def _hung_up(self) -> bool:
        """End of file because the other side is gone (a pty whose master closed)?"""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return any(revents & (select.POLLHUP | select.POLLERR | select.POLLNVAL)
                   for _, revents in poller.poll(0))

    def _wait(self, events: int, timeout_s: float) -> None:
        poller = select.poll()
        poller.register(self._fd, events)
        # Returns early on the event, on POLLHUP/POLLERR (the next I/O call reports it) or
        # at the timeout; the caller re-checks its deadline either way.
        poller.poll(max(1, math.ceil(timeout_s * 1000)))

    def _fail(self, action: str, exc: OSError) -> DriverError:
        self.close()
        code = exc.errno
        if code == errno.EINVAL and action == "reading":
            return NotSupported("the printer's USB interface is unidirectional: it cannot send "
                                "status replies (usblp read: EINVAL)", device=self.port)
        if code in _DENIED_ERRNOS:
            return PermissionDenied(f"permission denied while {action}: {_reason(exc)}",
                                    device=self.port)
        if code in _GONE_ERRNOS:
            return DeviceNotFound(f"printer disconnected while {action} ({_reason(exc)}); "
                                  f"node closed", device=self.port)
        return DriverError(f"I/O error while {action}: {_reason(exc)}", device=self.port)


def open_usblp(path: str, *, timeout_s: float, write_timeout_s: float | None = None,
               exclusive: bool = True, proc_root: str = "/proc") -> UsbLpPort:
    """Open a printer node for status queries.

    With ``exclusive`` (default) the node is refused when another process has it open: status
    requests must never be interleaved with someone else's print job (a ``DLE EOT`` inside
    image data is executed as a command). usblp itself allows one open at a time anyway.

    Raises ``DeviceNotFound``, ``PermissionDenied`` (``group`` = group owning the node),
    ``DeviceBusy`` (``holder_pid``/``holder_name``) or ``DriverError``.
    """
    _check_timeout("timeout_s", timeout_s)
    if write_timeout_s is None:
        write_timeout_s = timeout_s
    _check_timeout("write_timeout_s", write_timeout_s)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(path, exc, proc_root) from exc
    port = UsbLpPort(fd, path, timeout_s=timeout_s, write_timeout_s=write_timeout_s)
    try:
        st = os.fstat(fd)
    except OSError as exc:
        port.close()
        raise DeviceNotFound(f"printer node vanished after opening ({_reason(exc)})",
                             device=path) from exc
    if not stat.S_ISCHR(st.st_mode):
        port.close()
        raise DeviceNotFound(f"{path} is not a device node", device=path)
    if exclusive:
        holders = find_port_holders(path, proc_root, exclude_pids=(os.getpid(),))
        if holders:
            port.close()
            first = holders[0]
            names = ", ".join(str(h) for h in holders)
            raise DeviceBusy(f"printer is in use: held by {names}", device=path,
                             holder_pid=first.pid, holder_name=first.name)
    return port


def _open_error(path: str, exc: OSError, proc_root: str) -> DriverError:
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return DeviceNotFound(f"no such printer node ({_reason(exc)}); unplugged, or wrong "
                              f"port in the configuration?", device=path)
    if code in _DENIED_ERRNOS:
        group = _node_group(path)
        advice = f"; add the service user to group '{group}'" if group else ""
        return PermissionDenied(f"permission denied ({_reason(exc)}){advice}", device=path,
                                group=group)
    if code == errno.EBUSY:
        # usblp admits one open: name whoever has it (CUPS' usb backend, a POS application).
        holders = (find_port_holders(path, proc_root, exclude_pids=(os.getpid(),))
                   or find_port_holders(path, proc_root))
        if holders:
            first = holders[0]
            names = ", ".join(str(h) for h in holders)
            return DeviceBusy(f"printer is in use: held by {names}", device=path,
                              holder_pid=first.pid, holder_name=first.name)
        return DeviceBusy(f"printer is in use by a process this user cannot see "
                          f"({_reason(exc)})", device=path)
    return DriverError(f"cannot open: {_reason(exc)}", device=path)


def _node_group(path: str) -> str | None:
    try:
        gid = os.stat(path).st_gid
        return grp.getgrgid(gid).gr_name
    except (OSError, KeyError):
        return None
