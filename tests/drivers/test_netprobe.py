"""netprobe: each layer on its own against real loopback servers, plus the parsers with garbage."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tlsfixtures import (
    CertificateAuthority,
    LocalServer,
    ServerCert,
    SynBlackHole,
    free_port,
    in_private_network,
    nxdomain_reply,
)

from posdiag.drivers.errors import DriverError
from posdiag.drivers.netprobe import (
    Address,
    PeerCertificate,
    ProbeError,
    ProbeFailure,
    ProbeTarget,
    connect,
    handshake,
    peer_certificate,
    probe,
    resolve,
)

V4 = socket.AF_INET


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture(scope="module")
def ca_file(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(ca.write(tmp_path_factory.mktemp("ca")))


@pytest.fixture(scope="module")
def good_cert(ca: CertificateAuthority) -> ServerCert:
    return ca.issue("localhost")


def addr(port: int, host: str = "127.0.0.1") -> Address:
    return Address(V4, (host, port))


def failure_of(fn: Any, *args: Any, **kw: Any) -> ProbeFailure:
    with pytest.raises(ProbeError) as e:
        fn(*args, **kw)
    assert isinstance(e.value, DriverError)
    return e.value.failure


def tcp_to(server: LocalServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=2)


# --------------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------------
def test_localhost_resolves_from_the_hosts_file() -> None:
    got = resolve("localhost", 8443, 2.0)
    assert addr(8443) in got


def fake_getaddrinfo(result: Any = None, error: Exception | None = None) -> Any:
    def gai(host: str, port: int, **kw: Any) -> Any:
        assert kw["type"] == socket.SOCK_STREAM
        if error is not None:
            raise error
        return result
    return gai


@pytest.mark.parametrize(("error", "kind"), [
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "no_such_name"),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
     "resolver_unavailable"),
    (socket.gaierror(socket.EAI_NODATA, "No address associated with hostname"), "no_address"),
    (socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure in name resolution"), "error"),
    (UnicodeError("label empty or too long"), "bad_name"),
    (OSError(99, "odd"), "error"),
])
def test_resolver_errors_are_classified(error: Exception, kind: str) -> None:
    f = failure_of(resolve, "pay.example", 443, 1.0, getaddrinfo=fake_getaddrinfo(error=error))
    assert (f.layer, f.kind) == ("dns", kind)
    assert "pay.example" in f.detail


def test_resolver_error_text_is_kept() -> None:
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    f = failure_of(resolve, "pay.example", 443, 1.0, getaddrinfo=fake_getaddrinfo(error=error))
    assert f.detail == "DNS lookup of pay.example failed: Name or service not known"
    assert f.errno == socket.EAI_NONAME


def test_hanging_resolver_is_abandoned_at_the_timeout() -> None:
    release = threading.Event()

    returned = threading.Event()

    def hang(host: str, port: int, **kw: Any) -> Any:
        release.wait(10)
        returned.set()
        return []

    start = time.monotonic()
    f = failure_of(resolve, "pay.example", 443, 0.2, getaddrinfo=hang)
    elapsed = time.monotonic() - start
    abandoned = not returned.is_set()  # the answer came while the lookup still hung
    release.set()
    assert (f.layer, f.kind) == ("dns", "timeout")
    assert abandoned
    assert 0.19 <= elapsed < 0.2 + 3.0  # the ceiling only catches a hang
    assert "within 0.2 s" in f.detail


def test_no_time_left_means_no_lookup() -> None:
    f = failure_of(resolve, "pay.example", 443, 0.0,
                   getaddrinfo=fake_getaddrinfo(error=AssertionError("must not be called")))
    assert (f.layer, f.kind) == ("dns", "timeout")


def test_addresses_keep_resolver_order_without_duplicates_or_other_families() -> None:
    rows = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::1", 443, 0, 0)),
        (V4, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443)),
        (V4, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443)),
        (socket.AF_UNIX, socket.SOCK_STREAM, 0, "", ("/x", 0)),
    ]
    got = resolve("pay.example", 443, 1.0, getaddrinfo=fake_getaddrinfo(rows))
    assert [str(a) for a in got] == ["[2001:db8::1]:443", "192.0.2.1:443"]


@pytest.mark.parametrize(("rows", "kind"), [
    ([], "no_address"),
    ([(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", ("/x", 0))], "no_address"),
    ([("garbage",)], "error"),
    ([(V4, 1, 6, "", ("192.0.2.1",))], "error"),
    (None, "error"),
])
def test_garbage_from_the_resolver_is_a_dns_failure(rows: Any, kind: str) -> None:
    f = failure_of(resolve, "pay.example", 443, 1.0, getaddrinfo=fake_getaddrinfo(rows))
    assert (f.layer, f.kind) == ("dns", kind)


@pytest.mark.root
def test_real_nxdomain_in_a_private_network() -> None:
    f = in_private_network(lambda: failure_of(resolve, "acquirer.invalid", 443, 2.0),
                           resolver="nxdomain")
    assert (f.layer, f.kind) == ("dns", "no_such_name")


@pytest.mark.root
def test_real_silent_resolver_in_a_private_network() -> None:
    def run() -> tuple[ProbeFailure, float]:
        start = time.monotonic()
        f = failure_of(resolve, "acquirer.invalid", 443, 0.3)
        return f, time.monotonic() - start

    f, elapsed = in_private_network(run, resolver="silent")
    assert (f.layer, f.kind) == ("dns", "timeout")
    assert 0.29 <= elapsed < 0.3 + 3.0  # glibc alone would retry for 10 s or more


def test_nxdomain_reply_answers_the_question() -> None:
    query = bytes.fromhex("abcd0100000100000000000003706179076578616d706c650000010001")
    reply = nxdomain_reply(query)
    assert reply is not None
    assert reply[:2] == b"\xab\xcd" and reply[2] & 0x80 and reply[3] & 0x0F == 3
    assert reply[12:] == query[12:]
    assert nxdomain_reply(query[:20]) is None and nxdomain_reply(b"") is None


# --------------------------------------------------------------------------------------------
# TCP
# --------------------------------------------------------------------------------------------
def test_connect_to_a_listener() -> None:
    with LocalServer("silent") as srv:
        sock, used = connect([addr(srv.port)], 1.0)
        sock.close()
    assert used == addr(srv.port)


def test_closed_port_is_refused() -> None:
    port = free_port()
    f = failure_of(connect, [addr(port)], 1.0)
    assert (f.layer, f.kind, f.address) == ("tcp", "refused", f"127.0.0.1:{port}")
    assert f.errno == 111


def test_next_address_is_tried_after_a_refusal() -> None:
    with LocalServer("silent") as srv:
        sock, used = connect([addr(free_port()), addr(srv.port)], 1.0)
        sock.close()
    assert used.port == srv.port


@pytest.mark.root
def test_black_hole_times_out_per_address_and_refusal_is_the_more_telling() -> None:
    closed = free_port()
    with SynBlackHole() as hole:
        start = time.monotonic()
        f = failure_of(connect, [addr(hole.port), addr(closed)], 0.3)
        elapsed = time.monotonic() - start
    assert (f.kind, f.address) == ("refused", f"127.0.0.1:{closed}")
    assert f"127.0.0.1:{hole.port} timeout" in f.detail
    assert 0.29 <= elapsed < 0.3 + 3.0  # the ceiling only catches a hang


@pytest.mark.root
def test_deadline_stops_trying_more_addresses() -> None:
    with SynBlackHole() as h1, SynBlackHole("127.0.0.2") as h2:
        start = time.monotonic()
        # 30 s per address against a 0.3 s deadline: far apart, whatever the load.
        f = failure_of(connect, [addr(h1.port), addr(h2.port, "127.0.0.2")], 30.0,
                       deadline=time.monotonic() + 0.3)
        elapsed = time.monotonic() - start
    assert f.kind == "timeout"
    assert 0.29 <= elapsed < 0.3 + 3.0


@pytest.mark.root
def test_no_route_is_unreachable() -> None:
    # In an empty namespace there is no route at all: the kernel says so before sending anything.
    f = in_private_network(lambda: failure_of(connect, [addr(443, "192.0.2.1")], 1.0),
                           resolver="absent")
    assert (f.layer, f.kind) == ("tcp", "unreachable")
    assert "unreachable" in f.detail


def test_no_address_is_an_error() -> None:
    assert failure_of(connect, [], 1.0).kind == "error"


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------
def test_handshake_reports_version_cipher_and_certificate(good_cert: ServerCert,
                                                          ca_file: str) -> None:
    with LocalServer("tls", good_cert) as srv:
        sock = tcp_to(srv)
        session = handshake(sock, "localhost", 2.0, ca_file=ca_file)
    assert sock.fileno() == -1  # consumed
    assert session.version in ("TLSv1.2", "TLSv1.3") and session.cipher
    cert = session.certificate
    assert (cert.subject_cn, cert.issuer_cn, cert.dns_names) == (
        "localhost", "posdiag test CA", ("localhost",))
    assert cert.not_after == pytest.approx(good_cert.not_after.timestamp(), abs=1)
    assert cert.days_left(good_cert.not_after.timestamp() - 86400) == pytest.approx(1.0)


@pytest.mark.parametrize(("names", "valid_from", "valid_until", "code"), [
    (("localhost",), -400, -1, 10),  # expired
    (("localhost",), 5, 400, 9),  # not yet valid
    (("other.example",), -1, 400, 62),  # host name mismatch
])
def test_rejected_certificates_carry_the_openssl_code(ca: CertificateAuthority, ca_file: str,
                                                      names: tuple[str, ...], valid_from: int,
                                                      valid_until: int, code: int) -> None:
    cert = ca.issue(*names, valid_from=timedelta(days=valid_from),
                    valid_until=timedelta(days=valid_until))
    with LocalServer("tls", cert) as srv:
        f = failure_of(handshake, tcp_to(srv), "localhost", 2.0, ca_file=ca_file)
    assert (f.layer, f.kind, f.verify_code) == ("tls", "verify", code)
    assert f.address == f"127.0.0.1:{srv.port}"


def test_ip_address_mismatch_has_its_own_code(good_cert: ServerCert, ca_file: str) -> None:
    with LocalServer("tls", good_cert) as srv:
        f = failure_of(handshake, tcp_to(srv), "127.0.0.1", 2.0, ca_file=ca_file)
    assert (f.kind, f.verify_code) == ("verify", 64)


def test_silent_server_times_out_within_the_budget() -> None:
    with LocalServer("silent") as srv:
        sock = tcp_to(srv)
        start = time.monotonic()
        f = failure_of(handshake, sock, "localhost", 0.25)
        elapsed = time.monotonic() - start
    assert (f.layer, f.kind) == ("tls", "timeout")
    assert 0.24 <= elapsed < 0.25 + 3.0  # the ceiling only catches a hang
    assert sock.fileno() == -1


def test_server_closing_is_closed() -> None:
    with LocalServer("close") as srv:
        f = failure_of(handshake, tcp_to(srv), "localhost", 1.0)
    assert (f.layer, f.kind) == ("tls", "closed")


def test_plain_text_answer_is_a_protocol_failure() -> None:
    with LocalServer("plain") as srv:
        f = failure_of(handshake, tcp_to(srv), "localhost", 1.0)
    assert (f.layer, f.kind) == ("tls", "protocol")
    assert "WRONG_VERSION_NUMBER" in f.detail


def test_old_tls_versions_are_refused(good_cert: ServerCert, ca_file: str) -> None:
    with LocalServer("tls", good_cert, max_version=ssl.TLSVersion.TLSv1_1) as srv:
        f = failure_of(handshake, tcp_to(srv), "localhost", 1.0, ca_file=ca_file)
    assert (f.layer, f.kind) == ("tls", "protocol")
    assert "PROTOCOL_VERSION" in f.detail


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_unusable_ca_file(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with LocalServer("silent") as srv:
        sock = tcp_to(srv)
        f = failure_of(handshake, sock, "localhost", 1.0, ca_file=str(path))
    assert (f.layer, f.kind) == ("tls", "ca_file")
    assert str(path) in f.detail
    assert sock.fileno() == -1


@given(st.dictionaries(
    st.sampled_from(["subject", "issuer", "notBefore", "notAfter", "subjectAltName", "x"]),
    st.recursive(st.none() | st.text(max_size=30) | st.integers(),
                 lambda c: st.lists(c, max_size=3).map(tuple) | st.lists(c, max_size=3)),
    max_size=6))
def test_peer_certificate_never_fails_on_garbage(decoded: dict[str, Any]) -> None:
    assert isinstance(peer_certificate(decoded), PeerCertificate)


def test_peer_certificate_reads_getpeercert_shape() -> None:
    cert = peer_certificate({
        "subject": ((("countryName", "CN"),), (("commonName", "pay.example"),)),
        "issuer": ((("commonName", "Acquirer CA"),),),
        "notBefore": "Jan  1 00:00:00 2025 GMT",
        "notAfter": "Jan  2 00:00:00 2025 GMT",
        "subjectAltName": (("DNS", "pay.example"), ("IP Address", "192.0.2.1")),
    })
    assert (cert.subject_cn, cert.issuer_cn, cert.dns_names) == (
        "pay.example", "Acquirer CA", ("pay.example",))
    assert cert.not_after is not None and cert.not_before is not None
    assert cert.not_after - cert.not_before == 86400
    assert peer_certificate({"notAfter": "yesterday"}).days_left(0.0) is None


# --------------------------------------------------------------------------------------------
# The ladder
# --------------------------------------------------------------------------------------------
def test_probe_walks_every_layer(good_cert: ServerCert, ca_file: str) -> None:
    with LocalServer("tls", good_cert) as srv:
        report = probe(ProbeTarget("localhost", srv.port, ca_file=ca_file))
    assert report.ok and report.failure is None
    assert report.connected == addr(srv.port)
    assert all(isinstance(ms, float) for ms in (report.dns_ms, report.tcp_ms, report.tls_ms))
    assert report.session is not None and report.session.certificate.subject_cn == "localhost"


def test_ip_literal_skips_the_resolver() -> None:
    with LocalServer("close") as srv:
        report = probe(ProbeTarget("127.0.0.1", srv.port, tls=False),
                       getaddrinfo=fake_getaddrinfo(error=AssertionError("no DNS for an IP")))
    assert report.ok and report.tls_ms is None and report.session is None


def test_probe_stops_at_the_first_failure() -> None:
    report = probe(ProbeTarget("127.0.0.1", free_port()))
    assert report.failure is not None and report.failure.layer == "tcp"
    assert report.tcp_ms is not None and report.tls_ms is None


def test_probe_past_its_deadline_answers_at_once() -> None:
    start = time.monotonic()
    report = probe(ProbeTarget("pay.example", 443), deadline=time.monotonic() - 1,
                   getaddrinfo=fake_getaddrinfo(error=AssertionError("must not be called")))
    assert report.failure is not None
    assert (report.failure.layer, report.failure.kind) == ("dns", "timeout")
    # No lookup was made (it would have raised); the ceiling only catches some other wait.
    assert time.monotonic() - start < 3.0


# --------------------------------------------------------------------------------------------
# Values validate themselves
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{"host": ""}, {"host": "h", "port": 0},
                                {"host": "h", "connect_timeout_s": 0}])
def test_probe_target_rejects_nonsense(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ProbeTarget(**kw)


def test_failure_kind_must_belong_to_its_layer() -> None:
    with pytest.raises(ValueError):
        ProbeFailure("dns", "refused", "x")
    with pytest.raises(ValueError):
        ProbeFailure("cert", "timeout", "x")  # type: ignore[arg-type]


def test_address_rejects_non_ip_families() -> None:
    with pytest.raises(ValueError):
        Address(socket.AF_UNIX, ("/tmp/x", 0))
    assert str(Address(socket.AF_INET6, ("::1", 443, 0, 0))) == "[::1]:443"
