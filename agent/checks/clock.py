"""Clock check: is the system time synchronised, and does it agree with a trusted host?

- The kernel's synchronisation state (``adjtimex``): ``clock_unsynced`` when no time daemon is
  disciplining the clock (``warn`` by default, ``fail`` with ``unsynced_status = "fail"``).
- Optionally the skew against the ``Date`` header of a configured HTTPS host (``skew_url``):
  ``clock_skew`` warn/fail by ``skew_warn_s``/``skew_fail_s``. Date has a one-second resolution,
  so the skew is good to about ±1 s. A TLS certificate that is "not yet valid" by this clock is
  itself proof that the clock is behind, and is reported as ``clock_skew``.
- When the skew source cannot be reached the result is ``warn``/``skew_source_unreachable``,
  not ``unknown``: the kernel state is still known and reported, and the reason (network down,
  host down) is for the network and payment_host checks to name.
- The RTC's offset from the system time is a metric (``rtc_offset_s``) when there is an RTC.

The check does not depend on ``network``: a terminal that is offline is exactly the one whose
clock state a technician wants to see, and a skipped clock check would hide it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, optional_file, positive, rule
from posdiag.drivers.errors import DriverError, NotSupported, ProtocolError
from posdiag.drivers.sysfs.rtc import read_rtc
from posdiag.drivers.timex import AdjtimexCall, KernelClock, read_kernel_clock
from posdiag.results import CheckResult, Status, Verdict
from posdiag.summary import Summary

if TYPE_CHECKING:
    from posdiag.drivers.http_date import ServerTime

# Leave the check this long after the request times out to build its result before the deadline.
_MARGIN_S = 0.3


def _https_url(v: str) -> str | None:
    if v == "":
        return None
    # http_date brings ssl and http.client: imported only when a skew source is configured.
    from posdiag.drivers.http_date import HttpsTarget

    try:
        HttpsTarget.from_url(v)
    except ValueError as e:
        return f"must be empty or an https:// URL ({e})"
    return None


@dataclass(frozen=True)
class ClockConfig(CheckConfig):
    # How bad an unsynchronised clock is: "warn" (default) or "fail".
    unsynced_status: Literal["warn", "fail"] = "warn"
    # Trusted HTTPS host whose Date header the clock is compared with; empty: no skew check.
    skew_url: str = rule(_https_url, "")
    # CA bundle for skew_url; empty: the system trust store.
    ca_file: str = rule(optional_file, "")
    skew_warn_s: float = rule(positive, 5.0)
    skew_fail_s: float = rule(positive, 60.0)

    def validate(self) -> Iterable[tuple[str, str]]:
        if self.skew_fail_s <= self.skew_warn_s:
            yield ("skew_fail_s", f"must be above skew_warn_s ({self.skew_warn_s:g}), "
                                  f"not {self.skew_fail_s:g}")
        if self.ca_file and not self.skew_url:
            yield ("ca_file", "is only used with skew_url, which is empty")


def _direction(skew_s: float) -> Summary:
    return Summary("clock.ahead" if skew_s > 0 else "clock.behind")


def _kernel(v: Verdict, cfg: ClockConfig, adjtimex: AdjtimexCall | None) -> KernelClock | None:
    try:
        kc = read_kernel_clock(adjtimex)
    except NotSupported as e:
        v.unknown("not_supported", Summary("clock.unreadable", detail=e.message))
        return None
    except DriverError as e:
        v.unknown("clock_unreadable", Summary("clock.unreadable", detail=e.message))
        return None
    v.metric("clock_synced", kc.synchronized)
    v.metric("clock_state", kc.state_name)
    v.metric("clock_offset_us", kc.offset_us)
    v.metric("clock_esterror_us", kc.esterror_us)
    v.metric("clock_maxerror_ms", kc.maxerror_us / 1000)
    if not kc.synchronized:
        v.add(Status(cfg.unsynced_status), "clock_unsynced",
              Summary("clock.unsynced", bound=kc.maxerror_us / 1e6), "clock.enable_time_sync")
    return kc


def _skew(v: Verdict, ctx: CheckContext, cfg: ClockConfig) -> ServerTime | None:
    from posdiag.drivers.http_date import HttpsTarget, fetch_server_time, tls_context

    target = HttpsTarget.from_url(cfg.skew_url)
    v.metric("skew_source", target.name)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        context = tls_context(cfg.ca_file or None)
        st = fetch_server_time(target, timeout_s=max(0.1, ctx.remaining() - _MARGIN_S),
                               context=context)
    except ProtocolError as e:
        if e.kind == "cert_not_yet_valid":
            v.fail("clock_skew", Summary("clock.cert_not_yet_valid", host=target.host, now=now),
                   "clock.set_time",
                   "clock.enable_time_sync")
        elif e.kind == "cert_expired":
            v.warn("skew_source_unreachable",
                   Summary("clock.cert_expired", host=target.host, now=now),
                   "clock.check_skew_source", "clock.set_time")
        else:
            v.warn("skew_source_unreachable",
                   Summary("clock.source_unreadable", name=target.name, detail=e.message),
                   "clock.check_skew_source")
        return None
    except DriverError as e:
        v.warn("skew_source_unreachable",
               Summary("clock.source_unreadable", name=target.name, detail=e.message),
               "clock.check_skew_source")
        return None
    skew = st.skew_s
    v.metric("clock_skew_s", round(skew, 1))
    v.metric("clock_skew_uncertainty_s", round(st.uncertainty_s, 1))
    v.metric("skew_source_rtt_ms", round(st.rtt_s * 1000, 1))
    text = Summary("clock.skew", seconds=abs(skew), direction=_direction(skew),
                   host=target.host, uncertainty=st.uncertainty_s)
    if abs(skew) > cfg.skew_fail_s:
        v.fail("clock_skew", text, "clock.set_time", "clock.enable_time_sync")
    elif abs(skew) > cfg.skew_warn_s:
        v.warn("clock_skew", text, "clock.set_time", "clock.enable_time_sync")
    return st


def run(ctx: CheckContext, cfg: ClockConfig, *, adjtimex: AdjtimexCall | None = None
        ) -> CheckResult:
    """``adjtimex`` replaces the C library's call (tests hand in synced and unsynced clocks)."""
    v = Verdict(ctx.name)
    kc = _kernel(v, cfg, adjtimex)

    rtc = read_rtc(ctx.roots.sysfs)
    v.metric("rtc_offset_s", round(rtc.since_epoch_s - time.time()) if rtc else None)

    st = _skew(v, ctx, cfg) if cfg.skew_url else None

    parts = []
    if kc is not None:
        parts.append(Summary("clock.synced", error=kc.esterror_us / 1000,
                             bound=kc.maxerror_us / 1000))
    if st is not None:
        from posdiag.drivers.http_date import HttpsTarget

        parts.append(Summary("clock.skew_ok", seconds=abs(st.skew_s),
                             host=HttpsTarget.from_url(cfg.skew_url).host,
                             uncertainty=st.uncertainty_s))
    if not parts:
        return v.result(Summary("clock.looks_right"))
    return v.result(Summary("clock.ok", clauses=tuple(parts)))


SPEC = CheckSpec("clock", run, ClockConfig, timeout_s=5.0)
