"""The clock check through the real config builder and runner.

The kernel state comes from an injected adjtimex (a synced and an unsynced ``struct timex``); the
skew comes from a real HTTPS server on 127.0.0.1 with a certificate from a test CA.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import run_check
from tlsfixtures import CertificateAuthority, free_port

from posdiag.checks import clock
from posdiag.checks.base import CheckSpec
from posdiag.drivers.timex import (
    STA_NANO,
    STA_PLL,
    STA_UNSYNC,
    TIME_ERROR,
    TIME_OK,
    AdjtimexCall,
    Timex,
)
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status
from simulators.https_date import HttpsDateServer


def fake_adjtimex(state: int, status: int, *, maxerror: int = 8000, esterror: int = 250,
                  offset: int = 0) -> AdjtimexCall:
    def call(buf: Timex) -> int:
        buf.status = status
        buf.maxerror = maxerror
        buf.esterror = esterror
        buf.offset = offset
        return state
    return call


SYNCED = fake_adjtimex(TIME_OK, STA_PLL | STA_NANO, offset=-12345)
UNSYNCED = fake_adjtimex(TIME_ERROR, STA_UNSYNC, maxerror=16_000_000, esterror=16_000_000)


def failing_adjtimex(buf: Timex) -> int:
    ctypes.set_errno(errno.EPERM)
    return -1


def check(adjtimex: AdjtimexCall = SYNCED, *, sysfs: Path | None = None,
          **cfg: object) -> CheckResult:
    spec = CheckSpec("clock", functools.partial(clock.run, adjtimex=adjtimex), clock.ClockConfig,
                     timeout_s=clock.SPEC.timeout_s)
    return run_check(spec, sysfs=sysfs, **cfg)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clock-pki")
    ca = CertificateAuthority("clock check CA")
    out = {"ca": ca.write(d)}
    out["cert"], out["key"] = ca.issue("127.0.0.1", "localhost").write(d, "good")
    out["future_cert"], out["future_key"] = ca.issue(
        "127.0.0.1", valid_from=timedelta(days=3), valid_until=timedelta(days=300)
    ).write(d, "future")
    out["expired_cert"], out["expired_key"] = ca.issue(
        "127.0.0.1", valid_from=timedelta(days=-300), valid_until=timedelta(days=-3)
    ).write(d, "expired")
    return out


def test_spec_has_no_dependencies() -> None:
    # An offline terminal is the one whose clock state matters most: never skip it.
    assert clock.SPEC.depends_on == ()
    assert clock.SPEC.name == "clock"


def test_synced_kernel_clock_is_ok() -> None:
    r = check(SYNCED, sysfs=Path("/nonexistent"))
    assert r.status is Status.OK
    assert r.reason == "ok"
    assert r.metrics["clock_synced"] is True
    assert r.metrics["clock_state"] == "ok"
    assert r.metrics["clock_esterror_us"] == 250
    assert r.metrics["clock_maxerror_ms"] == 8.0
    assert r.metrics["clock_offset_us"] == pytest.approx(-12.345)
    assert r.metrics["rtc_offset_s"] is None
    assert "synchronised" in r.summary


def test_unsynced_kernel_clock_warns_by_default() -> None:
    r = check(UNSYNCED)
    assert r.status is Status.WARN
    assert r.reason == "clock_unsynced"
    assert r.metrics["clock_synced"] is False
    assert r.metrics["clock_state"] == "error"
    assert r.metrics["clock_maxerror_ms"] == 16000.0
    assert r.hints == ("clock.enable_time_sync",)
    assert "16 s" in r.summary


def test_unsynced_status_bit_alone_means_unsynced() -> None:
    r = check(fake_adjtimex(TIME_OK, STA_UNSYNC))
    assert r.reason == "clock_unsynced"


def test_unsynced_can_be_configured_to_fail() -> None:
    r = check(UNSYNCED, unsynced_status="fail")
    assert r.status is Status.FAIL
    assert r.reason == "clock_unsynced"


def test_failing_adjtimex_is_unknown_not_a_crash() -> None:
    r = check(failing_adjtimex)
    assert r.status is Status.UNKNOWN
    assert r.reason == "clock_unreadable"
    assert "not permitted" in r.summary


def test_the_real_kernel_gives_a_state() -> None:
    r = run_check(clock.SPEC)
    assert r.status in (Status.OK, Status.WARN)
    assert r.metrics["clock_state"] in ("ok", "insert_leap", "delete_leap", "leap_in_progress",
                                        "leap_done", "error")
    assert isinstance(r.metrics["clock_synced"], bool)
    assert (r.reason == "clock_unsynced") is (r.metrics["clock_synced"] is False)


def test_rtc_offset_is_a_metric(tmp_path: Path) -> None:
    rtc = tmp_path / "class" / "rtc" / "rtc0"
    rtc.mkdir(parents=True)
    (rtc / "since_epoch").write_text(f"{int(time.time()) - 3600}\n")
    (rtc / "hctosys").write_text("1\n")
    r = check(SYNCED, sysfs=tmp_path)
    assert r.status is Status.OK
    assert r.metrics["rtc_offset_s"] == pytest.approx(-3600, abs=2)


def test_skew_exact_is_ok(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"]) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]))
    assert r.status is Status.OK, r.summary
    assert abs(r.metrics["clock_skew_s"]) <= 1.6
    assert r.metrics["skew_source"] == f"127.0.0.1:{srv.port}"
    assert r.metrics["skew_source_rtt_ms"] >= 0
    assert "Date resolution" in r.summary


def test_skew_ten_minutes_fails(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], offset_s=600) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]))
    assert r.status is Status.FAIL
    assert r.reason == "clock_skew"
    assert r.metrics["clock_skew_s"] == pytest.approx(-600, abs=1.6)
    assert "behind" in r.summary
    assert "1 s resolution" in r.summary
    assert "clock.set_time" in r.hints


def test_skew_between_thresholds_warns(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], offset_s=-20) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]))
    assert r.status is Status.WARN
    assert r.reason == "clock_skew"
    assert r.metrics["clock_skew_s"] == pytest.approx(20, abs=1.6)
    assert "ahead of" in r.summary


def test_thresholds_are_configurable(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], offset_s=-20) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]), skew_warn_s=30,
                  skew_fail_s=90)
    assert r.status is Status.OK


def test_unreachable_skew_source_warns_and_keeps_the_kernel_state() -> None:
    r = check(SYNCED, skew_url=f"https://127.0.0.1:{free_port()}/")
    assert r.status is Status.WARN
    assert r.reason == "skew_source_unreachable"
    assert "refused" in r.summary
    assert r.metrics["clock_synced"] is True
    assert r.metrics.get("clock_skew_s") is None
    assert r.hints == ("clock.check_skew_source",)


def test_unsynced_comes_before_an_unreachable_source() -> None:
    r = check(UNSYNCED, skew_url=f"https://127.0.0.1:{free_port()}/")
    assert r.reason == "clock_unsynced"
    assert [f.reason for f in r.findings] == ["clock_unsynced", "skew_source_unreachable"]


def test_silent_skew_source_stays_within_the_check_timeout(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], silent=True) as srv:
        start = time.monotonic()
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]), timeout_s=0.8)
        elapsed = time.monotonic() - start
    # The check's own finding, not the runner's "timeout": it answered within its 0.8 s.
    assert r.status is Status.WARN
    assert r.reason == "skew_source_unreachable"
    # The fetch waited until 0.3 s before the check deadline; the ceiling only catches a hang.
    assert 0.8 - 0.3 <= elapsed < 0.8 + 3.0


def test_certificate_not_yet_valid_means_the_clock_is_behind(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["future_cert"], pki["future_key"]) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]))
    assert r.status is Status.FAIL
    assert r.reason == "clock_skew"
    assert "not yet valid" in r.summary


def test_expired_certificate_is_reported_without_blaming_the_clock(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["expired_cert"], pki["expired_key"]) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]))
    assert r.status is Status.WARN
    assert r.reason == "skew_source_unreachable"
    assert "expired" in r.summary


def test_missing_date_header_is_unreachable(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], send_date=False) as srv:
        r = check(SYNCED, skew_url=srv.url, ca_file=str(pki["ca"]))
    assert r.reason == "skew_source_unreachable"
    assert "Date" in r.summary


@pytest.mark.parametrize(("cfg", "key"), [
    ({"skew_url": "http://acquirer.example/"}, "skew_url"),
    ({"skew_warn_s": 60, "skew_fail_s": 5}, "skew_fail_s"),
    ({"skew_warn_s": 0}, "skew_warn_s"),
    ({"unsynced_status": "error"}, "unsynced_status"),
    ({"ca_file": "/etc/ssl/ca.pem"}, "ca_file"),
    ({"ca_file": "relative.pem", "skew_url": "https://a.example/"}, "ca_file"),
])
def test_bad_config_is_rejected(cfg: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(SYNCED, **cfg)
    assert e.value.key == f"checks.clock.{key}"
