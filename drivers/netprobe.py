"""Reachability of a TCP or TLS service, layer by layer: DNS → TCP connect → TLS handshake.

Each layer has its own timeout and all of them stop at one absolute ``deadline`` (monotonic
clock), so a probe never outlives the check that asked for it. The single-layer functions
(``resolve``, ``connect``, ``handshake``) raise ``ProbeError``; ``probe`` runs the ladder, stops at
the first failing layer and returns a ``ProbeReport`` value with the timings and that failure.

TLS verification is always on (certificate chain and host name, TLS 1.2 or newer). Interpreting
what a failure means — which verify code is an expired certificate, how many days are too few —
is the check's job; this module reports the facts.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from posdiag.drivers.errors import DriverError

if TYPE_CHECKING:
    import ssl

Layer = Literal["dns", "tcp", "tls"]

# The kinds of failure each layer reports (ProbeFailure.kind).
DNS_KINDS = frozenset({"no_such_name", "no_address", "resolver_unavailable", "timeout",
                       "bad_name", "error"})
TCP_KINDS = frozenset({"refused", "timeout", "unreachable", "error"})
TLS_KINDS = frozenset({"verify", "timeout", "closed", "protocol", "ca_file", "error"})
_KINDS: Mapping[str, frozenset[str]] = {"dns": DNS_KINDS, "tcp": TCP_KINDS, "tls": TLS_KINDS}

_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN,
                          errno.EHOSTDOWN, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})
# When every address of a host fails, the most telling failure is reported: a refusal proves the
# host is there, a timeout points at a filter, "unreachable" is often just a missing IPv6 route.
_TCP_RANK = {"refused": 0, "timeout": 1, "unreachable": 2, "error": 3}

GetAddrInfo = Callable[..., Sequence[tuple[Any, ...]]]


@dataclass(frozen=True)
class Address:
    """One resolved address of a host, ready for ``socket.connect``."""

    family: int
    sockaddr: tuple[Any, ...]

    def __post_init__(self) -> None:
        if self.family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"not an IP address family: {self.family!r}")
        if len(self.sockaddr) < 2:
            raise ValueError(f"socket address needs host and port: {self.sockaddr!r}")

    @property
    def ip(self) -> str:
        return str(self.sockaddr[0])

    @property
    def port(self) -> int:
        return int(self.sockaddr[1])

    def __str__(self) -> str:
        if self.family == socket.AF_INET6:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ProbeFailure:
    """Why a layer failed: ``kind`` is a word from that layer's set, ``detail`` a human line.

    ``verify_code`` is OpenSSL's X509_V_ERR_* number when the certificate was rejected; ``detail``
    is then OpenSSL's text for it ("certificate has expired").
    """

    layer: Layer
    kind: str
    detail: str
    errno: int | None = None
    verify_code: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        kinds = _KINDS.get(self.layer)
        if kinds is None:
            raise ValueError(f"unknown layer {self.layer!r}")
        if self.kind not in kinds:
            raise ValueError(f"{self.kind!r} is not a {self.layer} failure kind")


class ProbeError(DriverError):
    """A layer failed; ``failure`` says which and why."""

    def __init__(self, failure: ProbeFailure, *, device: str | None = None) -> None:
        super().__init__(failure.detail, device=device)
        self.failure = failure


@dataclass(frozen=True)
class PeerCertificate:
    """The verified server certificate, as far as it could be read (unreadable fields are None)."""

    subject_cn: str | None = None
    issuer_cn: str | None = None
    not_before: float | None = None  # seconds since the epoch (UTC)
    not_after: float | None = None
    dns_names: tuple[str, ...] = ()

    def days_left(self, now: float) -> float | None:
        return None if self.not_after is None else (self.not_after - now) / 86400.0


@dataclass(frozen=True)
class TlsSession:
    version: str | None
    cipher: str | None
    certificate: PeerCertificate


@dataclass(frozen=True)
class ProbeTarget:
    """What to probe. ``server_name`` (SNI and the name the certificate must carry) defaults to
    ``host``; ``ca_file`` replaces the system CA store when set."""

    host: str
    port: int = 443
    tls: bool = True
    server_name: str = ""
    ca_file: str = ""
    dns_timeout_s: float = 3.0
    connect_timeout_s: float = 5.0
    tls_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("host must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, not {self.port!r}")
        for name in ("dns_timeout_s", "connect_timeout_s", "tls_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0")

    @property
    def verify_name(self) -> str:
        return self.server_name or self.host

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ProbeReport:
    """How far the ladder got. A layer not reached has timing None; ``failure`` is the first
    failing layer (None: every layer asked for passed)."""

    target: ProbeTarget
    addresses: tuple[Address, ...] = ()
    connected: Address | None = None
    dns_ms: float | None = None
    tcp_ms: float | None = None
    tls_ms: float | None = None
    session: TlsSession | None = None
    failure: ProbeFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


# --------------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------------
def resolve(host: str, port: int, timeout_s: float, *,
            getaddrinfo: GetAddrInfo = socket.getaddrinfo) -> tuple[Address, ...]:
    """The TCP addresses of ``host`` in the resolver's preferred order.

    getaddrinfo has no timeout of its own (glibc retries for tens of seconds against a silent
    server), so it runs in a daemon thread that is abandoned at the timeout.
    """
    if timeout_s <= 0:
        raise ProbeError(ProbeFailure("dns", "timeout", f"no time left to look up {host}"),
                         device=host)
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       proto=socket.IPPROTO_TCP))
        except Exception as e:  # handed to the caller's thread below
            outcome.append(e)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"dns-{host}"[:60], daemon=True).start()
    if not done.wait(timeout_s):
        raise ProbeError(ProbeFailure("dns", "timeout",
                                      f"no answer from the resolver for {host} within "
                                      f"{timeout_s:.3g} s"), device=host)
    result = outcome[0]
    if isinstance(result, Exception):
        raise ProbeError(_dns_failure(host, result), device=host) from result
    addresses: list[Address] = []
    try:
        for family, _type, _proto, _canon, sockaddr in result:
            if family in (socket.AF_INET, socket.AF_INET6):
                a = Address(int(family), tuple(sockaddr))
                if a not in addresses:
                    addresses.append(a)
    except (TypeError, ValueError) as e:
        raise ProbeError(ProbeFailure("dns", "error", f"resolver returned garbage for {host}: {e}"),
                         device=host) from e
    if not addresses:
        raise ProbeError(ProbeFailure("dns", "no_address", f"{host} has no IPv4 or IPv6 address"),
                         device=host)
    return tuple(addresses)


def _dns_failure(host: str, e: Exception) -> ProbeFailure:
    if isinstance(e, UnicodeError):
        return ProbeFailure("dns", "bad_name", f"{host!r} is not a valid host name")
    if isinstance(e, socket.gaierror):
        code = e.errno
        text = e.strerror or str(e)
        if code == socket.EAI_NONAME:
            kind = "no_such_name"
        elif code in (getattr(socket, "EAI_NODATA", None), getattr(socket, "EAI_ADDRFAMILY", None)):
            kind = "no_address"
        elif code == socket.EAI_AGAIN:
            kind = "resolver_unavailable"
        else:
            kind = "error"
        return ProbeFailure("dns", kind, f"DNS lookup of {host} failed: {text}",
                            errno=code if isinstance(code, int) else None)
    return ProbeFailure("dns", "error", f"DNS lookup of {host} failed: {type(e).__name__}: {e}")


# --------------------------------------------------------------------------------------------
# TCP
# --------------------------------------------------------------------------------------------
def connect(addresses: Sequence[Address], timeout_s: float, *,
            deadline: float | None = None) -> tuple[socket.socket, Address]:
    """Connect to each address in turn (``timeout_s`` each, never past ``deadline``); the first
    that answers wins. When all fail, the most telling failure is raised."""
    if not addresses:
        raise ProbeError(ProbeFailure("tcp", "error", "no address to connect to"))
    failures: list[ProbeFailure] = []
    for address in addresses:
        left = _budget(timeout_s, deadline)
        if left <= 0:
            failures.append(ProbeFailure("tcp", "timeout", f"no time left to connect to {address}",
                                         address=str(address)))
            break
        try:
            sock = socket.socket(address.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except OSError as e:
            failures.append(_tcp_failure(e, address, left))
            continue
        try:
            sock.settimeout(left)
            sock.connect(address.sockaddr)
        except OSError as e:
            sock.close()
            failures.append(_tcp_failure(e, address, left))
            continue
        return sock, address
    best = min(failures, key=lambda f: _TCP_RANK[f.kind])  # min keeps the first of equals
    others = [f"{f.address} {f.kind}" for f in failures if f is not best]
    if others:
        best = ProbeFailure(best.layer, best.kind,
                            f"{best.detail} (also tried: {', '.join(others)})",
                            best.errno, None, best.address)
    raise ProbeError(best, device=best.address)


def _tcp_failure(e: OSError, address: Address, timeout_s: float) -> ProbeFailure:
    if isinstance(e, TimeoutError):
        return ProbeFailure("tcp", "timeout",
                            f"no answer from {address} within {timeout_s:.3g} s",
                            errno=e.errno, address=str(address))
    if isinstance(e, ConnectionRefusedError):
        return ProbeFailure("tcp", "refused", f"connection to {address} refused",
                            errno=e.errno, address=str(address))
    reason = e.strerror or type(e).__name__
    kind = "unreachable" if e.errno in _UNREACHABLE else "error"
    return ProbeFailure("tcp", kind, f"cannot connect to {address}: {reason}",
                        errno=e.errno, address=str(address))


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------
def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Client context: chain and host name verified, TLS 1.2 or newer. ``ca_file`` (PEM) replaces
    the system store, so a private acquirer CA is the only one trusted for that host."""
    # ssl (loading OpenSSL) is imported on first use, off the start-up path; TCP-only probes
    # never need it.
    import ssl

    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def handshake(sock: socket.socket, server_name: str, timeout_s: float, *,
              ca_file: str = "") -> TlsSession:
    """Do a verified TLS handshake on a connected socket within ``timeout_s`` overall.

    The socket is consumed: it is closed when this returns or raises. The handshake is driven
    non-blocking against one deadline, so a server that drips bytes cannot stretch it.
    """
    import ssl

    try:
        peer = _peer_name(sock)
        try:
            ctx = tls_context(ca_file)
        except (OSError, ssl.SSLError) as e:
            why = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
            raise ProbeError(ProbeFailure("tls", "ca_file",
                                          f"cannot load CA file {ca_file}: {why}"),
                             device=ca_file) from e
        end = time.monotonic() + max(0.0, timeout_s)
        sock.setblocking(False)
        try:
            tls = ctx.wrap_socket(sock, server_hostname=server_name,
                                  do_handshake_on_connect=False)
        except (ssl.SSLError, ValueError, UnicodeError) as e:
            raise ProbeError(ProbeFailure("tls", "error",
                                          f"cannot start TLS to {server_name!r}: {e}",
                                          address=peer), device=peer) from e
        try:
            _drive_handshake(tls, end, timeout_s, peer)
            cert = peer_certificate(tls.getpeercert() or {})
            cipher = tls.cipher()
            return TlsSession(tls.version(), cipher[0] if cipher else None, cert)
        finally:
            tls.close()
    finally:
        sock.close()


