"""System: free disk space, read-only file systems, memory, load, temperature and uptime.

The host things that make a POS application fail in odd ways: a full or read-only state
directory (no transaction journal), memory pressure, an overloaded or throttling CPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, between, non_negative, positive, rule
from posdiag.drivers.errors import DeviceTimeout, DriverError, PermissionDenied
from posdiag.drivers.procfs.cpuinfo import read_processor_count
from posdiag.drivers.procfs.kernel import uptime_s
from posdiag.drivers.procfs.loadavg import read_loadavg
from posdiag.drivers.procfs.meminfo import read_meminfo
from posdiag.drivers.procfs.mounts import covering_mount, read_mounts
from posdiag.drivers.statvfs import DiskSpace, disk_space
from posdiag.drivers.sysfs.cpu import online_cpu_count
from posdiag.drivers.sysfs.thermal import ThermalZone, read_thermal_zones
from posdiag.results import CheckResult, Verdict
from posdiag.summary import Summary

_MIB = 1024


def _absolute_paths(paths: tuple[str, ...]) -> str | None:
    bad = [p for p in paths if not p.startswith("/")]
    return f"must be absolute paths, not {', '.join(map(repr, bad))}" if bad else None


@dataclass(frozen=True)
class SystemConfig(CheckConfig):
    mounts: tuple[str, ...] = rule(_absolute_paths, ("/", "/var/lib/posdiag"))
    disk_warn_percent: float = rule(between(0, 100), 10.0)
    disk_fail_percent: float = rule(between(0, 100), 5.0)
    disk_fail_mib: int = rule(non_negative, 0)
    writable_mounts: tuple[str, ...] = rule(_absolute_paths,
                                            ("/var/lib/posdiag", "/var/log", "/tmp"))
    memory_warn_percent: float = rule(between(0, 100), 10.0)
    memory_fail_percent: float = rule(between(0, 100), 5.0)
    load_warn_per_cpu: float = rule(positive, 2.0)
    temp_warn_c: float = rule(between(20, 200), 75.0)
    temp_fail_c: float = rule(between(20, 200), 90.0)
    use_trip_points: bool = True
    ignore_thermal_zones: tuple[str, ...] = ()
    recent_reboot_s: int = rule(non_negative, 900)

    def validate(self) -> Iterator[tuple[str, str]]:
        pairs = (("disk_fail_percent", "disk_warn_percent"),
                 ("memory_fail_percent", "memory_warn_percent"))
        for fail_key, warn_key in pairs:
            if getattr(self, fail_key) > getattr(self, warn_key):
                yield (fail_key, f"must not be above {warn_key} ({getattr(self, warn_key):g}), "
                                 f"not {getattr(self, fail_key):g}")
        if self.temp_warn_c >= self.temp_fail_c:
            yield ("temp_warn_c",
                   f"must be below temp_fail_c ({self.temp_fail_c:g}), not {self.temp_warn_c:g}")


def _slug(path: str) -> str:
    """``/`` → ``root``, ``/var/lib/posdiag`` → ``var_lib_posdiag``: a metric key part."""
    s = re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
    return s or "root"


def _disk(ctx: CheckContext, cfg: SystemConfig, v: Verdict) -> list[Summary]:
    """Free space and inodes of each configured path that exists; returns summary parts."""
    seen: set[int] = set()
    worst: tuple[float, str] | None = None
    for mount in cfg.mounts:
        try:
            space = disk_space(ctx.roots.root(mount), ctx.remaining(2.0))
        except DeviceTimeout as e:
            v.unknown("timeout", Summary("system.fs_timeout", mount=mount, seconds=e.timeout_s),
                      "system.check_storage")
            continue
        except PermissionDenied:
            v.unknown("permission_denied", Summary("system.fs_denied", mount=mount))
            continue
        except DriverError as e:
            v.unknown("io_error", Summary("system.fs_error", mount=mount, error=e.message),
                      "system.check_storage")
            continue
        if space is None:
            continue  # not on this terminal
        pct = space.available_percent
        v.metric(f"disk_{_slug(mount)}_free_percent", pct)
        v.metric(f"disk_{_slug(mount)}_free_mib", round(space.available_mib, 1))
        if pct is not None and (worst is None or pct < worst[0]):
            worst = (pct, mount)
        if space.device in seen:
            continue  # same file system as an earlier path: already judged
        seen.add(space.device)
        _judge_disk(v, cfg, mount, space)
    v.metric("disk_free_percent_min", worst[0] if worst else None)
    return [Summary("system.disk_part", percent=worst[0], mount=worst[1])] if worst else []


def _judge_disk(v: Verdict, cfg: SystemConfig, mount: str, space: DiskSpace) -> None:
    pct = space.available_percent
    mib = space.available_mib
    hint = "system.free_disk_space"
    if pct is not None and pct < cfg.disk_fail_percent:
        v.fail("disk_low", Summary("system.disk_fail", mount=mount, percent=pct, mib=mib,
                                   limit=cfg.disk_fail_percent), hint)
    elif cfg.disk_fail_mib and mib < cfg.disk_fail_mib:
        v.fail("disk_low", Summary("system.disk_fail_mib", mount=mount, mib=mib,
                                   limit=cfg.disk_fail_mib), hint)
    elif pct is not None and pct < cfg.disk_warn_percent:
        v.warn("disk_low", Summary("system.disk_warn", mount=mount, percent=pct, mib=mib,
                                   limit=cfg.disk_warn_percent), hint)
    inodes = space.inodes_available_percent
    if inodes is None:
        return
    # Out of inodes is "disk full" for every writer, whatever the free bytes say.
    if inodes < cfg.disk_fail_percent:
        v.fail("disk_low", Summary("system.inodes_fail", mount=mount, percent=inodes,
                                   limit=cfg.disk_fail_percent), hint)
    elif inodes < cfg.disk_warn_percent:
        v.warn("disk_low", Summary("system.inodes_warn", mount=mount, percent=inodes,
                                   limit=cfg.disk_warn_percent), hint)


def _readonly(ctx: CheckContext, cfg: SystemConfig, v: Verdict) -> bool:
    """fs_readonly for each writable path whose covering mount is ``ro``; False: no table."""
    mounts = read_mounts(ctx.roots.procfs)
    if not mounts:
        v.metric("readonly_mounts_count", None)
        return False
    hit: dict[str, list[str]] = {}
    described: dict[str, Summary] = {}
    for path in cfg.writable_mounts:
        m = covering_mount(mounts, path)
        if m is not None and m.read_only:
            hit.setdefault(m.mount_point, []).append(path)
            described[m.mount_point] = Summary("system.mount", source=m.source,
                                               mount=m.mount_point, fstype=m.fstype)
    v.metric("readonly_mounts_count", len(hit))
    for mp, paths in hit.items():
        v.fail("fs_readonly", Summary("system.readonly", paths=tuple(paths),
                                      mount=described[mp]), "system.check_storage")
    return True


def _memory(ctx: CheckContext, cfg: SystemConfig, v: Verdict) -> list[Summary]:
    mi = read_meminfo(ctx.roots.procfs)
    v.metric("memory_total_mib", round(mi.total_kib / _MIB, 1) if mi else None)
    v.metric("memory_available_mib", round(mi.available_kib / _MIB, 1) if mi else None)
    v.metric("memory_available_percent", mi.available_percent if mi else None)
    if mi is None:
        return []
    pct = mi.available_percent
    amounts = {"percent": pct, "available": mi.available_kib / _MIB, "total": mi.total_kib / _MIB}
    if pct < cfg.memory_fail_percent:
        v.fail("memory_low", Summary("system.memory_fail", **amounts,
                                     limit=cfg.memory_fail_percent), "system.free_memory")
    elif pct < cfg.memory_warn_percent:
        v.warn("memory_low", Summary("system.memory_warn", **amounts,
                                     limit=cfg.memory_warn_percent), "system.free_memory")
    return [Summary("system.memory_part", percent=pct)]


def _load(ctx: CheckContext, cfg: SystemConfig, v: Verdict) -> list[Summary]:
    la = read_loadavg(ctx.roots.procfs)
    cpus = online_cpu_count(ctx.roots.sysfs) or read_processor_count(ctx.roots.procfs)
    per_cpu = la.load1 / cpus if la and cpus else None
    v.metric("load1", la.load1 if la else None)
    v.metric("load5", la.load5 if la else None)
    v.metric("load15", la.load15 if la else None)
    v.metric("cpu_count", cpus)
    v.metric("load1_per_cpu", per_cpu)
    if la is None or per_cpu is None:
        return []
    if per_cpu > cfg.load_warn_per_cpu:
        v.warn("load_high", Summary("system.load_warn", load=la.load1, cpus=cpus,
                                    per_cpu=per_cpu, limit=cfg.load_warn_per_cpu),
               "system.check_load")
    return [Summary("system.load_part", per_cpu=per_cpu)]


def _limits(zone: ThermalZone, cfg: SystemConfig) -> tuple[float, Summary, float, Summary]:
    """(warn °C, why, fail °C, why): the configured limits, lowered by the zone's own trips."""
    warn, warn_why = cfg.temp_warn_c, Summary("system.temp_warn_at", limit=cfg.temp_warn_c)
    fail, fail_why = cfg.temp_fail_c, Summary("system.temp_fail_at", limit=cfg.temp_fail_c)
    if cfg.use_trip_points:
        passive = zone.lowest_trip_c("passive", "hot")
        if passive is not None and passive < warn:
            warn, warn_why = passive, Summary("system.trip_passive", limit=passive)
        critical = zone.lowest_trip_c("critical")
        if critical is not None and critical < fail:
            fail, fail_why = critical, Summary("system.trip_critical", limit=critical)
    return warn, warn_why, fail, fail_why


