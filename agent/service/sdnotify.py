"""systemd's notification protocol (``sd_notify``) without libsystemd.

One datagram per message on the AF_UNIX socket named by ``$NOTIFY_SOCKET``: newline-separated
``KEY=VALUE`` lines (protocols.md §7). A path starting with ``@`` is a Linux abstract socket.
The watchdog is ours only when ``$WATCHDOG_USEC`` is set and ``$WATCHDOG_PID`` is unset or names
this process; the recommended ping period is half the timeout (sd_watchdog_enabled(3)).

Notifying is best effort: outside systemd every method is a no-op, and a missing or broken socket
is logged once and never raised — a health agent must not die because its supervisor went away.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 1.0  # a busy systemd with a full socket queue must not stall the main loop
STATUS_MAX_BYTES = 200  # systemctl status shows one line; keep it short and bounded
_KEY = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_UINT = re.compile(r"[0-9]{1,19}\Z")  # ASCII digits only: str.isdigit() also accepts "²"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # C0/C1 controls, Unicode line breaks


def sanitize_status(text: str, max_bytes: int = STATUS_MAX_BYTES) -> str:
    """One printable line of at most ``max_bytes`` UTF-8 bytes; a cut ends in ``…``."""
    if max_bytes < 8:
        raise ValueError(f"max_bytes must be at least 8, got {max_bytes}")
    line = " ".join(_CONTROL.sub(" ", text).split())
    data = line.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    ellipsis = "…".encode()
    cut = data[: max_bytes - len(ellipsis)].decode("utf-8", "ignore").rstrip()
    return cut + "…"


def socket_address(value: str) -> str | None:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value, None if the form is unsupported.

    ``/path`` is a file-system socket, ``@name`` the abstract ``\\0name``. Other forms (``vsock:``)
    are not supported, as in systemd's reference implementation.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


class Notifier:
    """Sends ``READY=1``, ``STATUS=``, ``WATCHDOG=1``, ``RELOADING=1``, ``STOPPING=1`` to systemd.

    Thread-safe: one unconnected datagram socket, each message sent with ``sendto`` so a
    re-created notify socket (``systemctl daemon-reexec``) is found again by path. Every method
    returns whether a datagram went out.
    """

    def __init__(self, address: str | None = None, *, watchdog_usec: int | None = None,
                 send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        if watchdog_usec is not None and watchdog_usec <= 0:
            raise ValueError(f"watchdog_usec must be positive, got {watchdog_usec}")
        if not 0 < send_timeout_s <= 60:
            raise ValueError(f"send_timeout_s must be in (0, 60], got {send_timeout_s}")
        self._send_timeout_s = send_timeout_s
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._failing = False  # a failure was logged; log again only after a success

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """A notifier configured the way systemd started this process (no-op outside systemd)."""
        raw = environ.get("NOTIFY_SOCKET", "")
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a path or @abstract name; not notifying systemd",
                        raw)
        return cls(address, watchdog_usec=_watchdog_usec(environ) if address else None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_usec(self) -> int | None:
        return self._watchdog_usec

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to call ``watchdog()``: half of ``WatchdogSec=``; None without a watchdog."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) finished."""
        return self._send(("READY=1", *_status_lines(status)))

    def status(self, text: str) -> bool:
        return self._send(_status_lines(text))

    def watchdog(self) -> bool:
        """Keep-alive ping; nothing is sent when the watchdog is off or belongs to another pid."""
        if self._watchdog_usec is None:
            return False
        return self._send(("WATCHDOG=1",))

    def reloading(self, status: str | None = None) -> bool:
        """A reload began; call ``ready()`` when it is done.

        ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, µs) lets systemd ≥ 253 match this to the reload it
        asked for with ``Type=notify-reload``; older versions ignore the unknown key.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send(("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status_lines(status)))

    def stopping(self, status: str | None = None) -> bool:
        return self._send(("STOPPING=1", *_status_lines(status)))

    def notify(self, assignments: Mapping[str, str]) -> bool:
        """Any other assignment (``EXTEND_TIMEOUT_USEC``, ``X_…``); keys and values are checked."""
        lines = []
        for key, value in assignments.items():
            if not _KEY.match(key):
                raise ValueError(f"not a notification key: {key!r}")
            if "\n" in value or "\0" in value:
                raise ValueError(f"{key}: value must be one line")
            lines.append(f"{key}={value}")
        return self._send(tuple(lines))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, lines: tuple[str, ...]) -> bool:
        if self._address is None or not lines:
            return False
        payload = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = self._open_socket()
                self._sock.sendto(payload, self._address)
            except OSError as e:
                self._report_failure(e)
                # A fresh socket next time: the old one may be in a state we cannot reuse.
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                return False
            if self._failing:
                log.info("systemd notify socket reachable again")
                self._failing = False
            return True

    def _open_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # A datagram send blocks while the receiver's queue is full (net.unix.max_dgram_qlen).
        # SO_SNDTIMEO bounds that wait in the kernel (then EAGAIN); Python's own settimeout()
        # would spin, since an unconnected datagram socket always polls writable.
        seconds = int(self._send_timeout_s)
        micros = int((self._send_timeout_s - seconds) * 1_000_000)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                            struct.pack("@ll", seconds, micros))
        except OSError:
            sock.close()
            raise
        return sock

    def _report_failure(self, error: OSError) -> None:
        shown = self._address.replace("\0", "@", 1) if self._address else ""
        if self._failing:
            log.debug("sd_notify to %s failed: %s", shown, error)
            return
        self._failing = True
        log.warning("cannot notify systemd on %s: %s (further failures logged at debug level)",
                    shown, error)


def _status_lines(text: str | None) -> tuple[str, ...]:
    return () if text is None else (f"STATUS={sanitize_status(text)}",)


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    raw_usec = environ.get("WATCHDOG_USEC", "")
    if not raw_usec:
        return None
    raw_pid = environ.get("WATCHDOG_PID", "")
    if raw_pid:
        if not _UINT.match(raw_pid):
            log.warning("WATCHDOG_PID=%r is not a pid; watchdog off", raw_pid)
            return None
        if int(raw_pid) != os.getpid():
            return None  # the watchdog belongs to another process (we are a child of it)
    if not _UINT.match(raw_usec) or int(raw_usec) == 0:
        log.warning("WATCHDOG_USEC=%r is not a positive number of µs; watchdog off", raw_usec)
        return None
    return int(raw_usec)