def _drive_handshake(tls: ssl.SSLSocket, end: float, timeout_s: float, peer: str | None) -> None:
    import ssl

    poller = select.poll()
    poller.register(tls, select.POLLIN)
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            poller.modify(tls, select.POLLIN)
        except ssl.SSLWantWriteError:
            poller.modify(tls, select.POLLOUT)
        except ssl.SSLCertVerificationError as e:
            raise ProbeError(ProbeFailure(
                "tls", "verify", str(e.verify_message or e.reason or e),
                verify_code=e.verify_code, address=peer), device=peer) from e
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
                BrokenPipeError) as e:
            raise ProbeError(ProbeFailure("tls", "closed",
                                          "server closed the connection during the handshake",
                                          address=peer), device=peer) from e
        except ssl.SSLError as e:
            raise ProbeError(ProbeFailure("tls", "protocol",
                                          f"handshake failed: {e.reason or e}",
                                          address=peer), device=peer) from e
        except OSError as e:
            raise ProbeError(ProbeFailure("tls", "error",
                                          f"handshake failed: {e.strerror or e}",
                                          errno=e.errno, address=peer), device=peer) from e
        left = end - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise ProbeError(ProbeFailure("tls", "timeout",
                                          f"TLS handshake got no answer within {timeout_s:.3g} s",
                                          address=peer), device=peer)


