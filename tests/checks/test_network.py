"""The network check through the real config builder and runner, on copies of the healthy
terminal's sysfs/procfs/rootfs trees with one thing broken per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_check

from posdiag.checks import network
from posdiag.errors import ConfigError
from posdiag.results import CheckResult, Status

# Captured from a network namespace: eth0 with only a self-assigned address (no DHCP answer).
LINK_LOCAL_FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 2 0 2
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 169.254.0.0/16 2 1 2
        +-- 169.254.0.0/18 2 0 2
           |-- 169.254.0.0
              /16 link UNICAST
              /16 link UNICAST
           |-- 169.254.33.7
              /32 host LOCAL
        |-- 169.254.255.255
           /32 link BROADCAST
"""
LINK_LOCAL_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0000FEA9\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t0000FEA9\t00000000\t0001\t0\t0\t1000\t0000FFFF\t0\t0\t0
"""
LOOPBACK_ONLY_FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 2 0 2
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
"""
# Captured: a point-to-point modem link (10.64.12.5 peer 10.64.0.1), default route without a
# gateway.
PPP_FIB_TRIE = """\
Main:
  +-- 0.0.0.0/1 2 0 2
     +-- 0.0.0.0/4 2 0 2
        |-- 0.0.0.0
           /0 link UNICAST
        +-- 10.64.0.0/20 2 0 2
           |-- 10.64.0.1
              /32 link UNICAST
           |-- 10.64.12.5
              /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
"""
PPP_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
ppp0\t00000000\t00000000\t0001\t0\t0\t700\t00000000\t0\t0\t0
ppp0\t0100400A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
"""
WIRELESS_HEADER = (
    "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
    " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
)


class Terminal:
    """A writable copy of the healthy terminal's network-related trees."""

    def __init__(self, root: Path) -> None:
        self.sysfs = root / "sys"
        self.procfs = root / "proc"
        self.rootfs = root / "root"
        shutil.copytree(FIXTURES / "sysfs/healthy-terminal/class/net", self.sysfs / "class/net")
        shutil.copytree(FIXTURES / "procfs/healthy-terminal/net", self.procfs / "net")
        shutil.copytree(FIXTURES / "rootfs/healthy-terminal/etc", self.rootfs / "etc",
                        ignore=lambda d, names: [n for n in names if n != "resolv.conf"])

    def iface(self, name: str) -> Path:
        return self.sysfs / "class/net" / name

    def set(self, name: str, **attrs: str) -> None:
        for attr, value in attrs.items():
            (self.iface(name) / attr).write_text(value + "\n")

    def unreadable(self, name: str, attr: str) -> None:
        """Make an attribute fail to read, as carrier does (EINVAL) on a down interface."""
        path = self.iface(name) / attr
        path.unlink(missing_ok=True)
        path.mkdir()

    def unplug(self, name: str) -> None:
        self.set(name, operstate="down", carrier="0", flags="0x1003")

    def remove(self, name: str) -> None:
        shutil.rmtree(self.iface(name))

    def add(self, name: str, *, arphrd: int = 1, device: bool = False, operstate: str = "up",
            flags: str = "0x1003", devtype: str | None = None) -> None:
        d = self.iface(name)
        d.mkdir()
        self.set(name, operstate=operstate, carrier="1", type=str(arphrd), flags=flags,
                 address="02:42:ac:11:00:02")
        (d / "uevent").write_text((f"DEVTYPE={devtype}\n" if devtype else "")
                                  + f"INTERFACE={name}\nIFINDEX=9\n")
        if device:
            (d / "device").mkdir()

    def proc(self, name: str, text: str) -> None:
        (self.procfs / "net" / name).write_text(text)

    def drop(self, name: str, *needles: str) -> None:
        """Remove the lines of /proc/net/<name> that contain any of ``needles``."""
        path = self.procfs / "net" / name
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(x for x in lines if not any(n in x for n in needles)))

    def wifi_level(self, level: str) -> None:
        self.proc("wireless", WIRELESS_HEADER
                  + f" wlan0: 0000   40.  {level}.  -256        0      0      0      0"
                  "     17        0\n")

    def wifi_only(self) -> None:
        """The cable is out and the kernel dropped eth0's routes: Wi-Fi carries the traffic."""
        self.unplug("eth0")
        self.drop("route", "eth0")
        self.drop("ipv6_route", "eth0")

    def resolv(self, text: str | None, upstream: str | None = None) -> None:
        path = self.rootfs / "etc/resolv.conf"
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
        if upstream is not None:
            up = self.rootfs / "run/systemd/resolve/resolv.conf"
            up.parent.mkdir(parents=True)
            up.write_text(upstream)

    def run(self, **cfg: object) -> CheckResult:
        return run_check(network.SPEC, sysfs=self.sysfs, procfs=self.procfs,
                         rootfs=self.rootfs, **cfg)


