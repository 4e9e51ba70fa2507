"""The network flight recorder's file: one fixed-size record per minute in a preallocated ring.

Why a ring of fixed slots rather than an append log or SQLite: the file's size is decided once,
at creation (header + slots × record size; 72 h = 4,320 slots × 24 B + 32 B = 103,712 bytes), and
every later write overwrites bytes that are already allocated. A disk that fills up afterwards
therefore cannot stop the recorder, and nothing ever needs compacting or rotating. The slot of a
minute is ``epoch_minute % slots`` and each record carries its own minute, so a slot left over
from an earlier lap (the agent was off, or the clock jumped) is recognised as stale, not shown.
A CRC over each record catches a torn write (power cut mid-``pwrite``): such a record reads as
missing. This module is outside the service package so the CLI and the diagnosis can read it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from posdiag.errors import PosdiagError

log = logging.getLogger("posdiag.flightlog")

MAGIC = b"PDFLIGHT"
VERSION = 1
# magic, version, record size, slots, created (epoch minute); padded to 32 bytes
_HEADER = struct.Struct("<8sHHII12x")
HEADER_SIZE = _HEADER.size
# minute, link, link changes, interface kind, Wi-Fi dBm, cellular stat, RSSI, RSRP, RTT status,
# RTT ms, DNS ms, power source, battery %, 1 spare byte, CRC-32 of everything before it
_RECORD = struct.Struct("<IBBBbBbhBHHBBxI")
RECORD_SIZE = _RECORD.size
MINUTES_72H = 72 * 60

IFACES = ("ethernet", "wifi", "cellular", "other", "none")
POWER = ("mains", "battery")
# How the round trip to the payment host went; "ok" is the only one with a time.
RTT_OUTCOMES = ("ok", "refused", "timeout", "unreachable", "dns", "error")

_U8_NONE, _I8_NONE, _I16_NONE, _U16_NONE = 0xFF, -128, -32768, 0xFFFF
_DNS_FAILED = 0xFFFE


class FlightLogError(PosdiagError):
    """The flight log cannot be created or opened (disk full, permissions, not a flight log)."""


class FlightLogCorrupt(FlightLogError):
    """The file exists but its header is not a flight log header of this version."""


@dataclass(frozen=True)
class Sample:
    """One minute. ``None`` in any field means "unknown" (not measured or not readable)."""

    minute: int  # minutes since the epoch (UTC)
    link_up: bool | None = None
    link_changes: int | None = None  # link up/down transitions seen during the minute
    iface: str | None = None  # one of IFACES: the interface carrying the default route
    wifi_dbm: int | None = None
    cell_stat: int | None = None  # 3GPP <stat> of +CREG/+CGREG/+CEREG
    rssi_dbm: int | None = None
    rsrp_dbm: int | None = None
    rtt: str | None = None  # one of RTT_OUTCOMES; None: not probed
    rtt_ms: int | None = None
    dns_ms: int | None = None
    dns_failed: bool = False
    power: str | None = None  # one of POWER
    battery_pct: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.minute < 1 << 32:
            raise ValueError(f"minute out of range: {self.minute!r}")
        for name, allowed in (("iface", IFACES), ("power", POWER), ("rtt", RTT_OUTCOMES)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")

    @property
    def at(self) -> float:
        return self.minute * 60.0

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def minute_of(epoch_s: float) -> int:
    return int(epoch_s // 60)


def _clamp(v: int | None, lo: int, hi: int, none: int) -> int:
    return none if v is None else max(lo, min(hi, int(v)))


def encode(s: Sample) -> bytes:
    body = _RECORD.pack(
        s.minute,
        0 if s.link_up is None else 2 if s.link_up else 1,
        _clamp(s.link_changes, 0, 254, _U8_NONE),
        0 if s.iface is None else IFACES.index(s.iface) + 1,
        _clamp(s.wifi_dbm, -127, 0, _I8_NONE),
        _clamp(s.cell_stat, 0, 254, _U8_NONE),
        _clamp(s.rssi_dbm, -127, 0, _I8_NONE),
        _clamp(s.rsrp_dbm, -200, 0, _I16_NONE),
        0 if s.rtt is None else RTT_OUTCOMES.index(s.rtt) + 1,
        _clamp(s.rtt_ms, 0, 0xFFFD, _U16_NONE),
        _DNS_FAILED if s.dns_failed else _clamp(s.dns_ms, 0, 0xFFFD, _U16_NONE),
        0 if s.power is None else POWER.index(s.power) + 1,
        _clamp(s.battery_pct, 0, 100, _U8_NONE),
        0,
    )
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def decode(raw: bytes) -> Sample | None:
    """The sample in one record, or None for an empty, torn or unreadable slot."""
    (minute, link, changes, iface, wifi, stat, rssi, rsrp, rtt, rtt_ms, dns, power, batt,
     crc) = _RECORD.unpack(raw)
    if minute == 0 or crc != zlib.crc32(raw[:-4]):
        return None
    try:
        return Sample(
            minute=minute,
            link_up=None if link == 0 else link == 2,
            link_changes=None if changes == _U8_NONE else changes,
            iface=IFACES[iface - 1] if 0 < iface <= len(IFACES) else None,
            wifi_dbm=None if wifi == _I8_NONE else wifi,
            cell_stat=None if stat == _U8_NONE else stat,
            rssi_dbm=None if rssi == _I8_NONE else rssi,
            rsrp_dbm=None if rsrp == _I16_NONE else rsrp,
            rtt=RTT_OUTCOMES[rtt - 1] if 0 < rtt <= len(RTT_OUTCOMES) else None,
            rtt_ms=None if rtt_ms == _U16_NONE else rtt_ms,
            dns_ms=None if dns in (_U16_NONE, _DNS_FAILED) else dns,
            dns_failed=dns == _DNS_FAILED,
            power=POWER[power - 1] if 0 < power <= len(POWER) else None,
            battery_pct=None if batt == _U8_NONE else batt,
        )
    except ValueError:
        return None


def path_for(state_dir: str, configured: str = "") -> Path:
    """Where the log lives: ``[recorder] path``, else ``flightlog.bin`` in the state dir."""
    return Path(configured or str(Path(state_dir) / "flightlog.bin"))


def file_size(slots: int) -> int:
    """Bytes on disk for ``slots`` minutes; fixed for the file's whole life."""
    return HEADER_SIZE + slots * RECORD_SIZE