def _peer_name(sock: socket.socket) -> str | None:
    try:
        sockaddr = sock.getpeername()
        return str(Address(sock.family, tuple(sockaddr)))
    except (OSError, ValueError, TypeError):
        return None


def peer_certificate(decoded: Mapping[str, Any]) -> PeerCertificate:
    """Read ``SSLSocket.getpeercert()``'s dict; any field that is missing or malformed is None."""
    return PeerCertificate(
        subject_cn=_common_name(decoded.get("subject")),
        issuer_cn=_common_name(decoded.get("issuer")),
        not_before=_cert_time(decoded.get("notBefore")),
        not_after=_cert_time(decoded.get("notAfter")),
        dns_names=_dns_names(decoded.get("subjectAltName")),
    )


def _cert_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    import ssl

    try:
        return float(ssl.cert_time_to_seconds(value))
    except (ValueError, OverflowError):
        return None


def _common_name(rdns: Any) -> str | None:
    # getpeercert() gives ((("commonName", "x"),), (("organizationName", "y"),), ...)
    if not isinstance(rdns, tuple | list):
        return None
    for rdn in rdns:
        if not isinstance(rdn, tuple | list):
            continue
        for attr in rdn:
            if (isinstance(attr, tuple | list) and len(attr) == 2 and attr[0] == "commonName"
                    and isinstance(attr[1], str)):
                return attr[1]
    return None