@pytest.fixture
def term(tmp_path: Path) -> Terminal:
    return Terminal(tmp_path)


def test_spec() -> None:
    assert network.SPEC.name == "network"
    assert network.SPEC.depends_on == ()


def test_healthy_fixture_trees_are_ok() -> None:
    r = run_check(network.SPEC, sysfs=FIXTURES / "sysfs/healthy-terminal",
                  procfs=FIXTURES / "procfs/healthy-terminal",
                  rootfs=FIXTURES / "rootfs/healthy-terminal")
    assert r.status is Status.OK, r.summary
    assert r.reason == "ok"
    m = r.metrics
    assert m["interfaces_total"] == 2
    assert m["interfaces_up"] == 2
    assert m["eth0_carrier"] is True
    assert m["eth0_operstate"] == "up"
    assert m["eth0_ipv4"] == "192.168.1.23"
    assert m["eth0_ipv6"] == "2001:db8:1::23"
    assert m["eth0_speed_mbps"] == 1000
    assert m["wlan0_ipv4"] == "10.20.30.77"
    assert m["default_route_iface"] == "eth0"
    assert m["gateway"] == "192.168.1.1"
    assert m["gateway_ipv6"] == "fe80::1"
    assert m["dns_servers_count"] == 2
    assert m["dns_servers"] == "192.168.1.1, 223.5.5.5"
    assert m["dns_systemd_resolved"] is False
    assert m["wifi_iface"] == "wlan0"
    assert m["wifi_signal_dbm"] == -56
    assert m["wifi_link_quality"] == 54
    assert "lo_carrier" not in m
    assert "192.168.1.23" in r.summary and "192.168.1.1" in r.summary


# ---- no_interface ------------------------------------------------------------------------------
def test_only_loopback_is_no_interface(term: Terminal) -> None:
    term.remove("eth0")
    term.remove("wlan0")
    r = term.run()
    assert r.status is Status.FAIL
    assert r.reason == "no_interface"
    assert r.metrics["interfaces_total"] == 0
    assert r.hints == ("network.check_adapter",)


def test_virtual_and_ignored_interfaces_do_not_count(term: Terminal) -> None:
    term.remove("eth0")
    term.remove("wlan0")
    term.add("docker0", device=True)  # ignored by name even with a device link
    term.add("tun0", arphrd=0xFFFE)  # no device link: software-made
    r = term.run()
    assert r.reason == "no_interface"
    assert "docker0" in r.summary and "tun0" in r.summary


def test_missing_required_interface(term: Terminal) -> None:
    r = term.run(require_interface="eth1")
    assert r.status is Status.FAIL
    assert r.reason == "no_interface"
    assert "eth1" in r.summary


def test_explicit_list_that_matches_nothing(term: Terminal) -> None:
    r = term.run(interfaces=["enp*"])
    assert r.reason == "no_interface"


# ---- link_down ---------------------------------------------------------------------------------
def test_no_link_anywhere(term: Terminal) -> None:
    term.unplug("eth0")
    term.set("wlan0", operstate="dormant")
    r = term.run()
    assert r.status is Status.FAIL
    assert r.reason == "link_down"
    assert r.metrics["interfaces_up"] == 0
    assert r.metrics["eth0_carrier"] is False
    assert "eth0 has no link" in r.summary
    assert "wlan0 is waiting for Wi-Fi authentication" in r.summary
    assert r.hints == ("network.check_cable", "network.check_wifi")


def test_interface_switched_off_has_unreadable_carrier(term: Terminal) -> None:
    term.remove("wlan0")
    term.set("eth0", operstate="down", flags="0x1002")
    term.unreadable("eth0", "carrier")
    r = term.run()
    assert r.reason == "link_down"
    assert r.metrics["eth0_carrier"] is None
    assert "switched off" in r.summary
    assert "network.enable_interface" in r.hints


def test_required_interface_down_fails_even_with_wifi_up(term: Terminal) -> None:
    term.unplug("eth0")
    r = term.run(require_interface="eth0")
    assert r.status is Status.FAIL
    assert r.reason == "link_down"
    assert r.metrics["interfaces_up"] == 1


def test_cable_out_with_wifi_as_fallback_is_ok(term: Terminal) -> None:
    # The kernel still lists eth0's default route (metric 100): it must not count.
    term.unplug("eth0")
    r = term.run()
    assert r.status is Status.OK, r.summary
    assert r.metrics["interfaces_up"] == 1
    assert r.metrics["default_route_iface"] == "wlan0"
    assert r.metrics["gateway"] == "10.20.30.1"


def test_listed_interfaces_narrow_the_choice(term: Terminal) -> None:
    term.unplug("eth0")
    term.drop("route", "wlan0\t00000000")
    r = term.run(interfaces=["wlan0"])
    assert r.metrics["interfaces_total"] == 1
    assert "eth0_carrier" not in r.metrics
    assert r.reason == "no_default_route"  # wlan0 has its address, but no route


