"""Payment host: can this terminal reach each configured host — DNS, TCP, TLS, certificate?

Each target is probed on its own thread (``posdiag.drivers.netprobe``), all against one deadline
inside the check's own, so a black-holed host costs one connect timeout rather than a sum. A target
stops at its first failing layer; the check's result is the worst target, and every target's
timings stay in the metrics under ``<name>_``.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, between, optional_file, port_number, rule
from posdiag.drivers.netprobe import ProbeFailure, ProbeReport, ProbeTarget, probe
from posdiag.results import CheckResult, Verdict, skipped
from posdiag.summary import Summary

NAME = "payment_host"
_MARGIN_S = 0.15  # kept back from the check deadline to build the result
_TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")

# OpenSSL X509_V_ERR_* codes → reason. Anything else the verifier rejects is tls_failed.
_VERIFY_REASONS = {
    10: "cert_expired",          # CERT_HAS_EXPIRED
    9: "cert_not_yet_valid",     # CERT_NOT_YET_VALID
    62: "hostname_mismatch",     # HOSTNAME_MISMATCH
    64: "hostname_mismatch",     # IP_ADDRESS_MISMATCH
    2: "cert_untrusted",         # UNABLE_TO_GET_ISSUER_CERT
    18: "cert_untrusted",        # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "cert_untrusted",        # SELF_SIGNED_CERT_IN_CHAIN
    20: "cert_untrusted",        # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "cert_untrusted",        # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    27: "cert_untrusted",        # CERT_UNTRUSTED
}

# (layer, kind) → reason, hints. Certificate verdicts are keyed by their reason instead.
_FAILURES: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("dns", "no_such_name"): ("dns_failed", ("host.check_target_config",
                                             "host.check_dns_settings")),
    ("dns", "no_address"): ("dns_failed", ("host.check_target_config",)),
    ("dns", "bad_name"): ("dns_failed", ("host.check_target_config",)),
    ("dns", "resolver_unavailable"): ("dns_failed", ("host.check_dns_settings",)),
    ("dns", "timeout"): ("dns_failed", ("host.check_dns_settings",)),
    ("dns", "error"): ("dns_failed", ("host.check_dns_settings",)),
    ("tcp", "refused"): ("tcp_refused", ("host.check_target_config", "host.contact_acquirer")),
    ("tcp", "timeout"): ("tcp_timeout", ("host.check_firewall", "host.contact_acquirer")),
    ("tcp", "unreachable"): ("tcp_unreachable", ("host.check_network_route",)),
    ("tcp", "error"): ("tcp_failed", ("host.check_firewall",)),
    ("tls", "timeout"): ("tls_failed", ("host.check_firewall", "host.contact_acquirer")),
    ("tls", "closed"): ("tls_failed", ("host.check_firewall", "host.contact_acquirer")),
    ("tls", "protocol"): ("tls_failed", ("host.contact_acquirer",)),
    ("tls", "verify"): ("tls_failed", ("host.contact_acquirer",)),
    ("tls", "error"): ("tls_failed", ("host.contact_acquirer",)),
    ("tls", "ca_file"): ("ca_file_invalid", ("host.check_ca_file",)),
}
# Every (layer, kind) a probe failure can have, in words (locale [summary] payment_host.kind.*).
_KIND_TEXTS = frozenset(f"payment_host.kind.{layer}_{kind}" for layer, kind in _FAILURES)
_CERT_HINTS: dict[str, tuple[str, ...]] = {
    "cert_expired": ("host.renew_certificate", "clock.sync_time"),
    "cert_not_yet_valid": ("clock.sync_time",),
    "hostname_mismatch": ("host.check_server_name",),
    "cert_untrusted": ("host.check_ca_file",),
}


def _host_problem(v: str) -> str | None:
    """A host name or IP literal, as a resolver would accept it (no URL, no port, no spaces)."""
    if not v:
        return None  # "must be set" is reported by validate(), which also sees a missing key
    try:
        ipaddress.ip_address(v)
        return None
    except ValueError:
        pass
    try:
        ascii_name = v.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.removesuffix(".").split(".")
    if len(ascii_name) <= 253 and all(_LABEL.match(label) for label in labels):
        return None
    return f"{v!r} is not a host name or IP address (no scheme, port or path: just the name)"


def _target_name(v: str) -> str | None:
    if not v or _TARGET_NAME.match(v):
        return None
    return (f"{v!r} must be lower-case letters, digits and '_', starting with a letter, at most "
            "32 (it prefixes the metric names)")


@dataclass(frozen=True)
class TargetConfig:
    """One ``[[checks.payment_host.targets]]`` table."""

    name: str = rule(_target_name, "")
    host: str = rule(_host_problem, "")
    port: int = rule(port_number, 443)
    tls: bool = True
    ca_file: str = rule(optional_file, "")  # empty: the system CA store
    server_name: str = rule(_host_problem, "")  # empty: host (set it when host is an IP)
    cert_warn_days: int = rule(between(0, 365), 30)
    connect_timeout_s: float = rule(between(0.1, 60), 5.0)

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.name:
            yield "name", "must be set: a short id such as 'acquirer' (it prefixes the metrics)"
        if not self.host:
            yield "host", "must be set: the payment host's name or IP address"
        if not self.tls and (self.ca_file or self.server_name):
            key = "ca_file" if self.ca_file else "server_name"
            yield key, "only means something with tls = true"


@dataclass(frozen=True)
class PaymentHostConfig(CheckConfig):
    targets: tuple[TargetConfig, ...] = ()
    dns_timeout_s: float = rule(between(0.1, 30), 3.0)
    tls_timeout_s: float = rule(between(0.1, 60), 5.0)

    def validate(self) -> Iterator[tuple[str, str]]:
        seen: set[str] = set()
        for i, t in enumerate(self.targets):
            if t.name in seen:
                yield f"targets[{i}].name", f"duplicate target name {t.name!r}"
            seen.add(t.name)


def run(ctx: CheckContext, cfg: PaymentHostConfig) -> CheckResult:
    if not cfg.targets:
        return skipped(ctx.name, "not_configured", Summary("payment_host.not_configured"))
    deadline = time.monotonic() + max(0.05, ctx.remaining() - _MARGIN_S)
    reports = _probe_all(cfg, deadline)

    v = Verdict(ctx.name)
    now = time.time()
    reachable: list[Summary] = []
    min_days: int | None = None
    for target in cfg.targets:
        report = reports.get(target.name)
        if report is None:  # the thread overran the deadline: tell, but do not guess why
            _metrics(v, target.name, None, None, None)
            v.unknown("timeout", Summary("payment_host.overran", name=target.name),
                      "host.check_firewall")
            continue
        days = _days_left(report, now)
        layer = _judge(v, target, report, days)
        _metrics(v, target.name, report, days, layer)
        if report.ok:  # a certificate about to expire still connects
            reachable.append(Summary("payment_host.rtt", name=target.name,
                                     ms=_total_ms(report)))
            if days is not None:
                min_days = days if min_days is None else min(min_days, days)
    v.metric("targets_total", len(cfg.targets))
    v.metric("targets_reachable", len(reachable))
    summary = Summary("payment_host.reachable", count=len(reachable), hosts=tuple(reachable))
    if min_days is not None:
        summary = Summary("payment_host.reachable_certs", reachable=summary, days=min_days)
    return v.result(summary)


def _probe_all(cfg: PaymentHostConfig, deadline: float) -> dict[str, ProbeReport]:
    reports: dict[str, ProbeReport] = {}
    lock = threading.Lock()

    def one(t: TargetConfig) -> None:
        target = ProbeTarget(t.host, t.port, t.tls, t.server_name, t.ca_file,
                             cfg.dns_timeout_s, t.connect_timeout_s, cfg.tls_timeout_s)
        report = probe(target, deadline=deadline)
        with lock:
            reports[t.name] = report

    threads = [threading.Thread(target=one, args=(t,), name=f"payment_host-{t.name}",
                                daemon=True) for t in cfg.targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.0, deadline + _MARGIN_S / 2 - time.monotonic()))
    with lock:
        return dict(reports)


def _judge(v: Verdict, t: TargetConfig, report: ProbeReport, days: int | None) -> str | None:
    """Add this target's finding (if any); return the layer that failed or warned, or None."""
    f = report.failure
    if f is not None:
        reason, hints, layer = _classify(f)
        v.fail(reason, Summary("payment_host.failure", name=t.name, layer=layer,
                               what=_describe(reason, f, report.target)), *hints)
        return layer
    if days is not None and days < t.cert_warn_days:
        cert = report.session.certificate if report.session else None
        until = _date(cert.not_after) if cert else "?"
        v.warn("cert_expiring",
               Summary("payment_host.expiring", name=t.name, host=report.target.verify_name,
                       days=days, until=until, limit=t.cert_warn_days),
               "host.renew_certificate")
        return "cert"
    return None


