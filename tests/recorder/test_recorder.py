"""The sampler: real reads from a sysfs/procfs tree, a real TCP probe, time injected."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from posdiag import config as cfgmod
from posdiag.checks import REGISTRY
from posdiag.flightlog import FlightLog
from posdiag.paths import Roots
from posdiag.service.recorder import ProbeHost, Recorder, probe_host, tcp_round_trip

T0 = 1_764_000_000.0  # 2025-11-24, on a minute boundary
ROUTE_HEAD = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow"
              "\tIRTT\n")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def net_iface(sysfs: Path, name: str, *, up: bool, arphrd: int = 1, wireless: bool = False,
              carrier_changes: int = 0) -> None:
    base = sysfs / "class" / "net" / name
    write(base / "operstate", "up\n" if up else "down\n")
    write(base / "carrier", "1\n" if up else "0\n")
    write(base / "flags", "0x1003\n")
    write(base / "type", f"{arphrd}\n")
    write(base / "carrier_changes", f"{carrier_changes}\n")
    write(base / "uevent", "DEVTYPE=wlan\n" if wireless else "")
    if wireless:
        (base / "wireless").mkdir(exist_ok=True)


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    sysfs, procfs = tmp_path / "sys", tmp_path / "proc"
    net_iface(sysfs, "lo", up=True, arphrd=772)
    net_iface(sysfs, "eth0", up=True)
    net_iface(sysfs, "wlan0", up=True, wireless=True)
    ac = sysfs / "class" / "power_supply" / "AC"
    write(ac / "type", "Mains\n")
    write(ac / "online", "1\n")
    bat = sysfs / "class" / "power_supply" / "BAT0"
    write(bat / "type", "Battery\n")
    write(bat / "status", "Charging\n")
    write(bat / "capacity", "87\n")
    write(procfs / "net" / "route",
          ROUTE_HEAD + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n")
    write(procfs / "net" / "wireless",
          "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
          " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
          "wlan0: 0000   54.  -61.  -256        0      0      0      0      0        0\n")
    return Roots(sysfs, procfs, tmp_path)


@pytest.fixture
def listener() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # bound, never listened, closed: nothing answers there
    return port


def make_config(tmp_path: Path, **recorder: object) -> cfgmod.Config:
    data = {"paths": {"state_dir": str(tmp_path / "state")}, "recorder": recorder}
    return cfgmod.build(data, {s.name: s.config_type for s in REGISTRY})


def test_a_tick_reads_links_wifi_power_cellular_and_probes(tmp_path: Path, roots: Roots,
                                                           listener: int) -> None:
    cfg = make_config(tmp_path, probe_host=f"127.0.0.1:{listener}")
    cell = {"cereg_stat": 1, "creg_stat": 5, "signal_dbm": -85, "rsrp_dbm": -104}
    rec = Recorder.from_config(cfg, roots, lambda: cell, clock=lambda: T0 + 5)
    assert rec is not None
    s = rec.tick()
    assert s.minute == int(T0 // 60)
    assert (s.link_up, s.iface, s.wifi_dbm) == (True, "wifi", -61)
    assert (s.cell_stat, s.rssi_dbm, s.rsrp_dbm) == (1, -85, -104)
    assert (s.power, s.battery_pct) == ("mains", 87)
    assert s.rtt == "ok" and s.rtt_ms is not None and s.rtt_ms < 1000
    assert s.dns_failed is False
    rec.stop()
    with FlightLog.open(tmp_path / "state" / "flightlog.bin") as fl:
        assert fl.window(T0, T0 + 59) == [s]


def test_probe_budget_one_connect_per_interval(tmp_path: Path, roots: Roots,
                                               listener: int) -> None:
    cfg = make_config(tmp_path, probe_host=f"127.0.0.1:{listener}", probe_interval_s=180)
    rec = Recorder.from_config(cfg, roots)
    assert rec is not None
    probed = [rec.tick(T0 + 60 * i).rtt for i in range(7)]
    rec.stop()
    assert probed == ["ok", None, None, "ok", None, None, "ok"]


def test_refused_port_and_unresolvable_name() -> None:
    assert tcp_round_trip(ProbeHost("127.0.0.1", refused_port()), 2.0)[0] == "refused"
    outcome, rtt_ms, _dns, dns_failed = tcp_round_trip(ProbeHost("no-such-host.invalid", 443),
                                                       1.0)
    assert (outcome, rtt_ms, dns_failed) == ("dns", None, True)


def test_link_changes_from_carrier_changes_and_battery_power(tmp_path: Path,
                                                             roots: Roots) -> None:
    rec = Recorder.from_config(make_config(tmp_path), roots)
    assert rec is not None
    first = rec.tick(T0)
    net_iface(roots.sysfs, "wlan0", up=False, wireless=True, carrier_changes=3)
    write(roots.sysfs / "class" / "power_supply" / "AC" / "online", "0\n")
    write(roots.sysfs / "class" / "power_supply" / "BAT0" / "status", "Discharging\n")
    second = rec.tick(T0 + 60)
    rec.stop()
    assert (first.link_changes, first.rtt) == (0, None)  # no payment host configured: no probe
    assert (second.link_up, second.link_changes, second.power) == (False, 3, "battery")


def test_probe_host_defaults_to_the_first_payment_host(tmp_path: Path) -> None:
    data = {"checks": {"payment_host": {"targets": [
        {"name": "acq", "host": "acq.example.net", "port": 8443},
        {"name": "b", "host": "b.example.net"}]}}}
    cfg = cfgmod.build(data, {s.name: s.config_type for s in REGISTRY})
    assert probe_host(cfg) == ProbeHost("acq.example.net", 8443)
    over = replace(cfg, recorder=replace(cfg.recorder, probe_host="[::1]:9000"))
    assert probe_host(over) == ProbeHost("::1", 9000)


def test_disabled_and_full_disk_mean_no_recorder_and_a_log_line(
        tmp_path: Path, roots: Roots, caplog: pytest.LogCaptureFixture) -> None:
    assert Recorder.from_config(make_config(tmp_path, enabled=False), roots) is None
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "posdiag-rec-test", str(tiny)],
                   check=True)
    try:
        cfg = make_config(tmp_path, path=str(tiny / "flightlog.bin"))
        with caplog.at_level(logging.ERROR, "posdiag.recorder"):
            assert Recorder.from_config(cfg, roots) is None
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert "flight recorder off" in caplog.text and "No space left" in caplog.text


def test_the_thread_samples_without_waiting_a_minute(tmp_path: Path, roots: Roots) -> None:
    rec = Recorder.from_config(make_config(tmp_path), roots, clock=lambda: T0 + 1)
    assert rec is not None
    rec.start()
    rec.stop()
    with FlightLog.open(tmp_path / "state" / "flightlog.bin") as fl:
        assert len(fl.window(T0, T0 + 59)) == 1


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs
    until its timeout, as to a payment host behind a black-holing firewall."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        srv.close()


def test_a_black_holed_host_times_out_within_the_budget_off_the_callers_thread(
        tmp_path: Path, roots: Roots, silent_port: int) -> None:
    started = time.monotonic()
    outcome = tcp_round_trip(ProbeHost("127.0.0.1", silent_port), 0.5)[0]
    took = time.monotonic() - started
    assert outcome == "timeout" and 0.4 < took < 1.5
    cfg = make_config(tmp_path, probe_host=f"127.0.0.1:{silent_port}", probe_timeout_s=1.0)
    rec = Recorder.from_config(cfg, roots, clock=lambda: T0 + 1)
    assert rec is not None
    t = time.monotonic()
    rec.start()  # the daemon's loop goes on at once; the probe waits on the recorder's thread
    assert time.monotonic() - t < 0.2
    rec.stop()
    with FlightLog.open(tmp_path / "state" / "flightlog.bin") as fl:
        (s,) = fl.window(T0, T0 + 59)
    assert (s.rtt, s.rtt_ms, s.link_up) == ("timeout", None, True)
