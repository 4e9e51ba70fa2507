"""A trusted server's time from the ``Date`` header of an HTTPS response (RFC 9110 §6.6.1).

One ``HEAD`` request over a verified TLS connection. The server stamps ``Date`` while it answers,
so the local time that matches it is the midpoint between sending the request and receiving the
headers. ``Date`` has a resolution of one second and servers truncate, so the estimate is only
good to about ±(0.5 s + half the round trip).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from posdiag.drivers import netprobe
from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError

# OpenSSL X509_V_ERR_* codes worth telling apart: both can be the local clock's fault.
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10


@dataclass(frozen=True)
class HttpsTarget:
    host: str
    port: int
    path: str

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("no host")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"bad port {self.port}")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/': {self.path!r}")

    @classmethod
    def from_url(cls, url: str) -> HttpsTarget:
        """``https://host[:port][/path]``; raises ValueError for anything else."""
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise ValueError(f"not an https:// URL: {url!r}")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname or "", parts.port or 443, path)  # .port raises on garbage

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerTime:
    """What one request measured. ``skew_s`` > 0 means the local clock is ahead."""

    server_date: datetime  # the Date header, whole seconds, UTC
    sent_at: float  # local wall clock (time.time()) just before the request was sent
    rtt_s: float  # request sent → response headers read, on the monotonic clock

    def __post_init__(self) -> None:
        if self.server_date.tzinfo is None:
            raise ValueError("server_date must be timezone-aware")
        if self.rtt_s < 0:
            raise ValueError("negative round trip")

    @property
    def skew_s(self) -> float:
        local_mid = self.sent_at + self.rtt_s / 2
        server_mid = self.server_date.timestamp() + 0.5  # Date is truncated to the second
        return local_mid - server_mid

    @property
    def uncertainty_s(self) -> float:
        return 0.5 + self.rtt_s / 2


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date (IMF-fixdate; the obsolete forms too) as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": UTC without a claimed zone
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Verification on, always: certificate chain and host name (``netprobe``'s client context)."""
    try:
        return netprobe.tls_context(ca_file or "")
    except (OSError, ssl.SSLError) as e:
        why = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
        raise DriverError(f"cannot load CA file {ca_file}: {why}", device=ca_file) from None


def _open(target: HttpsTarget, deadline: float, timeout_s: float) -> socket.socket:
    """DNS and TCP through ``netprobe`` (a resolver that hangs cannot outlive the deadline)."""
    try:
        addresses = netprobe.resolve(target.host, target.port, deadline - time.monotonic())
        sock, _ = netprobe.connect(addresses, deadline - time.monotonic(), deadline=deadline)
    except netprobe.ProbeError as e:
        if e.failure.kind == "timeout":
            raise DeviceTimeout(e.failure.detail, device=target.name,
                                timeout_s=timeout_s) from None
        raise DeviceNotFound(e.failure.detail, device=target.name) from None
    return sock


def fetch_server_time(target: HttpsTarget, *, timeout_s: float,
                      context: ssl.SSLContext | None = None) -> ServerTime:
    """Ask ``target`` for its time. Every step shares one deadline of ``timeout_s``.

    Raises ``DeviceNotFound`` (name does not resolve, refused, unreachable), ``DeviceTimeout``,
    ``ProtocolError`` with kind ``cert_not_yet_valid``, ``cert_expired``, ``tls`` (any other TLS
    failure), ``http`` (not an HTTP answer), ``closed`` (connection lost mid-request) or
    ``no_date``; ``DriverError`` when ``ca_file`` cannot be loaded.
    """
    ctx = context or tls_context()
    deadline = time.monotonic() + timeout_s
    dev = target.name

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout_s, context=ctx)
    raw: socket.socket | None = None
    try:
        raw = _open(target, deadline, timeout_s)
        raw.settimeout(left())
        conn.sock = ctx.wrap_socket(raw, server_hostname=target.host)
        conn.sock.settimeout(left())
        sent_at = time.time()
        started = time.monotonic()
        conn.request("HEAD", target.path, headers={"User-Agent": "posdiag-clock",
                                                   "Cache-Control": "no-cache"})
        response = conn.getresponse()
        rtt = time.monotonic() - started
        date_header = response.getheader("Date")
        response.close()  # releases the socket the response file still references
    except ssl.SSLCertVerificationError as e:
        kind = {X509_V_ERR_CERT_NOT_YET_VALID: "cert_not_yet_valid",
                X509_V_ERR_CERT_HAS_EXPIRED: "cert_expired"}.get(e.verify_code, "tls")
        raise ProtocolError(f"certificate rejected: {e.verify_message}", device=dev,
                            kind=kind) from None
    except ssl.SSLError as e:
        raise ProtocolError(f"TLS handshake failed: {e.reason or e}", device=dev,
                            kind="tls") from None
    except TimeoutError:
        raise DeviceTimeout(f"no answer within {timeout_s:g} s", device=dev,
                            timeout_s=timeout_s) from None
    except http.client.HTTPException as e:
        raise ProtocolError(f"bad HTTP response: {type(e).__name__}", device=dev,
                            kind="http") from None
    except OSError as e:
        raise ProtocolError(f"connection lost: {e.strerror or type(e).__name__}", device=dev,
                            kind="closed") from None
    finally:
        conn.close()
        if raw is not None:
            raw.close()  # a no-op once wrapped; frees the socket if the handshake failed
    server_date = parse_http_date(date_header)
    if server_date is None:
        raise ProtocolError(f"no usable Date header ({date_header!r:.60})", device=dev,
                            kind="no_date")
    return ServerTime(server_date, sent_at, rtt)
