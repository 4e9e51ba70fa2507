"""The shared udev enumeration: parallel device checks walk udev once, and not for long.

``DeviceListCache`` is tested with a hand-driven enumeration and clock; ``list_devices``/``find``
with a stand-in pyudev context in place of the process's udev.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from posdiag.drivers import discovery
from posdiag.drivers.discovery import (
    DeviceListCache,
    DiscoveredDevice,
    find,
    forget_devices,
    list_devices,
    load_device_table,
)
from posdiag.drivers.errors import NotSupported

JOIN_S = 5.0  # every thread here ends long before; a hang fails the test instead of the run


def device(node: str) -> DiscoveredDevice:
    return DiscoveredDevice("0acd", "0300", "ID TECH", "MiniMag", None, node, "tty", None, 0,
                            "ftdi_sio", None, None, f"/sys/fake/{node}", False, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Enumeration:
    """Counts calls; with ``hold``, each call waits until ``release()``."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self._go = threading.Event()
        if not hold:
            self._go.set()

    def __call__(self) -> list[DiscoveredDevice]:
        self.calls += 1
        self.entered.set()
        assert self._go.wait(JOIN_S)
        return [device(f"/dev/ttyUSB{self.calls}")]

    def release(self) -> None:
        self._go.set()


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_a_caller_arriving_during_an_enumeration_waits_for_it() -> None:
    cache = DeviceListCache(ttl_s=2.0, clock=Clock())
    enum = Enumeration(hold=True)
    first, got_first = in_thread(lambda: cache.devices(None, enum))
    assert enum.entered.wait(JOIN_S)
    second, got_second = in_thread(lambda: cache.devices(None, enum))
    second.join(0.2)
    assert second.is_alive() and enum.calls == 1  # waiting, not walking udev itself
    enum.release()
    first.join(JOIN_S)
    second.join(JOIN_S)
    assert enum.calls == 1
    assert got_first == got_second == [[device("/dev/ttyUSB1")]]


def test_the_list_expires_after_the_ttl() -> None:
    clock = Clock()
    cache = DeviceListCache(ttl_s=2.0, clock=clock)
    enum = Enumeration()
    assert cache.devices(None, enum) == [device("/dev/ttyUSB1")]
    clock.now += 1.9
    assert cache.devices(None, enum) == [device("/dev/ttyUSB1")]
    assert enum.calls == 1
    clock.now += 0.1  # 2.0 s after the enumeration started
    assert cache.devices(None, enum) == [device("/dev/ttyUSB2")]
    assert enum.calls == 2


def test_age_counts_from_the_start_of_the_enumeration() -> None:
    clock = Clock()
    cache = DeviceListCache(ttl_s=2.0, clock=clock)

    def slow() -> list[DiscoveredDevice]:
        clock.now += 1.5  # the walk itself took 1.5 s
        return [device("/dev/ttyUSB0")]

    cache.devices(None, slow)
    clock.now += 0.5
    enum = Enumeration()
    assert cache.devices(None, enum) == [device("/dev/ttyUSB1")]


def test_forget_drops_the_list_and_does_not_keep_an_enumeration_it_overtook() -> None:
    cache = DeviceListCache(ttl_s=2.0, clock=Clock())
    enum = Enumeration()
    cache.devices(None, enum)
    cache.forget()
    assert cache.devices(None, enum) == [device("/dev/ttyUSB2")]

    cache.forget()
    held = Enumeration(hold=True)
    running, got = in_thread(lambda: cache.devices(None, held))
    assert held.entered.wait(JOIN_S)
    cache.forget()  # a plug event while the walk runs: its answer may predate the plug
    held.release()
    running.join(JOIN_S)
    assert got == [[device("/dev/ttyUSB1")]]  # its own caller still gets it
    after = Enumeration()
    assert cache.devices(None, after) == [device("/dev/ttyUSB1")]
    assert after.calls == 1


