"""payment_host against real servers on 127.0.0.1 with certificates made in the test.

Network failures are produced locally: a closed port (refused), an nftables SYN black hole on a
127.x port (timeout), a TCP server that never speaks TLS, and DNS failures inside a private
network namespace whose fake resolver answers NXDOMAIN, stays silent or is absent.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import run_check
from tlsfixtures import (
    CertificateAuthority,
    LocalServer,
    ServerCert,
    SynBlackHole,
    free_port,
    in_private_network,
    self_signed,
)

from posdiag import config as cfgmod
from posdiag.checks.payment_host import SPEC
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("posdiag acquirer test CA")


@pytest.fixture(scope="module")
def ca_file(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(ca.write(tmp_path_factory.mktemp("ca")))


@pytest.fixture(scope="module")
def good_cert(ca: CertificateAuthority) -> ServerCert:
    return ca.issue("localhost", "127.0.0.1")


def target(name: str = "acquirer", **kw: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"name": name, "host": "127.0.0.1", "server_name": "localhost",
                         "connect_timeout_s": 0.5}
    t.update(kw)
    return t


def check(*targets: dict[str, Any], **kw: Any) -> CheckResult:
    kw.setdefault("tls_timeout_s", 1.0)
    kw.setdefault("dns_timeout_s", 1.0)
    return run_check(SPEC, targets=list(targets), **kw)


def tls_check(cert: ServerCert, ca_file: str, **kw: Any) -> CheckResult:
    with LocalServer("tls", cert) as srv:
        return check(target(port=srv.port, ca_file=ca_file, **kw))


@pytest.fixture
def probe_spans(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], tuple[float, float]]:
    """When each target's probe started and ended (monotonic), keyed by (host, port)."""
    from posdiag.checks import payment_host
    from posdiag.drivers import netprobe

    spans: dict[tuple[str, int], tuple[float, float]] = {}

    def timed(target: Any, *, deadline: float) -> Any:
        start = time.monotonic()
        try:
            return netprobe.probe(target, deadline=deadline)
        finally:
            spans[(target.host, target.port)] = (start, time.monotonic())

    monkeypatch.setattr(payment_host, "probe", timed)
    return spans


def assert_failed_at(r: CheckResult, name: str, layer: str) -> None:
    """Layers before ``layer`` were timed, the failing one too, later ones not reached."""
    order = ["dns", "tcp", "tls"]
    stop = order.index("tls" if layer == "cert" else layer)
    for i, lay in enumerate(order):
        value = r.metrics[f"{name}_{lay}_ms"]
        if i <= stop:
            assert isinstance(value, float) and value >= 0, (lay, value)
        else:
            assert value is None, (lay, value)
    assert r.metrics[f"{name}_layer_failed"] == layer
    assert r.metrics[f"{name}_cert_days_left"] is None


# --------------------------------------------------------------------------------------------
# Healthy
# --------------------------------------------------------------------------------------------
def test_no_target_is_skipped_not_failed() -> None:
    r = run_check(SPEC)
    assert (r.status, r.reason) == (Status.SKIPPED, "not_configured")