def _classify(f: ProbeFailure) -> tuple[str, tuple[str, ...], str]:
    """The one place a probe failure becomes a reason code, hints and the layer to name."""
    if f.layer == "tls" and f.kind == "verify":
        cert_reason = _VERIFY_REASONS.get(f.verify_code or -1)
        if cert_reason is not None:
            return cert_reason, _CERT_HINTS[cert_reason], "cert"
    reason, hints = _FAILURES.get((f.layer, f.kind), (f"{f.layer}_failed", ()))
    return reason, hints, f.layer


def _describe(reason: str, f: ProbeFailure, target: ProbeTarget) -> Summary:
    name = target.verify_name
    if reason == "cert_not_yet_valid":
        return Summary("payment_host.not_yet_valid", host=name)
    if reason == "cert_expired":
        return Summary("payment_host.expired", host=name)
    if reason == "hostname_mismatch":
        return Summary("payment_host.mismatch", target=str(target), host=name)
    if reason == "cert_untrusted":
        return Summary("payment_host.untrusted", target=str(target), detail=f.detail)
    if f.kind == "verify":
        return Summary("payment_host.rejected", target=str(target), detail=f.detail)
    # The probe's own line (addresses, errno text) stays as evidence; the kind says it in words.
    kind = f"payment_host.kind.{f.layer}_{f.kind}"
    if kind not in _KIND_TEXTS:
        kind = "payment_host.kind.other"
    return Summary("payment_host.probe", detail=f.detail, kind=Summary(kind))


def _days_left(report: ProbeReport, now: float) -> int | None:
    if report.session is None:
        return None
    days = report.session.certificate.days_left(now)
    return None if days is None else math.floor(days)  # whole days still left


def _metrics(v: Verdict, name: str, report: ProbeReport | None, days: int | None,
             layer: str | None) -> None:
    v.metric(f"{name}_dns_ms", report.dns_ms if report else None)
    v.metric(f"{name}_tcp_ms", report.tcp_ms if report else None)
    v.metric(f"{name}_tls_ms", report.tls_ms if report else None)
    v.metric(f"{name}_cert_days_left", days)
    v.metric(f"{name}_address", report.connected.ip if report and report.connected else None)
    v.metric(f"{name}_tls_version",
             report.session.version if report and report.session else None)
    v.metric(f"{name}_layer_failed", layer if report else "unknown")


def _total_ms(report: ProbeReport) -> float:
    return sum(ms for ms in (report.dns_ms, report.tcp_ms, report.tls_ms) if ms is not None)


def _date(epoch: float | None) -> str:
    return "?" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


SPEC = CheckSpec(NAME, run, PaymentHostConfig, depends_on=("network",), timeout_s=15.0)
