"""adjtimex through ctypes: the structure layout, the state decoding, and one real call."""

from __future__ import annotations

import ctypes
import errno

import pytest

from posdiag.drivers.errors import DriverError
from posdiag.drivers.timex import (
    STA_NANO,
    STA_PLL,
    STA_UNSYNC,
    TIME_ERROR,
    TIME_INS,
    TIME_OK,
    Timex,
    read_kernel_clock,
)


def test_struct_size_matches_the_kernel_abi() -> None:
    # 64-bit: 208 bytes; 32-bit (long = 4): 128 bytes (struct timex in <sys/timex.h>).
    expected = 208 if ctypes.sizeof(ctypes.c_long) == 8 else 128
    assert ctypes.sizeof(Timex) == expected


def test_the_call_is_read_only() -> None:
    seen: list[int] = []

    def call(buf: Timex) -> int:
        seen.append(buf.modes)
        return TIME_OK

    read_kernel_clock(call)
    assert seen == [0]


def test_synced_clock_in_nanosecond_mode() -> None:
    def call(buf: Timex) -> int:
        buf.status = STA_PLL | STA_NANO
        buf.offset = -250_000  # ns
        buf.maxerror = 12_500
        buf.esterror = 300
        buf.freq = -6 * 65536 // 2  # -3 ppm
        return TIME_OK

    kc = read_kernel_clock(call)
    assert kc.synchronized
    assert kc.state_name == "ok"
    assert kc.offset_us == pytest.approx(-250.0)
    assert (kc.maxerror_us, kc.esterror_us) == (12_500, 300)
    assert kc.freq_ppm == pytest.approx(-3.0)


def test_microsecond_offset_and_leap_state() -> None:
    def call(buf: Timex) -> int:
        buf.status = STA_PLL
        buf.offset = 42
        return TIME_INS

    kc = read_kernel_clock(call)
    assert kc.offset_us == 42.0
    assert kc.state_name == "insert_leap"
    assert kc.synchronized


@pytest.mark.parametrize(("state", "status"), [(TIME_ERROR, 0), (TIME_OK, STA_UNSYNC),
                                               (TIME_ERROR, STA_UNSYNC)])
def test_unsynced(state: int, status: int) -> None:
    def call(buf: Timex) -> int:
        buf.status = status
        buf.maxerror = buf.esterror = 16_000_000
        return state

    assert not read_kernel_clock(call).synchronized


def test_error_return_is_a_driver_error() -> None:
    def call(buf: Timex) -> int:
        ctypes.set_errno(errno.EFAULT)
        return -1

    with pytest.raises(DriverError, match="Bad address"):
        read_kernel_clock(call)


@pytest.mark.parametrize("state", [6, 99])
def test_unknown_state_is_a_driver_error(state: int) -> None:
    with pytest.raises(DriverError, match="unknown clock state"):
        read_kernel_clock(lambda buf: state)


def test_negative_error_bounds_are_a_driver_error() -> None:
    def call(buf: Timex) -> int:
        buf.maxerror = -1
        return TIME_OK

    with pytest.raises(DriverError, match="nonsense"):
        read_kernel_clock(call)


def test_real_kernel_returns_a_state() -> None:
    kc = read_kernel_clock()
    assert 0 <= kc.state <= 5
    assert kc.maxerror_us >= 0
    assert kc.esterror_us >= 0