def _thermal(ctx: CheckContext, cfg: SystemConfig, v: Verdict) -> list[Summary]:
    ignored = set(cfg.ignore_thermal_zones)
    zones = [z for z in read_thermal_zones(ctx.roots.sysfs)
             if z.name not in ignored and z.type not in ignored and z.temp_c is not None]
    hottest = max(zones, key=lambda z: z.temp_c or 0.0, default=None)
    v.metric("thermal_zones_count", len(zones))
    v.metric("temp_max_c", hottest.temp_c if hottest else None)
    v.metric("temp_max_zone", hottest.label if hottest else None)
    for z in sorted(zones, key=lambda z: -(z.temp_c or 0.0)):
        t = z.temp_c or 0.0
        warn, warn_why, fail, fail_why = _limits(z, cfg)
        if t >= fail:
            v.fail("overheating", Summary("system.hot", zone=z.label, temp=t, why=fail_why),
                   "system.cool_down")
        elif t >= warn:
            v.warn("overheating", Summary("system.hot", zone=z.label, temp=t, why=warn_why),
                   "system.cool_down")
    if hottest is None or hottest.temp_c is None:
        return []
    return [Summary("system.temp_part", temp=hottest.temp_c)]


def _uptime(ctx: CheckContext, cfg: SystemConfig, v: Verdict) -> list[Summary]:
    up = uptime_s(ctx.roots.procfs)
    if up is not None and not 0 <= up < 1e10:  # "nan", "inf" or negative: not an uptime
        up = None
    v.metric("uptime_s", int(up) if up is not None else None)
    # Informational: a fleet view correlates reboots with faults; never a finding by itself.
    v.metric("recently_rebooted", up < cfg.recent_reboot_s if up is not None else None)
    if up is None:
        return []
    days, rest = divmod(int(up), 86400)
    if days:
        return [Summary("system.up_days", days=days, hours=rest // 3600)]
    return [Summary("system.up_hours", hours=rest // 3600, minutes=rest % 3600 // 60)]


def run(ctx: CheckContext, cfg: SystemConfig) -> CheckResult:
    v = Verdict(ctx.name)
    # Root-cause order: storage trouble first, then heat (it throttles), then memory and load.
    have_mounts = _readonly(ctx, cfg, v)
    disk = _disk(ctx, cfg, v)
    heat = _thermal(ctx, cfg, v)
    parts = disk + _memory(ctx, cfg, v) + _load(ctx, cfg, v) + heat + _uptime(ctx, cfg, v)
    if not parts and not have_mounts and not v.findings:
        v.unknown("no_data", Summary("system.no_data", procfs=str(ctx.roots.procfs),
                                     sysfs=str(ctx.roots.sysfs)))
    return v.result(Summary("system.ok", parts=tuple(parts)))


SPEC = CheckSpec("system", run, SystemConfig, timeout_s=8.0)
