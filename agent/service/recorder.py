"""The flight recorder's sampler: once a minute, cheap reads written to the flight log.

It runs on its own thread, not the daemon's loop or worker: a probe may take its whole budget
(≤ 2 s) and a check cycle may take longer, and neither must delay the other or a heartbeat. Each
minute it reads sysfs (links, power supplies), ``/proc/net/route`` (which interface carries the
default route) and ``/proc/net/wireless``; cellular figures come from the latest cellular check
result the daemon already holds (``cellular_metrics``), because the modem's port belongs to that
check. The round trip is one plain TCP connect (no TLS: the handshake would cost the acquirer's
CPU and our bandwidth for no extra truth about the path) to the first payment host, at most once
per ``probe_interval_s``. Time is injectable (``clock``, ``tick(now)``) so tests never sleep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posdiag.config import Config, RecorderConfig
from posdiag.flightlog import MINUTES_72H, FlightLog, FlightLogError, Sample, minute_of, path_for
from posdiag.paths import Roots

log = logging.getLogger("posdiag.recorder")

CellularMetrics = Callable[[], Mapping[str, Any]]
_KIND = {"ethernet": "ethernet", "wifi": "wifi", "wwan": "cellular", "ppp": "cellular"}


@dataclass(frozen=True)
class ProbeHost:
    host: str
    port: int


def log_path(cfg: Config) -> Path:
    return path_for(cfg.paths.state_dir, cfg.recorder.path)


def slots(rc: RecorderConfig) -> int:
    return rc.hours * 60 if rc.hours else MINUTES_72H


def probe_host(cfg: Config) -> ProbeHost | None:
    """``[recorder] probe_host``, else the first ``[[checks.payment_host.targets]]``."""
    text = cfg.recorder.probe_host.strip()
    if text:
        host, _, port = text.rpartition(":")
        if host and port.isdigit() and 1 <= int(port) <= 65535:
            return ProbeHost(host.strip("[]"), int(port))
        return ProbeHost(text, 443)
    ph = cfg.checks.get("payment_host")
    targets = getattr(ph, "targets", ()) if ph is not None else ()
    return ProbeHost(targets[0].host, targets[0].port) if targets else None


def tcp_round_trip(target: ProbeHost, timeout_s: float) -> tuple[str, int | None, int | None,
                                                                 bool]:
    """(outcome, rtt ms, dns ms, dns failed) of one TCP connect within ``timeout_s`` in all."""
    from posdiag.drivers.netprobe import ProbeTarget, probe

    half = max(0.05, timeout_s / 2)
    t = ProbeTarget(target.host, target.port, tls=False, dns_timeout_s=half,
                    connect_timeout_s=timeout_s)
    rep = probe(t, deadline=time.monotonic() + timeout_s)
    dns_ms = None if rep.dns_ms is None else round(rep.dns_ms)
    if rep.failure is None:
        return "ok", round(rep.tcp_ms or 0), dns_ms, False
    if rep.failure.layer == "dns":
        return "dns", None, None, True
    kind = rep.failure.kind
    return (kind if kind in ("refused", "timeout", "unreachable") else "error"), None, dns_ms, \
        False


class Recorder:
    def __init__(self, flightlog: FlightLog, roots: Roots, rc: RecorderConfig,
                 target: ProbeHost | None, cellular_metrics: CellularMetrics = dict,
                 clock: Callable[[], float] = time.time) -> None:
        self.log = flightlog
        self.roots = roots
        self.rc = rc
        self.target = target
        self.cellular_metrics = cellular_metrics
        self.clock = clock
        self._carrier_changes: dict[str, int] = {}
        self._last_probe_minute: int | None = None
        self._last_link: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_failed = False

    @classmethod
    def from_config(cls, cfg: Config, roots: Roots, cellular_metrics: CellularMetrics = dict,
                    clock: Callable[[], float] = time.time) -> Recorder | None:
        """A recorder, or None when it is off or its file cannot be made (logged; the agent
        carries on without it)."""
        if not cfg.recorder.enabled:
            return None
        path = log_path(cfg)
        try:
            fl = FlightLog.open_or_create(path, slots(cfg.recorder))
        except FlightLogError as e:
            log.error("flight recorder off: %s", e)
            return None
        return cls(fl, roots, cfg.recorder, probe_host(cfg), cellular_metrics, clock)

    # -- one minute ------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> Sample:
        """Take and write the sample of the minute ``now`` falls in."""
        now = self.clock() if now is None else now
        minute = minute_of(now)
        sample = self.sample(minute)
        try:
            self.log.write(sample)
            self._write_failed = False
        except FlightLogError as e:
            if not self._write_failed:  # once, not every minute
                log.error("flight recorder: %s", e)
            self._write_failed = True
        return sample

    def sample(self, minute: int) -> Sample:
        fields: dict[str, Any] = {}
        fields.update(self._links())
        fields.update(self._power())
        fields.update(self._cellular())
        fields.update(self._probe(minute))
        return Sample(minute=minute, **fields)

    def _links(self) -> dict[str, Any]:
        from posdiag.drivers.procfs.net_route import best_default, read_routes
        from posdiag.drivers.procfs.net_wireless import read_wireless
        from posdiag.drivers.sysfs.net import read_interfaces

        ifaces = [i for i in read_interfaces(self.roots.sysfs) if not i.is_loopback]
        if not ifaces:
            return {"iface": "none", "link_up": False, "link_changes": 0}
        route = best_default(read_routes(self.roots.procfs))
        active = next((i for i in ifaces if route is not None and i.name == route.iface), None)
        if active is None:  # no default route: the first interface with a link
            active = next((i for i in ifaces if i.link_up), None)
        changes = 0
        for i in ifaces:
            changes += self._carrier_delta(i.name)
        link_up = active is not None and active.link_up
        if self._last_link is not None and link_up != self._last_link and changes == 0:
            changes = 1  # a driver without carrier_changes: the state flip is all we saw
        self._last_link = link_up
        out: dict[str, Any] = {
            "link_up": link_up, "link_changes": changes,
            "iface": "none" if active is None else _KIND.get(active.kind, "other")}
        wifi = {w.iface: w for w in read_wireless(self.roots.procfs)}
        names = [active.name] if active is not None else []
        names += [i.name for i in ifaces if i.is_wireless]
        for name in names:
            if name in wifi and wifi[name].level_dbm is not None:
                out["wifi_dbm"] = wifi[name].level_dbm
                break
        return out

    def _carrier_delta(self, name: str) -> int:
        try:
            n = int((self.roots.sys("class", "net", name, "carrier_changes")).read_text())
        except (OSError, ValueError):
            return 0
        before = self._carrier_changes.get(name)
        self._carrier_changes[name] = n
        return max(0, n - before) if before is not None else 0

    def _power(self) -> dict[str, Any]:
        from posdiag.drivers.sysfs.power_supply import read_power_supplies

        supplies = read_power_supplies(self.roots.sysfs)
        batteries = [s for s in supplies if s.is_storage and s.is_system_scope]
        external = [s for s in supplies if s.is_external]
        out: dict[str, Any] = {}
        if any(s.is_online for s in external):
            out["power"] = "mains"
        elif batteries and (external or any(s.status == "Discharging" for s in batteries)):
            out["power"] = "battery"
        pct = next((s.percent for s in batteries if s.percent is not None), None)
        if pct is not None:
            out["battery_pct"] = round(pct)
        return out

    def _cellular(self) -> dict[str, Any]:
        try:
            m = self.cellular_metrics() or {}
        except Exception:  # the daemon's state is only read; a bad read is an unknown minute
            return {}
        stat = next((m[k] for k in ("cereg_stat", "cgreg_stat", "creg_stat")
                     if isinstance(m.get(k), int)), None)
        return {"cell_stat": stat,
                "rssi_dbm": m.get("signal_dbm") if isinstance(m.get("signal_dbm"), int) else None,
                "rsrp_dbm": m.get("rsrp_dbm") if isinstance(m.get("rsrp_dbm"), int) else None}

    def _probe(self, minute: int) -> dict[str, Any]:
        if self.target is None:
            return {}
        every = max(1, self.rc.probe_interval_s // 60)
        if self._last_probe_minute is not None and minute - self._last_probe_minute < every:
            return {}
        self._last_probe_minute = minute
        rtt, rtt_ms, dns_ms, dns_failed = tcp_round_trip(self.target, self.rc.probe_timeout_s)
        return {"rtt": rtt, "rtt_ms": rtt_ms, "dns_ms": dns_ms, "dns_failed": dns_failed}

    # -- the thread ------------------------------------------------------------------------------
    def start(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, name="posdiag-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.log.close()

    def _run(self) -> None:
        while True:  # the first sample at once: a restart leaves no extra missing minute
            try:
                self.tick()
            except Exception:  # a sampling bug must not end the recorder for good
                log.exception("flight recorder sample failed")
            now = self.clock()
            # A second into the next minute, so the sample lands in that minute's slot.
            if self._stop.wait(max(1.0, 60 - now % 60 + 1)):
                return
