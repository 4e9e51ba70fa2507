"""The /sys/class/net reader on the healthy fixture, on broken attributes and on this machine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES

from posdiag.drivers.sysfs.net import NetInterface, read_interface, read_interfaces

HEALTHY = FIXTURES / "sysfs/healthy-terminal"


def test_healthy_fixture() -> None:
    found = {i.name: i for i in read_interfaces(HEALTHY)}
    assert sorted(found) == ["eth0", "lo", "wlan0"]
    eth0 = found["eth0"]
    assert eth0 == NetInterface("eth0", operstate="up", carrier=True, arphrd=1, flags=0x1003,
                                address="00:1b:21:3a:4c:5e", devtype=None, has_device=True,
                                has_wireless_dir=False, speed_mbps=1000)
    assert eth0.kind == "ethernet" and eth0.link_up and eth0.admin_up
    wlan0 = found["wlan0"]
    assert wlan0.kind == "wifi" and wlan0.is_wireless and wlan0.devtype == "wlan"
    assert wlan0.speed_mbps is None
    lo = found["lo"]
    assert lo.is_loopback and lo.kind == "loopback" and not lo.has_device
    assert lo.operstate == "unknown" and lo.link_up  # unknown + carrier: up


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    shutil.copytree(HEALTHY / "class/net", tmp_path / "class/net")
    return tmp_path


def _attr(sysfs: Path, name: str, attr: str) -> Path:
    return sysfs / "class/net" / name / attr


def test_unreadable_carrier_is_none(sysfs: Path) -> None:
    p = _attr(sysfs, "eth0", "carrier")
    p.unlink()
    p.mkdir()  # reading fails, as EINVAL does on an interface that is down
    i = read_interface(sysfs, "eth0")
    assert i is not None and i.carrier is None
    assert i.link_up  # operstate up decides


@pytest.mark.parametrize(("attr", "value", "field", "expected"), [
    ("flags", "garbage", "flags", None),
    ("flags", "4099", "flags", 4099),
    ("type", "x", "arphrd", None),
    ("carrier", "2", "carrier", None),
    ("speed", "-1", "speed_mbps", None),
    ("operstate", "weird", "operstate", "unknown"),
    ("operstate", "", "operstate", None),
    ("address", "", "address", None),
])
def test_garbage_attributes(sysfs: Path, attr: str, value: str, field: str,
                            expected: object) -> None:
    _attr(sysfs, "eth0", attr).write_bytes(value.encode() + b"\n")
    i = read_interface(sysfs, "eth0")
    assert getattr(i, field) == expected


def test_binary_garbage_does_not_raise(sysfs: Path) -> None:
    for attr in ("operstate", "carrier", "type", "flags", "address", "uevent", "speed"):
        _attr(sysfs, "eth0", attr).write_bytes(b"\xff\xfe\x00garbage")
    i = read_interface(sysfs, "eth0")
    assert i is not None and i.carrier is None and i.flags is None


@pytest.mark.parametrize(("operstate", "carrier", "flags", "up"), [
    ("up", True, 0x1003, True),
    ("up", None, 0x1003, True),
    ("up", False, 0x1003, False),
    ("down", False, 0x1003, False),
    ("dormant", True, 0x1003, False),
    ("lowerlayerdown", None, 0x1003, False),
    ("unknown", True, 0x10d1, True),
    ("unknown", None, 0x10d1, False),
    ("up", True, 0x1002, False),
])
def test_link_up(operstate: str, carrier: bool | None, flags: int, up: bool) -> None:
    assert NetInterface("x0", operstate, carrier, 1, flags).link_up is up


@pytest.mark.parametrize(("iface", "kind"), [
    (NetInterface("ppp0", arphrd=512), "ppp"),
    (NetInterface("wwan0", arphrd=0xFFFE, devtype="wwan"), "wwan"),
    (NetInterface("rmnet0", arphrd=519), "wwan"),
    (NetInterface("tun0", arphrd=0xFFFE), "other"),
    (NetInterface("lo2", flags=0x9), "loopback"),
])
def test_kinds(iface: NetInterface, kind: str) -> None:
    assert iface.kind == kind


def test_phy80211_link_marks_wifi(sysfs: Path) -> None:
    shutil.rmtree(sysfs / "class/net/wlan0/wireless")
    (sysfs / "class/net/wlan0/uevent").write_text("INTERFACE=wlan0\n")
    assert read_interface(sysfs, "wlan0").is_wireless is False  # type: ignore[union-attr]
    os.symlink("../../ieee80211/phy0", sysfs / "class/net/wlan0/phy80211")  # dangling is fine
    assert read_interface(sysfs, "wlan0").is_wireless is True  # type: ignore[union-attr]


def test_absent(tmp_path: Path) -> None:
    assert read_interfaces(tmp_path) == ()
    assert read_interface(tmp_path, "eth0") is None
    assert read_interface(HEALTHY, "../net") is None
    assert read_interface(HEALTHY, "") is None


def test_files_in_class_net_are_skipped(sysfs: Path) -> None:
    (sysfs / "class/net/bonding_masters").write_text("\n")
    assert [i.name for i in read_interfaces(sysfs)] == ["eth0", "lo", "wlan0"]


def test_this_machine() -> None:
    base = Path("/sys/class/net")
    found = read_interfaces(Path("/sys"))
    assert [i.name for i in found] == sorted(p.name for p in base.iterdir() if p.is_dir())
    assert all(i.is_loopback for i in found if i.name == "lo")
