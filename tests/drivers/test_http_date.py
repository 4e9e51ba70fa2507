"""The HTTPS Date reader against a real local TLS server with certificates made by a test CA."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tlsfixtures import CertificateAuthority, free_port

from posdiag.drivers.errors import DeviceNotFound, DeviceTimeout, DriverError, ProtocolError
from posdiag.drivers.http_date import (
    HttpsTarget,
    ServerTime,
    fetch_server_time,
    parse_http_date,
    tls_context,
)
from simulators.https_date import HttpsDateServer


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("clock test CA")
    out = {"ca": ca.write(d)}
    out["cert"], out["key"] = ca.issue("127.0.0.1", "localhost").write(d, "good")
    out["future_cert"], out["future_key"] = ca.issue(
        "127.0.0.1", valid_from=timedelta(days=2), valid_until=timedelta(days=400)
    ).write(d, "future")
    out["expired_cert"], out["expired_key"] = ca.issue(
        "127.0.0.1", valid_from=timedelta(days=-400), valid_until=timedelta(days=-2)
    ).write(d, "expired")
    return out


def _fetch(url: str, pki: dict[str, Path], timeout_s: float = 2.0) -> ServerTime:
    return fetch_server_time(HttpsTarget.from_url(url), timeout_s=timeout_s,
                             context=tls_context(str(pki["ca"])))


def test_exact_server_gives_skew_within_resolution(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"]) as srv:
        st_ = _fetch(srv.url, pki)
        assert srv.requests == 1
    assert abs(st_.skew_s) <= st_.uncertainty_s + 0.1
    assert 0.5 <= st_.uncertainty_s < 1.5
    assert st_.server_date.tzinfo is not None


@pytest.mark.parametrize("offset", [600.0, -600.0])
def test_server_ten_minutes_off(pki: dict[str, Path], offset: float) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], offset_s=offset) as srv:
        st_ = _fetch(srv.url, pki)
    # skew is local minus server: a server ahead means the local clock is behind.
    assert st_.skew_s == pytest.approx(-offset, abs=1.5)


def test_missing_date_header(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], send_date=False) as srv, \
            pytest.raises(ProtocolError) as e:
        _fetch(srv.url, pki)
    assert e.value.kind == "no_date"


def test_garbage_date_header(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], date_value="yesterday-ish") as srv, \
            pytest.raises(ProtocolError) as e:
        _fetch(srv.url, pki)
    assert e.value.kind == "no_date"
    assert "yesterday-ish" in e.value.message


def test_certificate_not_yet_valid(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["future_cert"], pki["future_key"]) as srv, \
            pytest.raises(ProtocolError) as e:
        _fetch(srv.url, pki)
    assert e.value.kind == "cert_not_yet_valid"


def test_certificate_expired(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["expired_cert"], pki["expired_key"]) as srv, \
            pytest.raises(ProtocolError) as e:
        _fetch(srv.url, pki)
    assert e.value.kind == "cert_expired"


def test_untrusted_ca_is_rejected(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"]) as srv, pytest.raises(ProtocolError) as e:
        fetch_server_time(HttpsTarget.from_url(srv.url), timeout_s=2.0)  # system store only
    assert e.value.kind == "tls"


def test_refused() -> None:
    with pytest.raises(DeviceNotFound) as e:
        fetch_server_time(HttpsTarget("127.0.0.1", free_port(), "/"), timeout_s=1.0)
    assert "refused" in e.value.message


def test_silent_server_times_out_within_the_budget(pki: dict[str, Path]) -> None:
    with HttpsDateServer(pki["cert"], pki["key"], silent=True) as srv:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as e:
            _fetch(srv.url, pki, timeout_s=0.3)
        elapsed = time.monotonic() - start
    assert e.value.timeout_s == 0.3
    assert 0.3 <= elapsed < 0.3 + 3.0  # the budget was used up; the ceiling only catches a hang


def test_bad_ca_file(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="cannot load CA file"):
        tls_context(str(tmp_path / "missing.pem"))


@pytest.mark.parametrize(("url", "target"), [
    ("https://acquirer.example/", HttpsTarget("acquirer.example", 443, "/")),
    ("https://acquirer.example:8443", HttpsTarget("acquirer.example", 8443, "/")),
    ("https://[2001:db8::1]:443/time?x=1", HttpsTarget("2001:db8::1", 443, "/time?x=1")),
])
def test_target_from_url(url: str, target: HttpsTarget) -> None:
    assert HttpsTarget.from_url(url) == target


@pytest.mark.parametrize("url", ["http://acquirer.example/", "https://", "acquirer.example",
                                 "https://user:pw@acquirer.example/", "https://host:99999/",
                                 "https://host:port/"])
def test_target_from_bad_url(url: str) -> None:
    with pytest.raises(ValueError):
        HttpsTarget.from_url(url)


@pytest.mark.parametrize(("value", "expected"), [
    ("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("Sun, 06 Nov 1994 16:49:37 +0800", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
    ("", None), (None, None), ("not a date", None), ("Sun, 99 Nov 1994 08:49:37 GMT", None),
])
def test_parse_http_date(value: str | None, expected: datetime | None) -> None:
    assert parse_http_date(value) == expected


@given(st.text(max_size=80))
def test_parse_http_date_never_raises(value: str) -> None:
    result = parse_http_date(value)
    assert result is None or result.tzinfo is not None


def test_skew_uses_the_midpoint_and_the_middle_of_the_second() -> None:
    server = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    # Sent 1 s before the server's second began, answered 2 s later: midpoint = server + 0.
    st_ = ServerTime(server, server.timestamp() - 1.0, 2.0)
    assert st_.skew_s == pytest.approx(-0.5)
    assert st_.uncertainty_s == pytest.approx(1.5)
    with pytest.raises(ValueError):
        ServerTime(server.replace(tzinfo=None), 0.0, 0.1)