def _dns_names(san: Any) -> tuple[str, ...]:
    # getpeercert() gives (("DNS", "pay.example"), ("IP Address", "192.0.2.1"), ...)
    if not isinstance(san, tuple | list):
        return ()
    names: list[str] = []
    for entry in san:
        if (isinstance(entry, tuple | list) and len(entry) == 2 and entry[0] == "DNS"
                and isinstance(entry[1], str)):
            names.append(entry[1])
    return tuple(names)


# --------------------------------------------------------------------------------------------
# The ladder
# --------------------------------------------------------------------------------------------
def probe(target: ProbeTarget, *, deadline: float | None = None,
          getaddrinfo: GetAddrInfo = socket.getaddrinfo) -> ProbeReport:
    """DNS → TCP → TLS (when ``target.tls``), each timed, stopping at the first failure."""
    start = time.monotonic()
    try:
        addresses = _literal(target.host, target.port) or resolve(
            target.host, target.port, _budget(target.dns_timeout_s, deadline),
            getaddrinfo=getaddrinfo)
    except ProbeError as e:
        return ProbeReport(target, dns_ms=_ms(start), failure=e.failure)
    dns_ms = _ms(start)

    start = time.monotonic()
    try:
        sock, connected = connect(addresses, target.connect_timeout_s, deadline=deadline)
    except ProbeError as e:
        return ProbeReport(target, addresses, dns_ms=dns_ms, tcp_ms=_ms(start), failure=e.failure)
    tcp_ms = _ms(start)
    if not target.tls:
        sock.close()
        return ProbeReport(target, addresses, connected, dns_ms, tcp_ms)

    start = time.monotonic()
    try:
        session = handshake(sock, target.verify_name, _budget(target.tls_timeout_s, deadline),
                            ca_file=target.ca_file)
    except ProbeError as e:
        return ProbeReport(target, addresses, connected, dns_ms, tcp_ms, _ms(start),
                           failure=e.failure)
    return ProbeReport(target, addresses, connected, dns_ms, tcp_ms, _ms(start), session)


def _literal(host: str, port: int) -> tuple[Address, ...]:
    """An IP literal needs no resolver (and must not wait for one)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return ()
    if ip.version == 6:
        return (Address(socket.AF_INET6, (str(ip), port, 0, 0)),)
    return (Address(socket.AF_INET, (str(ip), port)),)


def _budget(timeout_s: float, deadline: float | None) -> float:
    if deadline is None:
        return timeout_s
    return min(timeout_s, deadline - time.monotonic())


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)
