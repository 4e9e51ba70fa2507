"""Serial transport: open a port by URL, bounded I/O, typed errors, and the only raw-byte log.

``open_port`` accepts everything ``serial.serial_for_url`` accepts (a device path, a pty,
``rfc2217://``, ``socket://``, ``loop://``) and returns a ``Port``. Every ``Port`` call is bounded
by a timeout, and every failure leaves as a ``DriverError`` subclass; an I/O failure also closes
the port, so a pulled cable never leaves a half-open handle behind (the "ghost device" that
deadlocked another POS agent's serial thread).

A port held by another process is reported with that process's pid and name: ModemManager
probes ``ttyUSB*``/``ttyACM*`` with AT commands and holds a card reader's port for seconds.

``SpyLog`` is the one place raw bytes are logged. It hex-dumps traffic with direction and
timestamps, but records only byte counts while a swipe may arrive (``redact()``), and never
logs anything that looks like ISO/IEC 7811 track data, whoever forgot to ask for redaction.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import math
import os
import re
import stat
import termios
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import serial

from posdiag.drivers.errors import (
    DeviceBusy,
    DeviceNotFound,
    DeviceTimeout,
    DriverError,
    NotSupported,
    PermissionDenied,
    ProtocolError,
)

__all__ = [
    "Port",
    "PortHolder",
    "SpyLog",
    "SpyRecord",
    "find_port_holders",
    "looks_like_track_data",
    "open_port",
]

Direction = Literal["rx", "tx"]

# How long one underlying read may block. Port keeps its own deadline per call and loops in
# slices of this length, so the pyserial timeout never has to be changed after opening
# (changing it re-sends the whole line configuration on rfc2217:// ports).
_POLL_SLICE_S = 0.05
_DEFAULT_MAX_LINE = 4096
_BUSY_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK})
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


# -- who holds a port -------------------------------------------------------------------------


@dataclass(frozen=True)
class PortHolder:
    """A process that has the device node open."""

    pid: int
    name: str

    def __post_init__(self) -> None:
        if self.pid <= 0:
            raise ValueError(f"pid must be positive, got {self.pid}")
        if not self.name:
            raise ValueError("name must not be empty")

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


def find_port_holders(device_path: str, proc_root: str = "/proc", *,
                      exclude_pids: Iterable[int] = ()) -> list[PortHolder]:
    """Processes with ``device_path`` open, found through ``<proc_root>/<pid>/fd/*``.

    Best effort: processes whose fd table this user may not read are skipped, so an
    unprivileged caller may see fewer holders than there are. Sorted by pid.
    """
    wanted = {device_path, os.path.realpath(device_path)}
    wanted_node = _node_identity(device_path)
    excluded = set(exclude_pids)
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return []
    holders: list[PortHolder] = []
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in excluded or pid <= 0:
            continue
        if _pid_holds(os.path.join(proc_root, entry, "fd"), wanted, wanted_node):
            holders.append(PortHolder(pid, _process_name(proc_root, entry)))
    return sorted(holders, key=lambda holder: holder.pid)


def _node_identity(path: str) -> tuple[tuple[int, int], int | None] | None:
    """(st_dev, st_ino) of the node and its rdev when it is a character device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino), (st.st_rdev if stat.S_ISCHR(st.st_mode) else None)


# Unix98 pty slaves: their minor numbers restart in every devpts instance (each container or
# test sandbox mounts its own), so an equal rdev there does not mean the same terminal.
_PTY_MAJORS = range(136, 144)


def _pid_holds(fd_dir: str, wanted: set[str],
               wanted_node: tuple[tuple[int, int], int | None] | None) -> bool:
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # process gone, or not ours to look at
        return False
    for fd in fds:
        link = os.path.join(fd_dir, fd)
        try:
            target = os.readlink(link)
        except OSError:
            continue
        # Only stat what looks like a device, so a hung network file system cannot stall us.
        if target not in wanted and not target.startswith("/dev/"):
            continue
        if wanted_node is None:
            if target in wanted:
                return True
            continue
        try:
            st = os.stat(link)
        except OSError:
            continue
        identity, rdev = wanted_node
        if (st.st_dev, st.st_ino) == identity:
            return True  # the very same node, whatever path it was opened by
        # The same device through another devtmpfs node (a container's /dev): same rdev.
        if (rdev is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev
                and os.major(rdev) not in _PTY_MAJORS):
            return True
    return False


def _process_name(proc_root: str, pid: str) -> str:
    try:
        with open(os.path.join(proc_root, pid, "comm"), encoding="utf-8", errors="replace") as f:
            name = f.read().strip()
    except OSError:
        name = ""
    return name or "unknown"


# -- spy / record ---------------------------------------------------------------------------

# Start of a track as it appears on the wire: track 1 is '%', a format code letter, then the
# PAN; tracks 2 and 3 are ';' then digits. Matching the start (not the whole record) means a
# track split over several reads is caught at its first PAN digit, before any of it is logged.
_TRACK_START = re.compile(rb"%[A-Z]?[0-9]|;[0-9]")
# A track is at most 107 characters (track 3, ISO/IEC 4909); without an end sentinel by then,
# the match was binary noise and logging may resume.
_MAX_TRACK_LEN = 110


def looks_like_track_data(data: bytes) -> bool:
    """True if ``data`` contains what looks like the start of a magnetic stripe track."""
    return _TRACK_START.search(data) is not None


@dataclass(frozen=True)
class SpyRecord:
    """One logged transfer. ``hex`` is None when the bytes were withheld (``redacted`` says why)."""

    t_s: float
    direction: Direction
    length: int
    hex: str | None
    redacted: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("rx", "tx"):
            raise ValueError(f"direction must be 'rx' or 'tx', got {self.direction!r}")
        if self.length < 0:
            raise ValueError("length must not be negative")
        if (self.hex is None) == (self.redacted is None):
            raise ValueError("exactly one of hex and redacted must be set")

    def __str__(self) -> str:
        body = self.hex if self.hex is not None else f"<withheld: {self.redacted}>"
        return f"{self.direction} {self.t_s:10.6f} {self.length:4d} B  {body}"


class _TrackGuard:
    """Per-direction state: are we inside something that looks like a track?"""

    def __init__(self) -> None:
        self._tail = b""  # last bytes seen, so a sentinel split across reads still matches
        self._remaining = 0  # > 0 while inside a suspected track

    def scan(self, data: bytes) -> bool:
        """Feed ``data``; True if any of it must be withheld."""
        window = self._tail + data
        # The tail was scanned already; it is only there to catch a start split across reads.
        pos = len(self._tail) if self._remaining > 0 else 0
        self._tail = window[-2:]
        suspicious = self._remaining > 0
        while pos < len(window):
            if self._remaining > 0:
                limit = min(len(window), pos + self._remaining)
                end = window.find(b"?", pos, limit)
                if end >= 0:
                    self._remaining = 0
                    pos = end + 1
                else:
                    self._remaining -= limit - pos
                    pos = limit
                continue
            match = _TRACK_START.search(window, pos)
            if match is None:
                break
            suspicious = True
            self._remaining = _MAX_TRACK_LEN
            pos = match.start() + 1
        return suspicious


class SpyLog:
    """Records traffic of a ``Port`` as hex, to a logger and/or a list, never card data.

    - ``with spy.redact():`` (or ``spy.redacting = True``) while a swipe may arrive: only byte
      counts are recorded;
    - independently, anything that looks like track data is never recorded as bytes.
    """

    def __init__(self, *, logger: logging.Logger | None = None,
                 records: list[SpyRecord] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.records = records
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()
        self._depth = 0
        self._forced = False
        self._guards = {"rx": _TrackGuard(), "tx": _TrackGuard()}

    @property
    def redacting(self) -> bool:
        return self._forced or self._depth > 0

    @redacting.setter
    def redacting(self, value: bool) -> None:
        with self._lock:
            self._forced = value

    @contextmanager
    def redact(self) -> Iterator[None]:
        """Record only byte counts inside this block (nestable, thread-safe)."""
        with self._lock:
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1

    def record(self, direction: Direction, data: bytes) -> SpyRecord:
        with self._lock:
            # The guard sees every byte, also while redacting, so its state stays correct.
            track_like = self._guards[direction].scan(data)
            if self._forced or self._depth > 0:
                entry = SpyRecord(self._clock() - self._t0, direction, len(data), None,
                                  "redaction requested")
            elif track_like:
                entry = SpyRecord(self._clock() - self._t0, direction, len(data), None,
                                  "looks like card track data")
            else:
                entry = SpyRecord(self._clock() - self._t0, direction, len(data),
                                  data.hex(" "))
            if self.records is not None:
                self.records.append(entry)
        if self.logger is not None:
            self.logger.debug("%s", entry)
        return entry


# -- the port -------------------------------------------------------------------------------


class Port:
    """A serial port with bounded I/O and typed errors. Use ``open_port`` to make one.

    Meant for one thread at a time (a driver owns its port); only ``SpyLog`` is shared-safe.
    """

    def __init__(self, ser: serial.SerialBase, *, url: str, timeout_s: float,
                 write_timeout_s: float, spy: SpyLog | None, local_path: str | None,
                 proc_root: str) -> None:
        self._serial: serial.SerialBase | None = ser
        self.url = url
        self.timeout_s = timeout_s
        self.write_timeout_s = write_timeout_s
        self.spy = spy
        self._local_path = local_path
        self._proc_root = proc_root
        self._failure: DriverError | None = None

    # -- life cycle -----------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def close(self) -> None:
        """Close the port. Idempotent; never raises."""
        ser, self._serial = self._serial, None
        if ser is None:
            return
        try:
            ser.close()
        except Exception:  # closing a dead port can fail in many ways; it is closed either way
            logging.getLogger(__name__).debug("error while closing %s", self.url, exc_info=True)

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Port({self.url!r}, {'open' if self.is_open else 'closed'})"

    def redact(self) -> AbstractContextManager[None]:
        """``with port.redact():`` while card data may arrive; a no-op without a spy."""
        return self.spy.redact() if self.spy is not None else nullcontext()

    # -- reads ----------------------------------------------------------------------------
    def read(self, n: int = 1, *, timeout_s: float | None = None) -> bytes:
        """Up to ``n`` bytes: early once ``n`` arrived, else what came within the timeout."""
        if n < 0:
            raise ValueError("n must not be negative")
        deadline = self._deadline(timeout_s)
        buf = bytearray()
        while len(buf) < n:
            buf += self._read_slice(n - len(buf))
            if time.monotonic() >= deadline:
                break
        return self._received(bytes(buf))

    def read_exactly(self, n: int, *, timeout_s: float | None = None) -> bytes:
        """Exactly ``n`` bytes, or ``DeviceTimeout``."""
        limit = self._timeout(timeout_s)
        data = self.read(n, timeout_s=limit)
        if len(data) < n:
            raise DeviceTimeout(f"expected {n} bytes, got {len(data)} within {limit:g} s",
                                device=self.url, timeout_s=limit)
        return data

    def read_until(self, terminator: bytes = b"\n", *, max_bytes: int = _DEFAULT_MAX_LINE,
                   timeout_s: float | None = None) -> bytes:
        """Bytes up to and including ``terminator``.

        ``DeviceTimeout`` if it does not arrive in time, ``ProtocolError(kind="framing")`` if
        ``max_bytes`` arrive without it. Reads byte by byte so nothing after the terminator is
        consumed.
        """
        if not terminator:
            raise ValueError("terminator must not be empty")
        limit = self._timeout(timeout_s)
        deadline = time.monotonic() + limit
        buf = bytearray()
        while not buf.endswith(terminator):
            if len(buf) >= max_bytes:
                self._received(bytes(buf))
                raise ProtocolError(f"no {terminator!r} within {max_bytes} bytes",
                                    device=self.url, kind="framing")
            if time.monotonic() >= deadline:
                self._received(bytes(buf))
                raise DeviceTimeout(f"no {terminator!r} within {limit:g} s "
                                    f"({len(buf)} bytes received)",
                                    device=self.url, timeout_s=limit)
            buf += self._read_slice(1)
        return self._received(bytes(buf))

    @property
    def in_waiting(self) -> int:
        ser = self._live()
        try:
            return int(ser.in_waiting)
        except (serial.SerialException, OSError, termios.error) as exc:
            if _errno(exc) == errno.ENOTTY:
                # Some tty emulations (umockdev's) do not implement FIONREAD: not an unplug;
                # report nothing waiting and let the read with its timeout find out.
                return 0
            raise self._fail("checking input", exc) from exc

    def reset_input_buffer(self) -> None:
        ser = self._live()
        try:
            ser.reset_input_buffer()
        except (serial.SerialException, OSError, termios.error) as exc:
            if _errno(exc) != errno.ENOTTY:
                raise self._fail("clearing input", exc) from exc
            self._drain()  # no tcflush on this tty emulation: discard what is there by reading

    def _drain(self) -> None:
        ser = self._live()
        saved = ser.timeout
        try:
            ser.timeout = 0
            while ser.read(4096):
                pass
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._fail("clearing input", exc) from exc
        finally:
            with contextlib.suppress(serial.SerialException, OSError, ValueError):
                ser.timeout = saved

    # -- writes ---------------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        """Write all of ``data``; ``DeviceTimeout`` if the device does not take it in time."""
        ser = self._live()
        try:
            written = ser.write(data)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"write of {len(data)} bytes not accepted within "
                                f"{self.write_timeout_s:g} s (flow control stuck?)",
                                device=self.url, timeout_s=self.write_timeout_s) from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._fail("writing", exc) from exc
        if self.spy is not None:
            self.spy.record("tx", bytes(data))
        return len(data) if written is None else int(written)

    def flush(self) -> None:
        """Wait until written bytes have left the output queue, bounded by the write timeout."""
        ser = self._live()
        deadline = time.monotonic() + self.write_timeout_s
        try:
            # Polling the queue instead of tcdrain(): tcdrain has no timeout and blocks forever
            # when hardware flow control stalls.
            while True:
                try:
                    pending = int(ser.out_waiting)
                except (NotImplementedError, AttributeError):
                    ser.flush()
                    return
                except OSError as exc:
                    if _errno(exc) == errno.ENOTTY:  # no TIOCOUTQ (umockdev): written = gone
                        return
                    raise
                if pending == 0:
                    return
                if time.monotonic() >= deadline:
                    raise DeviceTimeout(f"{pending} bytes still queued after "
                                        f"{self.write_timeout_s:g} s (flow control stuck?)",
                                        device=self.url, timeout_s=self.write_timeout_s)
                time.sleep(0.005)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._fail("flushing", exc) from exc

    # -- internals ------------------------------------------------------------------------
    def _live(self) -> serial.SerialBase:
        if self._serial is None:
            if self._failure is not None:
                raise type(self._failure)(f"port was closed after an earlier failure: "
                                          f"{self._failure.message}", device=self.url)
            raise DriverError("port is closed", device=self.url)
        return self._serial

    def _timeout(self, timeout_s: float | None) -> float:
        if timeout_s is None:
            return self.timeout_s
        _check_timeout("timeout_s", timeout_s)
        return timeout_s

    def _deadline(self, timeout_s: float | None) -> float:
        return time.monotonic() + self._timeout(timeout_s)

    def _read_slice(self, n: int) -> bytes:
        ser = self._live()
        try:
            return bytes(ser.read(n))
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._fail("reading", exc) from exc

    def _received(self, data: bytes) -> bytes:
        if data and self.spy is not None:
            self.spy.record("rx", data)
        return data

    def _fail(self, action: str, exc: BaseException) -> DriverError:
        """Close the port and turn ``exc`` into the matching DriverError."""
        self.close()
        code = getattr(exc, "errno", None)
        holders = self._other_holders()
        error: DriverError
        if holders:
            error = _busy(self.url, holders, f"I/O failed while {action}")
        elif code in _DENIED_ERRNOS:
            error = PermissionDenied(f"permission denied while {action}: {exc}", device=self.url)
        else:
            # EIO, "readiness to read but returned no data", ENODEV ...: on Linux these all
            # mean the device under the port went away, typically a pulled USB cable.
            error = DeviceNotFound(f"device disconnected while {action} ({_reason(exc)}); "
                                   f"port closed", device=self.url)
        self._failure = error
        return error

    def _other_holders(self) -> list[PortHolder]:
        if self._local_path is None:
            return []
        return find_port_holders(self._local_path, self._proc_root, exclude_pids=(os.getpid(),))


def _errno(exc: BaseException) -> int | None:
    """errno of an OSError, or of the OSError pyserial or termios wrapped."""
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]  # termios.error carries (errno, text) in args
    if code is None and isinstance(exc.__context__, OSError):
        code = exc.__context__.errno
    return code if isinstance(code, int) else None


# -- opening ------------------------------------------------------------------------------------


def open_port(url: str, *, baudrate: int, timeout_s: float,
              write_timeout_s: float | None = None, spy: SpyLog | None = None,
              exclusive: bool = True, proc_root: str = "/proc",
              **serial_kwargs: Any) -> Port:
    """Open ``url`` (device path or pyserial URL) and return a ``Port``.

    ``timeout_s`` bounds every read (and writes too, unless ``write_timeout_s`` is given).
    With ``exclusive`` (default) a local device is locked with ``flock`` and refused if any other
    process has it open (found through ``proc_root``). ``serial_kwargs`` go to pyserial
    (``bytesize``, ``parity``, ``stopbits``, ``rtscts`` ...).

    Raises ``DeviceNotFound``, ``PermissionDenied`` (``group`` = group owning the node),
    ``DeviceBusy`` (``holder_pid``/``holder_name``), ``NotSupported`` or ``DriverError``.
    """
    if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate <= 0:
        raise ValueError(f"baudrate must be a positive integer, got {baudrate!r}")
    _check_timeout("timeout_s", timeout_s)
    if write_timeout_s is None:
        write_timeout_s = timeout_s
    _check_timeout("write_timeout_s", write_timeout_s)
    for key in ("timeout", "write_timeout", "port", "url", "do_not_open"):
        if key in serial_kwargs:
            raise ValueError(f"{key!r} is managed by open_port; use timeout_s/write_timeout_s")
    scheme = _scheme(url)
    if scheme == "spy":
        # pyserial's spy:// writes raw bytes to stderr, card data included.
        raise NotSupported("spy:// logs raw bytes unfiltered; pass spy=SpyLog(...) instead",
                           device=url)
    local_path = None if scheme else url
    if local_path is not None:
        serial_kwargs["exclusive"] = exclusive
    try:
        ser = serial.serial_for_url(url, baudrate=baudrate, timeout=min(timeout_s, _POLL_SLICE_S),
                                    write_timeout=write_timeout_s, **serial_kwargs)
    except ValueError as exc:  # bad settings or an unknown URL scheme
        raise NotSupported(f"cannot open with these settings: {exc}", device=url) from exc
    except (serial.SerialException, OSError, termios.error) as exc:
        raise _open_error(url, local_path, exc, proc_root) from exc
    port = Port(ser, url=url, timeout_s=timeout_s, write_timeout_s=write_timeout_s, spy=spy,
                local_path=local_path, proc_root=proc_root)
    if local_path is not None and exclusive:
        holders = find_port_holders(local_path, proc_root, exclude_pids=(os.getpid(),))
        if holders:
            port.close()
            raise _busy(url, holders, "port is in use")
    return port


def _scheme(url: str) -> str | None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return match.group(1).lower() if match else None


def _check_timeout(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code:
        return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
    return str(exc) or type(exc).__name__


def _busy(url: str, holders: list[PortHolder], what: str) -> DeviceBusy:
    names = ", ".join(str(holder) for holder in holders)
    first = holders[0]
    return DeviceBusy(f"{what}: held by {names}", device=url,
                      holder_pid=first.pid, holder_name=first.name)


def _open_error(url: str, local_path: str | None, exc: BaseException,
                proc_root: str) -> DriverError:
    code = getattr(exc, "errno", None)
    if local_path is None:
        # URL handlers (rfc2217://, socket://) mostly report without an errno.
        return DeviceNotFound(f"cannot open: {_reason(exc)}", device=url)
    if code in _GONE_ERRNOS:
        return DeviceNotFound(f"no such device ({_reason(exc)}); unplugged, or wrong port "
                              f"in the configuration?", device=url)
    if code in _DENIED_ERRNOS:
        return _permission_denied(url, local_path, exc)
    if code in _BUSY_ERRNOS:
        # Another handle holds the lock or set TIOCEXCL: name other processes first, and
        # only then this one (a second open of the same port from this very process).
        holders = find_port_holders(local_path, proc_root, exclude_pids=(os.getpid(),))
        if holders:
            return _busy(url, holders, "port is locked")
        holders = find_port_holders(local_path, proc_root)
        if holders:
            return _busy(url, holders, "port is locked by another handle of this process")
        return DeviceBusy(f"port is locked by another process that this user cannot see "
                          f"({_reason(exc)})", device=url)
    try:
        st = os.stat(local_path)
    except OSError:
        return DeviceNotFound(f"no such device ({_reason(exc)})", device=url)
    if not stat.S_ISCHR(st.st_mode):
        return DeviceNotFound(f"{local_path} is not a serial device node", device=url)
    if os.strerror(errno.ENOTTY) in str(exc):
        # pyserial folds the termios error into its message without an errno.
        return NotSupported(f"{local_path} is a character device but not a tty (a usblp "
                            f"printer node?): serial settings do not apply", device=url)
    return DriverError(f"cannot open: {_reason(exc)}", device=url)


def _permission_denied(url: str, path: str, exc: BaseException) -> PermissionDenied:
    try:
        st = os.stat(path)
    except OSError:
        return PermissionDenied(f"permission denied ({_reason(exc)})", device=url)
    try:
        group: str | None = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = None
    mode = stat.S_IMODE(st.st_mode)
    owner = group if group is not None else f"gid {st.st_gid}"
    if group is not None and mode & 0o060 == 0o060:
        advice = f"; add the service user to group '{group}'"
    else:
        advice = "; the group may not read and write it either: check the udev rule"
    return PermissionDenied(f"permission denied (node owned by group {owner}, mode "
                            f"{mode:04o}){advice}", device=url, group=group)