def test_valid_certificate_is_ok_with_every_layer_timed(good_cert: ServerCert,
                                                        ca_file: str) -> None:
    r = tls_check(good_cert, ca_file)
    assert (r.status, r.reason) == (Status.OK, "ok"), r.summary
    m = r.metrics
    for key in ("acquirer_dns_ms", "acquirer_tcp_ms", "acquirer_tls_ms"):
        assert isinstance(m[key], float) and 0 <= m[key] < 1000, key
    assert m["acquirer_cert_days_left"] in (363, 364)
    assert m["acquirer_layer_failed"] is None
    assert m["acquirer_address"] == "127.0.0.1"
    assert m["acquirer_tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert (m["targets_total"], m["targets_reachable"]) == (1, 1)
    assert r.summary.startswith("1 payment host(s) reachable: acquirer ")
    assert f"certificates valid {m['acquirer_cert_days_left']}+ days" in r.summary
    assert r.hints == ()


def test_host_name_resolved_and_verified_without_server_name(good_cert: ServerCert,
                                                             ca_file: str) -> None:
    with LocalServer("tls", good_cert) as srv:
        r = check(target(host="localhost", server_name="", port=srv.port, ca_file=ca_file))
    assert r.status is Status.OK, r.summary
    assert r.metrics["acquirer_address"] == "127.0.0.1"


def test_ip_literal_host_verified_against_ip_san(good_cert: ServerCert, ca_file: str) -> None:
    r = tls_check(good_cert, ca_file, server_name="")
    assert r.status is Status.OK, r.summary


def test_plain_tcp_target_stops_after_tcp() -> None:
    with LocalServer("close") as srv:
        r = check(target("tms", port=srv.port, tls=False, server_name=""))
    assert r.status is Status.OK, r.summary
    m = r.metrics
    assert isinstance(m["tms_tcp_ms"], float)
    assert m["tms_tls_ms"] is None and m["tms_cert_days_left"] is None
    assert m["tms_tls_version"] is None and m["tms_layer_failed"] is None


# --------------------------------------------------------------------------------------------
# Certificate problems
# --------------------------------------------------------------------------------------------
def test_expired_certificate(ca: CertificateAuthority, ca_file: str) -> None:
    cert = ca.issue("localhost", valid_from=timedelta(days=-400), valid_until=timedelta(days=-2))
    r = tls_check(cert, ca_file)
    assert (r.status, r.reason) == (Status.FAIL, "cert_expired")
    assert_failed_at(r, "acquirer", "cert")
    assert "acquirer [cert]" in r.summary and "expired" in r.summary
    assert r.hints == ("host.renew_certificate", "clock.sync_time")


def test_not_yet_valid_certificate_points_at_the_clock(ca: CertificateAuthority,
                                                       ca_file: str) -> None:
    cert = ca.issue("localhost", valid_from=timedelta(days=10), valid_until=timedelta(days=400))
    r = tls_check(cert, ca_file)
    assert (r.status, r.reason) == (Status.FAIL, "cert_not_yet_valid")
    assert_failed_at(r, "acquirer", "cert")
    assert "clock" in r.summary
    assert r.hints == ("clock.sync_time",)


def test_certificate_for_another_host(ca: CertificateAuthority, ca_file: str) -> None:
    cert = ca.issue("pay.other.example")
    r = tls_check(cert, ca_file)
    assert (r.status, r.reason) == (Status.FAIL, "hostname_mismatch")
    assert_failed_at(r, "acquirer", "cert")
    assert "localhost" in r.summary
    assert r.hints == ("host.check_server_name",)


@pytest.mark.parametrize(("sends_root", "words"), [
    (True, "self-signed certificate in certificate chain"),  # X509_V_ERR 19
    (False, "unable to get local issuer certificate"),  # X509_V_ERR 20
])
def test_certificate_from_a_ca_not_given_is_untrusted(ca_file: str, sends_root: bool,
                                                      words: str) -> None:
    rogue = CertificateAuthority("rogue intercepting proxy CA").issue("localhost")
    if not sends_root:
        rogue = replace(rogue, chain_pem=rogue.cert_pem)
    r = tls_check(rogue, ca_file)
    assert (r.status, r.reason) == (Status.FAIL, "cert_untrusted")
    assert_failed_at(r, "acquirer", "cert")
    assert words in r.summary
    assert r.hints == ("host.check_ca_file",)


def test_self_signed_server_certificate_is_untrusted(ca_file: str) -> None:
    r = tls_check(self_signed("localhost"), ca_file)
    assert (r.status, r.reason) == (Status.FAIL, "cert_untrusted")
    assert "self-signed certificate" in r.summary  # X509_V_ERR 18


def test_certificate_expiring_soon_warns(ca: CertificateAuthority, ca_file: str) -> None:
    cert = ca.issue("localhost", valid_until=timedelta(days=5))
    r = tls_check(cert, ca_file)
    assert (r.status, r.reason) == (Status.WARN, "cert_expiring")
    assert r.metrics["acquirer_cert_days_left"] == 4  # 5 days minus the seconds already gone
    assert r.metrics["acquirer_layer_failed"] == "cert"
    assert isinstance(r.metrics["acquirer_tls_ms"], float)
    assert "expires in 4 days" in r.summary and "warning at 30" in r.summary
    assert r.hints == ("host.renew_certificate",)
    assert r.metrics["targets_reachable"] == 1


def test_cert_warn_days_is_per_target(ca: CertificateAuthority, ca_file: str) -> None:
    cert = ca.issue("localhost", valid_until=timedelta(days=5))
    r = tls_check(cert, ca_file, cert_warn_days=3)
    assert r.status is Status.OK, r.summary
    assert r.metrics["acquirer_cert_days_left"] == 4


def test_missing_ca_file_is_reported_not_replaced_by_the_system_store(
        good_cert: ServerCert, tmp_path: Path) -> None:
    r = tls_check(good_cert, str(tmp_path / "no-such-ca.pem"))
    assert (r.status, r.reason) == (Status.FAIL, "ca_file_invalid")
    assert "no-such-ca.pem" in r.summary
    assert r.hints == ("host.check_ca_file",)


def test_system_store_does_not_trust_a_private_ca(good_cert: ServerCert) -> None:
    r = tls_check(good_cert, "")
    assert (r.status, r.reason) == (Status.FAIL, "cert_untrusted")


# --------------------------------------------------------------------------------------------
# TCP and TLS transport problems
# --------------------------------------------------------------------------------------------
def test_closed_port_is_refused() -> None:
    r = check(target(port=free_port()))
    assert (r.status, r.reason) == (Status.FAIL, "tcp_refused")
    assert_failed_at(r, "acquirer", "tcp")
    assert "acquirer [tcp]" in r.summary and "refused" in r.summary
    assert "host.contact_acquirer" in r.hints


def test_closed_port_on_a_plain_target_is_refused() -> None:
    r = check(target(port=free_port(), tls=False, server_name=""))
    assert (r.status, r.reason) == (Status.FAIL, "tcp_refused")


@pytest.mark.root
def test_black_holed_port_times_out_at_tcp() -> None:
    with SynBlackHole("127.0.0.1") as hole:
        start = time.monotonic()
        r = check(target(port=hole.port, connect_timeout_s=0.3))
        elapsed = time.monotonic() - start
    assert (r.status, r.reason) == (Status.FAIL, "tcp_timeout")
    assert_failed_at(r, "acquirer", "tcp")
    # At least the connect timeout; the ceilings only catch a hang.
    assert 290 <= r.metrics["acquirer_tcp_ms"] < 300 + 3000
    assert 0.29 <= elapsed < 0.3 + 3.0
    assert r.hints == ("host.check_firewall", "host.contact_acquirer")


@pytest.mark.root
def test_black_holed_targets_cost_one_timeout_not_a_sum(
        good_cert: ServerCert, ca_file: str,
        probe_spans: dict[tuple[str, int], tuple[float, float]]) -> None:
    with SynBlackHole("127.0.0.1") as h1, SynBlackHole("127.0.0.2") as h2, \
            SynBlackHole("127.0.0.3") as h3, LocalServer("tls", good_cert) as srv:
        holes = [target(f"hole{i}", host=h.host, port=h.port, connect_timeout_s=0.5)
                 for i, h in enumerate((h1, h2, h3), 1)]
        start = time.monotonic()
        r = check(target(port=srv.port, ca_file=ca_file), *holes)
        elapsed = time.monotonic() - start
        spans = [probe_spans[(h.host, h.port)] for h in (h1, h2, h3)]
    # Concurrency shown by the probes themselves, not by wall time (which load stretches): the
    # last hole was entered before the first one gave up, so all three waited at the same time.
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    assert all(e - s >= 0.5 for s, e in spans), spans  # each waited out its connect timeout
    assert 0.5 <= elapsed < 0.5 + 3.0, elapsed  # the ceiling only catches a hang
    assert (r.status, r.reason) == (Status.FAIL, "tcp_timeout")
    assert r.summary.startswith("hole1 [tcp]")
    assert r.metrics["acquirer_layer_failed"] is None  # the healthy target's metrics are kept
    assert r.metrics["acquirer_cert_days_left"] in (363, 364)
    assert [r.metrics[f"hole{i}_layer_failed"] for i in (1, 2, 3)] == ["tcp"] * 3
    assert (r.metrics["targets_total"], r.metrics["targets_reachable"]) == (4, 1)


@pytest.mark.root
def test_one_black_holed_target_of_two_finishes_in_about_its_timeout(good_cert: ServerCert,
                                                                      ca_file: str) -> None:
    with SynBlackHole("127.0.0.1") as hole, LocalServer("tls", good_cert) as srv:
        start = time.monotonic()
        r = check(target(port=srv.port, ca_file=ca_file),
                  target("backup", port=hole.port, connect_timeout_s=0.5))
        elapsed = time.monotonic() - start
    # Done when the hole's 0.5 s are up, not at the check's 15 s deadline.
    assert 0.5 <= elapsed < 0.5 + 3.0, elapsed
    assert (r.status, r.reason) == (Status.FAIL, "tcp_timeout")
    assert "backup" in r.summary


@pytest.mark.root
def test_check_deadline_caps_a_long_connect_timeout() -> None:
    # connect_timeout_s 30 but the check may take 1 s: the check still answers, not the runner.
    with SynBlackHole("127.0.0.1") as hole:
        r = check(target(port=hole.port, connect_timeout_s=30), timeout_s=1.0)
    assert (r.status, r.reason) == (Status.FAIL, "tcp_timeout")  # the check's words: in time
    # Connecting until the probe deadline, 0.15 s before the check's: capped, not 30 s.
    assert 840 <= r.duration_ms < 1000 + 3000


def test_server_that_never_answers_the_handshake_fails_at_tls() -> None:
    with LocalServer("silent") as srv:
        start = time.monotonic()
        r = check(target(port=srv.port), tls_timeout_s=0.3)
        elapsed = time.monotonic() - start
    assert (r.status, r.reason) == (Status.FAIL, "tls_failed")
    assert_failed_at(r, "acquirer", "tls")
    assert 290 <= r.metrics["acquirer_tls_ms"] < 300 + 3000  # the ceilings only catch a hang
    assert 0.29 <= elapsed < 0.3 + 3.0
    assert "acquirer [tls]" in r.summary and "no answer within 0.3 s" in r.summary
    assert r.hints == ("host.check_firewall", "host.contact_acquirer")


def test_server_closing_during_the_handshake_fails_at_tls() -> None:
    with LocalServer("close") as srv:
        r = check(target(port=srv.port))
    assert (r.status, r.reason) == (Status.FAIL, "tls_failed")
    assert "closed" in r.summary


def test_plain_text_service_on_a_tls_target_fails_at_tls() -> None:
    with LocalServer("plain") as srv:
        r = check(target(port=srv.port))
    assert (r.status, r.reason) == (Status.FAIL, "tls_failed")
    assert_failed_at(r, "acquirer", "tls")
    assert r.hints == ("host.contact_acquirer",)


# --------------------------------------------------------------------------------------------
# DNS (inside a private network namespace: nothing reaches the real resolver)
# --------------------------------------------------------------------------------------------
@pytest.mark.root
def test_name_that_does_not_exist_fails_at_dns() -> None:
    r = in_private_network(lambda: check(target(host="acquirer.invalid", server_name="")),
                           resolver="nxdomain")
    assert (r.status, r.reason) == (Status.FAIL, "dns_failed")
    assert_failed_at(r, "acquirer", "dns")
    assert "acquirer [dns]" in r.summary and "acquirer.invalid" in r.summary
    assert "Name or service not known" in r.summary  # the resolver's own words
    assert r.hints == ("host.check_target_config", "host.check_dns_settings")


@pytest.mark.root
def test_unreachable_resolver_fails_at_dns() -> None:
    r = in_private_network(lambda: check(target(host="acquirer.invalid", server_name="")),
                           resolver="absent")
    assert (r.status, r.reason) == (Status.FAIL, "dns_failed")
    assert "Temporary failure in name resolution" in r.summary
    assert r.hints == ("host.check_dns_settings",)


@pytest.mark.root
def test_silent_resolver_costs_dns_timeout_not_glibc_retries() -> None:
    def run() -> tuple[CheckResult, float]:
        start = time.monotonic()
        r = check(target(host="acquirer.invalid", server_name=""), dns_timeout_s=0.3)
        return r, time.monotonic() - start

    r, elapsed = in_private_network(run, resolver="silent")
    assert (r.status, r.reason) == (Status.FAIL, "dns_failed")
    assert "within 0.3 s" in r.summary
    assert 290 <= r.metrics["acquirer_dns_ms"] < 300 + 3000
    assert 0.29 <= elapsed < 0.3 + 3.0  # glibc alone would retry for 10 s or more


# --------------------------------------------------------------------------------------------
# Several targets: the worst one is the result, every target keeps its metrics
# --------------------------------------------------------------------------------------------
def test_worst_target_wins_and_all_metrics_are_kept(ca: CertificateAuthority,
                                                    ca_file: str) -> None:
    soon = ca.issue("localhost", valid_until=timedelta(days=5))
    with LocalServer("tls", soon) as srv:
        r = check(target("acquirer", port=srv.port, ca_file=ca_file),
                  target("tms", port=free_port(), tls=False, server_name=""))
    assert (r.status, r.reason) == (Status.FAIL, "tcp_refused")
    assert r.summary.startswith("tms [tcp]")
    assert [(f.status, f.reason) for f in r.findings] == [
        (Status.WARN, "cert_expiring"), (Status.FAIL, "tcp_refused")]
    assert r.metrics["acquirer_cert_days_left"] == 4
    assert r.metrics["tms_layer_failed"] == "tcp"
    assert "host.renew_certificate" in r.hints and "host.contact_acquirer" in r.hints
    assert r.metrics["targets_reachable"] == 1


def test_two_healthy_targets_are_named_in_the_summary(good_cert: ServerCert,
                                                      ca_file: str) -> None:
    with LocalServer("tls", good_cert) as a, LocalServer("close") as b:
        r = check(target("acquirer", port=a.port, ca_file=ca_file),
                  target("tms", port=b.port, tls=False, server_name=""))
    assert r.status is Status.OK, r.summary
    assert "2 payment host(s) reachable" in r.summary
    assert "acquirer" in r.summary and "tms" in r.summary


def test_probe_overrunning_the_check_is_unknown_not_a_hang(monkeypatch: pytest.MonkeyPatch,
                                                           good_cert: ServerCert,
                                                           ca_file: str) -> None:
    # Every layer keeps to the deadline; this is the net under that promise.
    from posdiag.checks import payment_host
    from posdiag.drivers import netprobe

    def stuck(target: Any, *, deadline: float) -> Any:
        if target.host == "127.0.0.2":
            time.sleep(3)
        return netprobe.probe(target, deadline=deadline)

    monkeypatch.setattr(payment_host, "probe", stuck)
    with LocalServer("tls", good_cert) as srv:
        r = check(target(port=srv.port, ca_file=ca_file), target("stuck", host="127.0.0.2"),
                  timeout_s=0.5)
    assert (r.status, r.reason) == (Status.UNKNOWN, "timeout")
    assert r.summary.startswith("stuck:")
    assert r.metrics["stuck_layer_failed"] == "unknown" and r.metrics["stuck_tcp_ms"] is None
    assert r.metrics["acquirer_layer_failed"] is None
    assert r.duration_ms < 3000  # the stuck probe was left behind, not waited for


def test_other_verification_errors_are_tls_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from posdiag.checks import payment_host
    from posdiag.drivers.netprobe import ProbeFailure, ProbeReport

    def revoked(target: Any, *, deadline: float) -> ProbeReport:
        return ProbeReport(target, dns_ms=0.1, tcp_ms=0.2, tls_ms=3.0, failure=ProbeFailure(
            "tls", "verify", "certificate revoked", verify_code=23, address="127.0.0.1:443"))

    monkeypatch.setattr(payment_host, "probe", revoked)
    r = check(target(port=443))
    assert (r.status, r.reason) == (Status.FAIL, "tls_failed")
    assert r.metrics["acquirer_layer_failed"] == "tls"
    assert r.summary == ("acquirer [tls]: certificate of 127.0.0.1:443 rejected: "
                         "certificate revoked")


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
def build(**check_cfg: Any) -> Any:
    return cfgmod.build({"checks": {"payment_host": check_cfg}},
                        {"payment_host": SPEC.config_type}).check("payment_host")


def test_config_defaults() -> None:
    cfg = build(targets=[{"name": "acquirer", "host": "pay.example.com"}])
    (t,) = cfg.targets
    assert (t.port, t.tls, t.ca_file, t.server_name, t.cert_warn_days) == (443, True, "", "", 30)
    assert (cfg.dns_timeout_s, cfg.tls_timeout_s, t.connect_timeout_s) == (3.0, 5.0, 5.0)
    assert SPEC.timeout(cfg) == 15.0 and SPEC.depends_on == ("network",)


@pytest.mark.parametrize(("targets", "key", "words"), [
    ([{"name": "a", "host": "h1"}, {"name": "a", "host": "h2"}], "targets[1].name", "duplicate"),
    ([{"name": "acquirer"}], "targets[0].host", "must be set"),
    ([{"host": "pay.example.com"}], "targets[0].name", "must be set"),
    ([{"name": "Acquirer-1", "host": "h"}], "targets[0].name", "lower-case"),
    ([{"name": "a", "host": "https://pay.example.com"}], "targets[0].host", "not a host name"),
    ([{"name": "a", "host": "pay.example.com:443"}], "targets[0].host", "not a host name"),
    ([{"name": "a", "host": "pay example"}], "targets[0].host", "not a host name"),
    ([{"name": "a", "host": "h", "port": 0}], "targets[0].port", "TCP port"),
    ([{"name": "a", "host": "h", "ca_file": "ca.pem"}], "targets[0].ca_file", "absolute"),
    ([{"name": "a", "host": "h", "tls": False, "ca_file": "/ca.pem"}], "targets[0].ca_file",
     "tls = true"),
    ([{"name": "a", "host": "h", "cert_warn_days": -1}], "targets[0].cert_warn_days", "between"),
    ([{"name": "a", "host": "h", "colour": "red"}], "targets[0].colour", "unknown key"),
])
def test_config_errors_name_the_key(targets: list[dict[str, Any]], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        build(targets=targets)
    assert f"checks.payment_host.{key}" in str(e.value)
    assert words in str(e.value)


def test_ipv6_literal_and_idn_hosts_are_accepted() -> None:
    cfg = build(targets=[{"name": "v6", "host": "2001:db8::1", "server_name": "pay.example"},
                         {"name": "idn", "host": "zahlung.bücher.example"}])
    assert [t.host for t in cfg.targets] == ["2001:db8::1", "zahlung.bücher.example"]