def test_each_table_object_has_its_own_list() -> None:
    cache = DeviceListCache(ttl_s=2.0, clock=Clock())
    table, other = load_device_table(), load_device_table()
    enum = Enumeration()
    cache.devices(table, enum)
    cache.devices(table, enum)
    assert enum.calls == 1
    cache.devices(other, enum)  # equal content, another object: another list
    cache.devices(None, enum)
    assert enum.calls == 3


def test_a_failed_enumeration_is_not_kept() -> None:
    cache = DeviceListCache(ttl_s=2.0, clock=Clock())

    def broken() -> list[DiscoveredDevice]:
        raise NotSupported("udev is not available")

    with pytest.raises(NotSupported):
        cache.devices(None, broken)
    enum = Enumeration()
    assert cache.devices(None, enum) == [device("/dev/ttyUSB1")]


def test_callers_get_their_own_list() -> None:
    cache = DeviceListCache(ttl_s=2.0, clock=Clock())
    enum = Enumeration()
    cache.devices(None, enum).clear()
    assert cache.devices(None, enum) == [device("/dev/ttyUSB1")]


# -- the process-wide cache behind list_devices() and find() ---------------------------------


class FakeAttributes:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def asstring(self, name: str) -> str:
        return self.values[name]


class FakeDevice:
    def __init__(self, sys_name: str, node: str | None, attrs: dict[str, str],
                 parent: FakeDevice | None = None) -> None:
        self.sys_name, self.device_node, self.sys_path = sys_name, node, f"/sys/fake/{sys_name}"
        self.attributes = FakeAttributes(attrs)
        self.properties: dict[str, str] = {}
        self.device_links: list[str] = []
        self.driver = None
        self._parent = parent

    def find_parent(self, subsystem: str, device_type: str) -> FakeDevice | None:
        return self._parent if device_type == "usb_device" else None


class FakeContext:
    """A udev with an ID TECH reader cable and a CP210x bridge, slow enough to overlap callers."""

    def __init__(self) -> None:
        reader = FakeDevice("1-1", None, {"idVendor": "0acd", "idProduct": "0300"})
        bridge = FakeDevice("1-2", None, {"idVendor": "10c4", "idProduct": "ea60"})
        self.ttys = [FakeDevice("ttyUSB0", "/dev/ttyUSB0", {}, reader),
                     FakeDevice("ttyUSB1", "/dev/ttyUSB1", {}, bridge)]

    def list_devices(self, subsystem: str) -> list[FakeDevice]:
        time.sleep(0.05)
        return self.ttys if subsystem == "tty" else []


@pytest.fixture
def udev(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeContext]]:
    """The contexts discovery made for the process's own udev."""
    made: list[FakeContext] = []

    def new_context() -> FakeContext:
        made.append(FakeContext())
        return made[-1]

    forget_devices()
    monkeypatch.setattr(discovery, "_new_context", new_context)
    yield made
    forget_devices()


def test_parallel_device_checks_walk_udev_once(udev: list[FakeContext]) -> None:
    kinds = ("card_reader", "contactless", "cellular", "printer")
    start = threading.Barrier(len(kinds))
    found: dict[str, list[str]] = {}

    def look(kind: str) -> None:
        start.wait(JOIN_S)
        found[kind] = [d.devnode for d in find(kind)]

    threads = [threading.Thread(target=look, args=(k,), daemon=True) for k in kinds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert len(udev) == 1
    # CP210x: a bridge that PN532 boards ship with (devices.toml).
    assert found == {"card_reader": ["/dev/ttyUSB0"], "contactless": ["/dev/ttyUSB1"],
                     "cellular": [], "printer": []}


def test_a_given_context_is_always_walked_afresh(udev: list[FakeContext]) -> None:
    mine = FakeContext()
    calls = 0
    walk = mine.list_devices

    def counted(subsystem: str) -> list[FakeDevice]:
        nonlocal calls
        calls += 1
        return walk(subsystem)

    mine.list_devices = counted  # type: ignore[method-assign]
    list_devices()
    assert [d.devnode for d in list_devices(mine)] == ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    list_devices(mine)
    assert calls == 4  # two subsystems, twice
    assert len(udev) == 1