# ---- no_address --------------------------------------------------------------------------------
def test_no_address(term: Terminal) -> None:
    term.remove("wlan0")
    term.proc("fib_trie", LOOPBACK_ONLY_FIB_TRIE)
    term.drop("if_inet6", "2001:db8", "20010db8")
    r = term.run()
    assert r.status is Status.FAIL
    assert r.reason == "no_address"
    assert r.metrics["eth0_ipv4"] is None
    assert r.metrics["eth0_ipv6"] is None
    assert "eth0 is up but without an IP address" in r.summary
    assert r.hints == ("network.check_dhcp", "network.check_ip_settings")


def test_self_assigned_address_points_at_dhcp(term: Terminal) -> None:
    term.remove("wlan0")
    term.proc("fib_trie", LINK_LOCAL_FIB_TRIE)
    term.proc("route", LINK_LOCAL_ROUTE)
    term.drop("if_inet6", "20010db8")
    term.drop("ipv6_route", "eth0")
    r = term.run()
    assert r.reason == "no_address"
    assert r.metrics["eth0_ipv4"] == "169.254.33.7"
    assert "169.254.33.7" in r.summary and "DHCP" in r.summary
    assert r.hints == ("network.check_dhcp",)


def test_tentative_ipv6_address_does_not_count(term: Terminal) -> None:
    term.remove("wlan0")
    term.proc("fib_trie", LOOPBACK_ONLY_FIB_TRIE)
    text = (term.procfs / "net/if_inet6").read_text()
    term.proc("if_inet6", text.replace("20010db8000100000000000000000023 03 40 00 80",
                                       "20010db8000100000000000000000023 03 40 00 c0"))
    assert term.run().reason == "no_address"


def test_ipv6_only_terminal_is_ok(term: Terminal) -> None:
    term.remove("wlan0")
    term.proc("fib_trie", LOOPBACK_ONLY_FIB_TRIE)
    term.drop("route", "eth0", "wlan0")
    r = term.run()
    assert r.status is Status.OK, r.summary
    assert r.metrics["default_route_iface"] == "eth0"
    assert r.metrics["gateway"] is None
    assert r.metrics["gateway_ipv6"] == "fe80::1"


# ---- no_default_route --------------------------------------------------------------------------
def test_no_default_route(term: Terminal) -> None:
    term.drop("route", "\t00000000\t")
    term.drop("ipv6_route", "00000000000000000000000000000000 00 ")
    r = term.run()
    assert r.status is Status.FAIL
    assert r.reason == "no_default_route"
    assert r.metrics["default_route_iface"] is None
    assert r.metrics["gateway"] is None
    assert "no gateway configured" in r.summary
    assert r.hints == ("network.check_gateway",)


def test_only_default_route_is_through_a_dead_link(term: Terminal) -> None:
    term.unplug("eth0")
    term.drop("route", "wlan0\t00000000")
    term.drop("ipv6_route", "00000000000000000000000000000000 00 ")
    r = term.run()
    assert r.reason == "no_default_route"
    assert "through eth0, which has no link" in r.summary


def test_unreachable_ipv6_default_on_lo_is_not_a_route(term: Terminal) -> None:
    term.drop("route", "\t00000000\t")
    term.drop("ipv6_route", "fe800000000000000000000000000001")  # keeps lo's reject ::/0
    assert term.run().reason == "no_default_route"


# ---- no_dns_servers ----------------------------------------------------------------------------
def test_resolv_conf_without_nameservers(term: Terminal) -> None:
    term.resolv("# Generated by NetworkManager\nsearch shop.lan\n")
    r = term.run()
    assert r.status is Status.FAIL
    assert r.reason == "no_dns_servers"
    assert r.metrics["dns_servers_count"] == 0
    assert r.metrics["dns_servers"] is None
    assert r.hints == ("network.check_dns_settings",)


def test_resolv_conf_missing(term: Terminal) -> None:
    term.resolv(None)
    r = term.run()
    assert r.reason == "no_dns_servers"
    assert "missing" in r.summary


def test_systemd_resolved_upstream_servers(term: Terminal) -> None:
    term.resolv("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
                upstream="# This is /run/systemd/resolve/resolv.conf\n"
                         "nameserver 192.168.1.1\nnameserver 2001:db8:1::1\n")
    r = term.run()
    assert r.status is Status.OK
    assert r.metrics["dns_systemd_resolved"] is True
    assert r.metrics["dns_servers_count"] == 2
    assert r.metrics["dns_servers"] == "192.168.1.1, 2001:db8:1::1"


