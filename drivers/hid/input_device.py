"""A Linux evdev node (``/dev/input/event*``) read with the standard library.

Four kernel calls are all a swipe test needs: open, ``EVIOCGNAME``, ``EVIOCGRAB`` (take and give
back exclusive access, so the keystrokes of the test swipe do not reach the payment application)
and ``read`` of ``struct input_event`` records. python-evdev would add a C extension to build on
every terminal for those four; ``fcntl.ioctl`` and ``struct`` do them directly.

``ioctl`` and ``opener`` are parameters so the one call umockdev cannot emulate faithfully (a
grab refused because another program holds one: umockdev's ``EVIOCGRAB`` always succeeds) can be
tested at this seam.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import select
import struct
from collections.abc import Callable, Iterator
from typing import Any

from posdiag.drivers.errors import DeviceBusy, DeviceNotFound, DriverError, PermissionDenied
from posdiag.drivers.hid.keycodes import EV_KEY
from posdiag.drivers.hid.keymap import KeyEvent

# struct input_event: struct timeval (two C longs), __u16 type, __u16 code, __s32 value.
EVENT = struct.Struct("llHHi")
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("E") << 8) | number


EVIOCGRAB = _ioc(_IOC_WRITE, 0x90, 4)  # _IOW('E', 0x90, int)
NAME_LEN = 256


def eviocgname(length: int = NAME_LEN) -> int:
    return _ioc(_IOC_READ, 0x06, length)  # _IOC(_IOC_READ, 'E', 0x06, len)


Ioctl = Callable[..., Any]
Opener = Callable[[str, int], int]


class InputDevice:
    """An open evdev node. Use as a context manager; ``close`` also gives back a grab."""

    def __init__(self, path: str, *, ioctl: Ioctl = fcntl.ioctl,
                 opener: Opener = os.open) -> None:
        self.path = path
        self._ioctl = ioctl
        self.grabbed = False
        try:
            self.fd = opener(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise _open_error(path, e) from e

    def __enter__(self) -> InputDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def name(self) -> str | None:
        """The kernel's name for the device (from the HID product string); None if unknown."""
        buf = bytearray(NAME_LEN)
        try:
            self._ioctl(self.fd, eviocgname(), buf)
        except OSError:
            return None
        return bytes(buf).split(b"\0", 1)[0].decode("utf-8", "replace") or None

    def grab(self) -> None:
        """Exclusive access: from now on only this fd receives the device's events."""
        try:
            self._ioctl(self.fd, EVIOCGRAB, 1)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise DeviceBusy("another program has taken exclusive access to the reader "
                                 "(EVIOCGRAB)", device=self.path) from e
            raise _io_error(self.path, e) from e
        self.grabbed = True

    def release(self) -> None:
        """Give the device back to everyone; harmless when not grabbed or already unplugged."""
        if not self.grabbed:
            return
        self.grabbed = False
        with contextlib.suppress(OSError):  # unplugged: the grab went with the device
            self._ioctl(self.fd, EVIOCGRAB, 0)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[InputDevice]:
        """Grabbed for the ``with`` block only, released on any exit (error, Ctrl-C)."""
        self.grab()
        try:
            yield self
        finally:
            self.release()

    def wait_readable(self, timeout_s: float) -> bool:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        ready = poller.poll(max(0, int(timeout_s * 1000)))
        if any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in ready):
            raise DeviceNotFound("the reader went away (unplugged?)", device=self.path)
        return bool(ready)

    def read_keys(self) -> list[KeyEvent]:
        """Key events waiting now (others, e.g. EV_MSC scan codes and EV_SYN, are dropped).

        The raw buffer holds card data while a swipe is read: it is wiped before returning.
        """
        try:
            raw = bytearray(os.read(self.fd, EVENT.size * 64))
        except BlockingIOError:
            return []
        except OSError as e:
            raise _io_error(self.path, e) from e
        try:
            keys = []
            usable = len(raw) - len(raw) % EVENT.size
            for offset in range(0, usable, EVENT.size):
                _, _, kind, code, value = EVENT.unpack_from(raw, offset)
                if kind == EV_KEY:
                    keys.append(KeyEvent(code, value))
            return keys
        finally:
            raw[:] = bytes(len(raw))

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            self.release()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def _open_error(path: str, e: OSError) -> DriverError:
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"cannot open {path}: {e.strerror}", device=path,
                                group=_group_of(path))
    if e.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return DeviceNotFound(f"{path} does not exist (unplugged?)", device=path)
    return _io_error(path, e)


def _io_error(path: str, e: OSError) -> DriverError:
    if e.errno in (errno.ENODEV, errno.ENXIO, errno.EIO):
        return DeviceNotFound(f"the reader went away: {e.strerror}", device=path)
    return DriverError(f"{e.strerror or e}", device=path)


def _group_of(path: str) -> str | None:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        return None
