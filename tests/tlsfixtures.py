"""Local network fixtures for tests: certificates, TCP/TLS servers, and loopback-only failures.

- ``CertificateAuthority`` makes a CA and issues server certificates (any names, any validity
  window) with the ``cryptography`` package; ``self_signed`` makes one no CA vouches for.
- ``LocalServer`` is a threaded server on 127.0.0.1: a TLS server with a given certificate, or a
  TCP server that closes at once, talks plain text, or accepts and then never says a word.
- ``SynBlackHole`` drops TCP SYNs to one 127.x address and port with an nftables table of its own
  (root), so a connect times out exactly as against a firewalled host.
- ``in_private_network`` runs a function inside a fresh, empty network namespace (root) whose
  loopback impersonates the system's DNS servers, so a failing lookup is real but no packet can
  leave the machine (glibc sends even ``*.invalid`` names to the configured resolver).

Nothing here sends a packet to an address outside 127.0.0.0/8 or outside a namespace it made.
"""

from __future__ import annotations

import ctypes
import ipaddress
import itertools
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast, unlike RSA key generation


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class ServerCert:
    """A server certificate and its key, PEM. ``chain_pem`` is what the server sends: the leaf
    followed by its CA, if it has one."""

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes
    not_before: datetime
    not_after: datetime

    def write(self, directory: Path, stem: str = "server") -> tuple[Path, Path]:
        """Write ``<stem>.crt`` (the chain) and ``<stem>.key``; returns both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        crt.write_bytes(self.chain_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return crt, key


class CertificateAuthority:
    """A self-signed CA that issues server certificates for tests."""

    def __init__(self, name: str = "posdiag test CA") -> None:
        self.name = name
        self._key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        public = self._key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=365))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, name: str = "ca.pem") -> Path:
        """Write the CA certificate (a one-certificate CA bundle) and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_bytes(self.pem)
        return path

    def issue(self, *names: str, valid_from: timedelta = timedelta(days=-30),
              valid_until: timedelta = timedelta(days=365)) -> ServerCert:
        """A server certificate for ``names`` (host names or IP addresses, the first is also the
        subject CN), valid from now + ``valid_from`` to now + ``valid_until``."""
        cert = _leaf(names, self.cert.subject, self._key, valid_from, valid_until)
        return ServerCert(cert.cert_pem, cert.key_pem, cert.cert_pem + self.pem,
                          cert.not_before, cert.not_after)


def self_signed(*names: str, valid_from: timedelta = timedelta(days=-30),
                valid_until: timedelta = timedelta(days=365)) -> ServerCert:
    """A server certificate signed by its own key: no CA vouches for it."""
    return _leaf(names, None, None, valid_from, valid_until)