def test_systemd_resolved_without_upstream_servers(term: Terminal) -> None:
    term.resolv("nameserver 127.0.0.53\n", upstream="# no servers known\nsearch .\n")
    r = term.run()
    assert r.reason == "no_dns_servers"
    assert "systemd-resolved" in r.summary


def test_systemd_resolved_stub_with_unknown_upstream_is_trusted(term: Terminal) -> None:
    term.resolv("nameserver 127.0.0.53\n")
    r = term.run()
    assert r.status is Status.OK
    assert r.metrics["dns_servers"] == "127.0.0.53"


def test_route_and_dns_are_both_reported_route_first(term: Terminal) -> None:
    term.drop("route", "\t00000000\t")
    term.drop("ipv6_route", "00000000000000000000000000000000 00 ")
    term.resolv("")
    r = term.run()
    assert r.reason == "no_default_route"
    assert [f.reason for f in r.findings] == ["no_default_route", "no_dns_servers"]


# ---- weak_wifi_signal --------------------------------------------------------------------------
@pytest.mark.parametrize(("level", "status"), [("-60", Status.OK), ("-70", Status.WARN),
                                               ("-75", Status.WARN), ("-85", Status.FAIL),
                                               ("-91", Status.FAIL)])
def test_wifi_signal_thresholds(term: Terminal, level: str, status: Status) -> None:
    term.wifi_only()
    term.wifi_level(level)
    r = term.run()
    assert r.status is status, r.summary
    assert r.metrics["wifi_signal_dbm"] == int(level)
    assert r.metrics["default_route_iface"] == "wlan0"
    if status is not Status.OK:
        assert r.reason == "weak_wifi_signal"
        assert f"{level} dBm" in r.summary
        assert r.hints == ("network.improve_wifi_signal",)


def test_old_unsigned_signal_level(term: Terminal) -> None:
    term.wifi_only()
    term.wifi_level("166")  # 166 - 256 = -90 dBm
    r = term.run()
    assert r.reason == "weak_wifi_signal"
    assert r.status is Status.FAIL
    assert r.metrics["wifi_signal_dbm"] == -90


def test_weak_wifi_that_carries_no_traffic_is_only_a_metric(term: Terminal) -> None:
    term.wifi_level("-90")
    r = term.run()
    assert r.status is Status.OK
    assert r.metrics["wifi_signal_dbm"] == -90


def test_wifi_thresholds_are_configurable(term: Terminal) -> None:
    term.wifi_only()
    term.wifi_level("-75")
    assert term.run(wifi_warn_dbm=-80, wifi_fail_dbm=-90).status is Status.OK
    assert term.run(wifi_warn_dbm=-65, wifi_fail_dbm=-75).status is Status.FAIL


def test_associated_wifi_without_statistics(term: Terminal) -> None:
    term.wifi_only()
    term.proc("wireless", WIRELESS_HEADER)
    r = term.run()
    assert r.status is Status.OK
    assert r.metrics["wifi_signal_dbm"] is None


# ---- other uplinks -----------------------------------------------------------------------------
def test_ppp_modem_link_without_device_or_gateway(term: Terminal) -> None:
    term.remove("eth0")
    term.remove("wlan0")
    term.add("ppp0", arphrd=512, operstate="unknown", flags="0x10d1")
    term.proc("fib_trie", PPP_FIB_TRIE)
    term.proc("route", PPP_ROUTE)
    term.drop("ipv6_route", "eth0", "wlan0")
    term.drop("if_inet6", "eth0", "wlan0")
    term.proc("wireless", WIRELESS_HEADER)
    r = term.run()
    assert r.status is Status.OK, r.summary
    assert r.metrics["ppp0_ipv4"] == "10.64.12.5"
    assert r.metrics["default_route_iface"] == "ppp0"
    assert r.metrics["gateway"] is None
    assert "default via ppp0" in r.summary


def test_odd_interface_names_make_valid_metric_keys(term: Terminal) -> None:
    term.add("eth0.100", device=True)
    r = term.run()
    assert r.metrics["eth0_100_carrier"] is True


# ---- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cfg", "key"), [
    ({"wifi_warn_dbm": -85, "wifi_fail_dbm": -70}, "wifi_fail_dbm"),
    ({"wifi_warn_dbm": 10}, "wifi_warn_dbm"),
    ({"interfaces": ["eth/0"]}, "interfaces"),
    ({"require_interface": "a-name-far-too-long-for-linux"}, "require_interface"),
    ({"ignore": "docker*"}, "ignore"),
])
def test_bad_config_is_rejected(term: Terminal, cfg: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        term.run(**cfg)
    assert e.value.key == f"checks.network.{key}"


def test_this_machine_gives_a_result() -> None:
    r = run_check(network.SPEC)
    assert r.status in (Status.OK, Status.WARN, Status.FAIL)
    assert r.reason != "check_crashed"
    assert isinstance(r.metrics["interfaces_total"], int)
