"""The kernel's view of clock synchronisation: ``adjtimex(2)`` in read-only mode, through ctypes.

``adjtimex`` with ``modes = 0`` changes nothing and needs no privilege. It returns the clock state
(``TIME_ERROR`` = 5 means "not synchronised") and fills ``struct timex``; NTP daemons (chrony,
systemd-timesyncd, ntpd) clear ``STA_UNSYNC`` in ``status`` while they discipline the clock and
keep ``maxerror``/``esterror`` current. The syscall is injectable (``AdjtimexCall``) so tests can
hand in a synced or an unsynced structure.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass

from posdiag.drivers.errors import DriverError, NotSupported

# <linux/timex.h>
TIME_OK, TIME_INS, TIME_DEL, TIME_OOP, TIME_WAIT, TIME_ERROR = range(6)
STATE_NAMES = {TIME_OK: "ok", TIME_INS: "insert_leap", TIME_DEL: "delete_leap",
               TIME_OOP: "leap_in_progress", TIME_WAIT: "leap_done", TIME_ERROR: "error"}
STA_PLL = 0x0001
STA_UNSYNC = 0x0040
STA_NANO = 0x2000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """``struct timex`` as the plain ``adjtimex`` symbol of glibc/musl takes it (``long`` fields).

    The trailing padding is part of the kernel ABI (room for future fields); without it the
    kernel would write past the end of the buffer.
    """

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


# Fills the structure it is given and returns the clock state, or -1 (errno set) on failure.
AdjtimexCall = Callable[[Timex], int]


@dataclass(frozen=True)
class KernelClock:
    state: int
    status: int
    offset_us: float  # current PLL offset (kernel time vs. what the NTP daemon last told it)
    maxerror_us: int  # worst-case error bound the kernel keeps growing until the next update
    esterror_us: int  # estimated error from the last NTP update
    freq_ppm: float  # frequency correction applied

    def __post_init__(self) -> None:
        if self.state not in STATE_NAMES:
            raise ValueError(f"unknown clock state {self.state}")
        if self.maxerror_us < 0 or self.esterror_us < 0:
            raise ValueError("negative error bounds")

    @property
    def synchronized(self) -> bool:
        return self.state != TIME_ERROR and not self.status & STA_UNSYNC

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


def libc_adjtimex() -> AdjtimexCall:
    """The real ``adjtimex`` from the C library already loaded into this process.

    ``CDLL(None)`` looks the symbol up in the running program; ``ctypes.util.find_library``
    would start ``ldconfig`` in a subprocess, which a health check should not do.
    """
    try:
        func = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        raise NotSupported("adjtimex is not available in this C library",
                           device="clock") from None
    func.argtypes = [ctypes.POINTER(Timex)]
    func.restype = ctypes.c_int

    def call(buf: Timex) -> int:
        return int(func(ctypes.byref(buf)))

    return call


def read_kernel_clock(adjtimex: AdjtimexCall | None = None) -> KernelClock:
    """Read the clock state without changing anything.

    Raises ``NotSupported`` when there is no adjtimex, ``DriverError`` when the call fails or the
    answer is not a clock state.
    """
    call = adjtimex or libc_adjtimex()
    buf = Timex()
    buf.modes = 0  # read only
    ctypes.set_errno(0)
    state = call(buf)
    if state < 0:
        err = ctypes.get_errno()
        raise DriverError(f"adjtimex failed: {os.strerror(err) if err else 'error'}",
                          device="clock")
    if state not in STATE_NAMES:
        raise DriverError(f"adjtimex returned an unknown clock state {state}", device="clock")
    offset = buf.offset / 1000 if buf.status & STA_NANO else float(buf.offset)
    try:
        return KernelClock(state=state, status=buf.status & 0xFFFF, offset_us=offset,
                           maxerror_us=buf.maxerror, esterror_us=buf.esterror,
                           freq_ppm=buf.freq / 65536)  # freq is ppm with a 16-bit fraction
    except ValueError as e:
        raise DriverError(f"adjtimex returned nonsense: {e}", device="clock") from None
