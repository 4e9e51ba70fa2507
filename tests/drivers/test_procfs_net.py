"""Parsers of /proc/net/{route,ipv6_route,fib_trie,if_inet6,wireless}: real shapes and garbage."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from conftest import FIXTURES
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers.procfs.net_addr import (
    Inet4Address,
    assign_interfaces,
    parse_fib_trie,
    parse_if_inet6,
    read_ipv4_addresses,
    read_ipv6_addresses,
)
from posdiag.drivers.procfs.net_route import (
    Route4,
    best_default,
    parse_ipv6_route,
    parse_route,
    read_ipv6_routes,
    read_routes,
)
from posdiag.drivers.procfs.net_wireless import WirelessStats, parse_wireless, read_wireless

PROC = FIXTURES / "procfs/healthy-terminal"
IP = ipaddress.ip_address

# Lines shaped like the real files, with any field possibly garbage.
_hexish = st.text(alphabet="0123456789abcdefABCDEFxX-+. _g", max_size=34)
_field = st.one_of(_hexish, st.text(max_size=12), st.sampled_from(["eth0", "wlan0", "lo", ""]))
_line = st.lists(_field, max_size=13).map(lambda f: "\t".join(f))
garbage_text = st.one_of(st.text(max_size=400),
                         st.lists(_line, max_size=8).map("\n".join))


# ---- /proc/net/route ---------------------------------------------------------------------------
def test_route_healthy() -> None:
    routes = read_routes(PROC)
    assert len(routes) == 4
    best = best_default(routes)
    assert best is not None
    assert (best.iface, best.gateway, best.metric) == ("eth0", IP("192.168.1.1"), 100)
    assert best.via_gateway
    onlink = [r for r in routes if not r.is_default]
    assert {str(r.network) for r in onlink} == {"10.20.30.0/24", "192.168.1.0/24"}


def test_route_big_endian_host() -> None:
    text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n" \
           "eth0\t00000000\tC0A80101\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    (r,) = parse_route(text, byteorder="big")
    assert r.gateway == IP("192.168.1.1")


def test_route_reject_and_down_routes_are_not_defaults() -> None:
    text = ("eth0\t00000000\t0101A8C0\t0203\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eth1\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n")
    assert best_default(parse_route(text)) is None


def test_route_lowest_metric_wins() -> None:
    text = ("wlan0\t00000000\t011E140A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
            "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n")
    assert best_default(parse_route(text)).iface == "eth0"  # type: ignore[union-attr]


@pytest.mark.parametrize("line", [
    "eth0\tZZZZZZZZ\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
    "eth0\t0000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
    "eth0\t00000000\t0101A8C0\t-003\t0\t0\t0\t00000000\t0\t0\t0",
    "eth0\t00000000\t0101A8C0\t0003\t0\t0\t-1\t00000000\t0\t0\t0",
    "eth0\t00000000",
])
def test_route_bad_lines_are_skipped(line: str) -> None:
    assert parse_route(line) == ()


@given(garbage_text)
def test_route_garbage_never_raises(text: str) -> None:
    for r in parse_route(text):
        assert isinstance(r, Route4) and r.iface


# ---- /proc/net/ipv6_route ----------------------------------------------------------------------
def test_ipv6_route_healthy() -> None:
    routes = read_ipv6_routes(PROC)
    best = best_default(routes)
    assert best is not None
    assert (best.iface, best.next_hop, best.metric) == ("eth0", IP("fe80::1"), 100)
    # The kernel's unreachable ::/0 on lo (flags 00200200) is not a default route.
    rejects = [r for r in routes if r.iface == "lo" and r.destination.prefixlen == 0]
    assert rejects and not any(r.is_default for r in rejects)


@given(garbage_text)
def test_ipv6_route_garbage_never_raises(text: str) -> None:
    parse_ipv6_route(text.replace("\t", " "))


# ---- /proc/net/fib_trie + route ----------------------------------------------------------------
def test_fib_trie_local_addresses() -> None:
    text = (PROC / "net/fib_trie").read_text()
    assert parse_fib_trie(text) == (IP("10.20.30.77"), IP("127.0.0.1"), IP("192.168.1.23"))


def test_ipv4_addresses_get_their_interface() -> None:
    found = {str(a.address): a for a in read_ipv4_addresses(PROC)}
    assert found["192.168.1.23"] == Inet4Address(IP("192.168.1.23"), "eth0", 24)
    assert found["10.20.30.77"] == Inet4Address(IP("10.20.30.77"), "wlan0", 24)
    assert found["127.0.0.1"].iface == "lo" and not found["127.0.0.1"].is_global


def test_longest_prefix_decides_and_uncovered_stays_unassigned() -> None:
    routes = parse_route("eth0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"
                         "eth1\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
                         "eth2\t00000000\t0101000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
    out = assign_interfaces([IP("10.0.1.5"), IP("10.9.9.9"), IP("172.16.0.1")], routes)
    assert [(str(a.address), a.iface, a.prefixlen) for a in out] == [
        ("10.0.1.5", "eth1", 24), ("10.9.9.9", "eth0", 8), ("172.16.0.1", None, None)]


def test_link_local_ipv4() -> None:
    a = Inet4Address(IP("169.254.33.7"), "eth0", 16)
    assert a.is_link_local and not a.is_global


@given(garbage_text)
def test_fib_trie_garbage_never_raises(text: str) -> None:
    for a in parse_fib_trie(text.replace("\t", "|-- ")):
        assert isinstance(a, ipaddress.IPv4Address)


# ---- /proc/net/if_inet6 ------------------------------------------------------------------------
def test_if_inet6_healthy() -> None:
    found = read_ipv6_addresses(PROC)
    global_ = [(str(a.address), a.iface) for a in found if a.is_global]
    assert global_ == [("2001:db8:1::23", "eth0")]
    link = [a.iface for a in found if a.is_link_local]
    assert link == ["eth0", "wlan0"]


def test_if_inet6_tentative_and_dadfailed_are_not_usable() -> None:
    text = ("20010db8000100000000000000000023 03 40 00 c0     eth0\n"
            "20010db8000100000000000000000024 03 40 00 88     eth0\n")
    assert [a.is_global for a in parse_if_inet6(text)] == [False, False]


@given(garbage_text)
def test_if_inet6_garbage_never_raises(text: str) -> None:
    parse_if_inet6(text.replace("\t", " "))


# ---- /proc/net/wireless ------------------------------------------------------------------------
HEADER = ("Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
          " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n")


def test_wireless_healthy() -> None:
    assert read_wireless(PROC) == (WirelessStats("wlan0", 0, 54, -56, None, 0),)


@pytest.mark.parametrize(("line", "level", "quality"), [
    ("wlp2s0: 0000   70.  -40.  -256        0      0      0      0      0        0", -40, 70),
    ("  wlan0: 0000   31   -79   -95        0      0      0      0      3        0", -79, 31),
    ("  wlan0: 0000   30.  166.  161.       0      0      0      0      0        0", -90, 30),
    ("  wlan0: 0000    0    0     0         0      0      0      0      0        0", None, 0),
    ("  wlan0: 0000   50.  -256.  -256      0      0      0      0      0        0", None, 50),
])
def test_wireless_levels(line: str, level: int | None, quality: int) -> None:
    (s,) = parse_wireless(HEADER + line + "\n")
    assert (s.level_dbm, s.link_quality) == (level, quality)


def test_wireless_missing_file(tmp_path: Path) -> None:
    assert read_wireless(tmp_path) == ()


@pytest.mark.parametrize("line", ["wlan0: 0000 54.", "wlan0: zz 54. -56. -256",
                                  "wlan0: 0000 x. -56. -256", "wlan0 0000 54. -56. -256",
                                  ": 0000 54. -56. -256"])
def test_wireless_bad_lines_are_skipped(line: str) -> None:
    assert parse_wireless(HEADER + line) == ()


wireless_lines = st.lists(
    st.tuples(st.sampled_from(["wlan0", " wlan1", "", "a|b"]),
              st.lists(st.one_of(st.integers(-400, 400).map(str),
                                 st.integers(-400, 400).map(lambda n: f"{n}."),
                                 st.text(max_size=6)), max_size=11))
    .map(lambda t: t[0] + ": " + "  ".join(t[1])), max_size=5).map("\n".join)


@given(st.one_of(garbage_text, wireless_lines))
def test_wireless_garbage_never_raises(text: str) -> None:
    for s in parse_wireless(text):
        assert s.level_dbm is None or -256 < s.level_dbm < 0