def _leaf(names: tuple[str, ...], issuer: x509.Name | None,
          issuer_key: ec.EllipticCurvePrivateKey | None, valid_from: timedelta,
          valid_until: timedelta) -> ServerCert:
    if not names:
        raise ValueError("a server certificate needs at least one name")
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    signer = issuer_key or key
    now = _now()
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    not_before, not_after = now + valid_from, now + valid_until
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signer.public_key()), critical=False)
        .sign(signer, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return ServerCert(pem, _key_pem(key), pem, not_before, not_after)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
Mode = Literal["tls", "close", "plain", "silent"]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalServer:
    """A threaded TCP server on a loopback address; use as a context manager.

    Modes: ``tls`` — TLS handshake with ``cert``, then close; ``close`` — accept and close at once;
    ``plain`` — accept, send ``banner`` in clear text, close; ``silent`` — accept and never send
    anything (connections are held until ``stop``). ``max_version`` makes a TLS server that
    speaks nothing newer (``ssl.TLSVersion.TLSv1_1``: an outdated host).
    """

    def __init__(self, mode: Mode = "tls", cert: ServerCert | None = None, *,
                 host: str = LOOPBACK, port: int = 0,
                 banner: bytes = b"HTTP/1.0 400 Bad Request\r\n\r\n",
                 max_version: ssl.TLSVersion | None = None) -> None:
        _require_loopback(host)
        if mode == "tls" and cert is None:
            raise ValueError("a TLS server needs a certificate")
        self.mode = mode
        self.banner = banner
        self.handshakes = 0
        self.aborted = 0  # connections that ended before a handshake completed
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._ctx: ssl.SSLContext | None = None
        self._tmp: str | None = None
        if cert is not None:
            self._tmp = tempfile.mkdtemp(prefix="posdiag-tls-")
            crt, key = cert.write(Path(self._tmp))
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(crt, key)
            if max_version is not None:  # an outdated server: allow what OpenSSL would refuse
                self._ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                self._ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                with warnings.catch_warnings():  # deprecated versions are the point here
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._ctx.maximum_version = max_version
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name=f"server-{mode}", daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._listener.close()
        with self._lock:
            for s in self._held:
                s.close()
            self._held.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            with self._lock:
                self._held.append(conn)
            return
        try:
            if self.mode == "plain":
                conn.sendall(self.banner)
            elif self.mode == "tls" and self._ctx is not None:
                conn.settimeout(2.0)
                with self._ctx.wrap_socket(conn, server_side=True), self._lock:
                    self.handshakes += 1
        except (OSError, ssl.SSLError):
            # The client gave up (e.g. rejected our certificate): that is the test's point.
            with self._lock:
                self.aborted += 1
        finally:
            conn.close()


# --------------------------------------------------------------------------------------------
# Loopback-only failures (root)
# --------------------------------------------------------------------------------------------
_tables = itertools.count()


def _require_loopback(host: str) -> None:
    if ipaddress.ip_address(host) not in ipaddress.ip_network("127.0.0.0/8"):
        raise ValueError(f"test servers and filters stay on 127.0.0.0/8, not {host}")


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(f"{what} needs root (run these tests as root or deselect -m root)")


class SynBlackHole:
    """Drop every TCP packet to ``host:port`` (127.0.0.0/8 only) while the context is active.

    It uses a dedicated nftables table (``inet posdiag_test_<pid>_<n>``), removed on exit, so it
    cannot disturb other rules or other tests.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        _require_loopback(host)
        self.host = host
        self.port = port or free_port(host)
        self.table = f"posdiag_test_{os.getpid()}_{next(_tables)}"

    def __enter__(self) -> SynBlackHole:
        _require_root("an nftables black hole")
        if shutil.which("nft") is None:
            raise RuntimeError("nft not found: apt-get install -y nftables")
        rules = (f"table inet {self.table} {{\n"
                 f"  chain output {{\n"
                 f"    type filter hook output priority 0; policy accept;\n"
                 f"    ip daddr {self.host} tcp dport {self.port} drop\n"
                 f"  }}\n"
                 f"}}\n")
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True,
                       capture_output=True, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["nft", "delete", "table", "inet", self.table], check=True,
                       capture_output=True, timeout=10)


Resolver = Literal["nxdomain", "silent", "absent"]
_CLONE_NEWNET = 0x40000000


def system_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The nameservers glibc will ask (127.0.0.1 when none is configured, as glibc does)."""
    servers: list[str] = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(parts[1].split("%")[0])
    return servers or ["127.0.0.1"]


def in_private_network(fn: Callable[[], T], *, resolver: Resolver = "nxdomain",
                       timeout_s: float = 30.0) -> T:
    """Run ``fn`` in a thread moved into a new, empty network namespace; return what it returns.

    Threads ``fn`` starts inherit the namespace. Inside it only loopback exists; the system's
    nameserver addresses are put on it and answered by ``resolver``: ``nxdomain`` (every name
    does not exist), ``silent`` (queries are read and never answered), ``absent`` (nothing
    listens, so queries are refused). The namespace dies with the thread.
    """
    _require_root("a private network namespace")
    box: list[object] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(_CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
            # Child processes start in the calling thread's namespace, so `ip` configures ours.
            _ip("link", "set", "lo", "up")
            with _fake_resolvers(system_nameservers(), resolver):
                box.append(fn())
        except BaseException as e:  # re-raised in the caller's thread
            err.append(e)

    t = threading.Thread(target=body, name="private-netns", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise TimeoutError(f"function in the private network did not return in {timeout_s} s")
    if err:
        raise err[0]
    return box[0]  # type: ignore[return-value]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def _fake_resolvers(servers: list[str], mode: Resolver) -> Iterator[None]:
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        for server in servers:
            ip = ipaddress.ip_address(server)
            if ip.version == 6:
                if not ip.is_loopback:
                    _ip("-6", "addr", "add", f"{ip}/128", "dev", "lo", "nodad")
            elif ip not in ipaddress.ip_network("127.0.0.0/8"):
                _ip("addr", "add", f"{ip}/32", "dev", "lo")
            if mode == "absent":
                continue
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.bind((str(ip), 53))
            s.settimeout(0.05)
            socks.append(s)
        for s in socks:
            threading.Thread(target=_answer, args=(s, mode, stop), daemon=True).start()
        yield
    finally:
        stop.set()
        for s in socks:
            s.close()


def _answer(sock: socket.socket, mode: Resolver, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            query, peer = sock.recvfrom(2048)
        except TimeoutError:
            continue
        except OSError:
            return
        reply = nxdomain_reply(query)
        if mode == "nxdomain" and reply is not None:
            try:
                sock.sendto(reply, peer)
            except OSError:
                return


def nxdomain_reply(query: bytes) -> bytes | None:
    """The NXDOMAIN answer to a one-question DNS query (RFC 1035 §4.1), or None if malformed."""
    if len(query) < 12 or int.from_bytes(query[4:6], "big") != 1:
        return None
    i = 12
    while i < len(query) and query[i] != 0:
        i += 1 + query[i]
    end = i + 1 + 4  # the root label, QTYPE, QCLASS
    if end > len(query):
        return None
    flags = bytes([0x80 | (query[2] & 0x79), 0x80 | 3])  # QR, opcode and RD kept; RA; NXDOMAIN
    counts = (1).to_bytes(2, "big") + bytes(6)
    return query[:2] + flags + counts + query[12:end]