class FlightLog:
    """An open flight log. ``create`` makes one, ``open`` reads an existing one, and
    ``open_or_create`` is what the recorder uses (a damaged file is moved aside first)."""

    def __init__(self, path: Path, fd: int, slots: int, *, writable: bool) -> None:
        self.path = path
        self._fd = fd
        self.slots = slots
        self.writable = writable

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, slots: int = MINUTES_72H, *, now: float | None = None
               ) -> FlightLog:
        """Write a new file next to ``path`` with every byte allocated, then rename it in place,
        so a failed creation (ENOSPC) leaves no half file behind."""
        if not 1 <= slots <= 1 << 20:
            raise ValueError(f"slots must be 1..{1 << 20}, not {slots}")
        tmp = path.with_name(path.name + ".new")
        size = file_size(slots)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        except OSError as e:
            raise FlightLogError(f"cannot create {path}: {e.strerror or e}") from None
        try:
            _allocate(fd, size)
            header = _HEADER.pack(MAGIC, VERSION, RECORD_SIZE, slots,
                                  minute_of(time.time() if now is None else now))
            os.pwrite(fd, header, 0)
            os.fsync(fd)
            os.replace(tmp, path)
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            need = f" ({size} bytes needed)" if e.errno == errno.ENOSPC else ""
            raise FlightLogError(f"cannot create {path}: {e.strerror or e}{need}") from None
        return cls(path, fd, slots, writable=True)

    @classmethod
    def open(cls, path: Path, *, writable: bool = False) -> FlightLog:
        try:
            fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        except OSError as e:
            raise FlightLogError(f"cannot open {path}: {e.strerror or e}") from None
        try:
            raw = os.pread(fd, HEADER_SIZE, 0)
            size = os.fstat(fd).st_size
        except OSError as e:
            os.close(fd)
            raise FlightLogError(f"cannot read {path}: {e.strerror or e}") from None
        problem = _header_problem(raw, size)
        if problem:
            os.close(fd)
            raise FlightLogCorrupt(f"{path} is not a usable flight log: {problem}")
        slots = _HEADER.unpack(raw)[3]
        return cls(path, fd, slots, writable=writable)

    @classmethod
    def open_or_create(cls, path: Path, slots: int = MINUTES_72H) -> FlightLog:
        """The recorder's way in. A file with another slot count (``hours`` changed) or a
        damaged header is moved aside with a log line, never silently overwritten: it may be
        the evidence someone wants."""
        if path.exists():
            try:
                fl = cls.open(path, writable=True)
            except FlightLogCorrupt as e:
                aside = _move_aside(path)
                log.error("%s; moved it to %s and starting a new one", e, aside)
            else:
                if fl.slots == slots:
                    return fl
                fl.close()
                aside = _move_aside(path)
                log.warning("flight log %s holds %d minutes, configured %d; moved it to %s and "
                            "starting a new one", path, fl.slots, slots, aside)
        return cls.create(path, slots)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FlightLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- records ---------------------------------------------------------------------------------
    def _offset(self, minute: int) -> int:
        return HEADER_SIZE + (minute % self.slots) * RECORD_SIZE

    def write(self, sample: Sample) -> None:
        """Overwrite the sample's slot. No fsync: losing the last minutes in a power cut is
        acceptable, wearing the terminal's eMMC with 1,440 syncs a day is not."""
        if not self.writable:
            raise FlightLogError(f"{self.path} is open read-only")
        try:
            os.pwrite(self._fd, encode(sample), self._offset(sample.minute))
        except OSError as e:
            raise FlightLogError(f"cannot write {self.path}: {e.strerror or e}") from None

    def read(self, minute: int) -> Sample | None:
        raw = os.pread(self._fd, RECORD_SIZE, self._offset(minute))
        if len(raw) != RECORD_SIZE:
            return None
        s = decode(raw)
        return s if s is not None and s.minute == minute else None  # else stale: another lap

    def window(self, t0: float, t1: float) -> list[Sample]:
        """Samples from epoch second ``t0`` to ``t1`` (both minutes included), oldest first.
        A window longer than the ring is cut to its last ``slots`` minutes."""
        return [s for _m, s in self.minutes(t0, t1) if s is not None]

    def minutes(self, t0: float, t1: float) -> Iterator[tuple[int, Sample | None]]:
        """Every minute of the window with its sample, or None where none was recorded."""
        m0, m1 = minute_of(t0), minute_of(t1)
        m0 = max(m0, m1 - self.slots + 1, 1)
        if m1 < m0:
            return
        # One read for the whole window (at most two: it may wrap around the ring's end).
        raw = self._read_span(m0, m1 - m0 + 1)
        for i in range(m1 - m0 + 1):
            s = decode(raw[i * RECORD_SIZE:(i + 1) * RECORD_SIZE])
            yield m0 + i, s if s is not None and s.minute == m0 + i else None

    def _read_span(self, m0: int, count: int) -> bytes:
        first = m0 % self.slots
        head = min(count, self.slots - first)
        out = os.pread(self._fd, head * RECORD_SIZE, HEADER_SIZE + first * RECORD_SIZE)
        if count > head:
            out += os.pread(self._fd, (count - head) * RECORD_SIZE, HEADER_SIZE)
        return out.ljust(count * RECORD_SIZE, b"\0")


def _allocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # A file system without fallocate: writing the zeros allocates the blocks just as well.
        os.pwrite(fd, bytes(size), 0)


def _header_problem(raw: bytes, size: int) -> str | None:
    if len(raw) < HEADER_SIZE:
        return f"only {size} bytes long"
    magic, version, record_size, slots, _created = _HEADER.unpack(raw)
    if magic != MAGIC:
        return "wrong magic bytes"
    if version != VERSION:
        return f"format version {version}, this agent reads {VERSION}"
    if record_size != RECORD_SIZE:
        return f"record size {record_size}, expected {RECORD_SIZE}"
    if not 1 <= slots <= 1 << 20:
        return f"slot count {slots} out of range"
    if size < file_size(slots):
        return f"{size} bytes long, {file_size(slots)} expected for {slots} slots"
    return None


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    try:
        os.replace(path, aside)
    except OSError as e:
        raise FlightLogError(f"cannot move {path} aside: {e.strerror or e}") from None
    return aside
