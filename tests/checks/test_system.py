"""The system check through the real config builder and runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_check

from posdiag.checks import system as system_mod
from posdiag.checks.system import SPEC
from posdiag.drivers.errors import DeviceTimeout, DriverError
from posdiag.drivers.statvfs import DiskSpace
from posdiag.errors import ConfigError
from posdiag.results import Status

MiB = 1024 * 1024


@pytest.fixture
def trees(fixtures_dir: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Private copies of the healthy terminal's sysfs/procfs/rootfs parts this check reads."""
    sysfs, procfs, rootfs = tmp_path / "sys", tmp_path / "proc", tmp_path / "root"
    for part in ("class/thermal", "devices/system/cpu"):
        shutil.copytree(fixtures_dir / "sysfs/healthy-terminal" / part, sysfs / part)
    procfs.mkdir()
    for name in ("meminfo", "loadavg", "uptime", "cpuinfo"):
        shutil.copy(fixtures_dir / "procfs/healthy-terminal" / name, procfs / name)
    (procfs / "self").mkdir()
    shutil.copy(fixtures_dir / "procfs/healthy-terminal/self/mounts", procfs / "self/mounts")
    (rootfs / "var/lib/posdiag").mkdir(parents=True)
    return sysfs, procfs, rootfs


def run(trees: tuple[Path, Path, Path], **cfg):
    sysfs, procfs, rootfs = trees
    return run_check(SPEC, sysfs=sysfs, procfs=procfs, rootfs=rootfs, **cfg)


def fake_disk(monkeypatch: pytest.MonkeyPatch, **by_path: DiskSpace | Exception) -> None:
    """Replace statvfs results, keyed by the last part of the mapped path (the numbers a real
    full disk would give); other paths do not exist."""

    def disk_space(path: Path, timeout_s: float = 2.0) -> DiskSpace | None:
        for terminal_path, answer in by_path.items():
            if path.name == terminal_path:
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return None

    monkeypatch.setattr(system_mod, "disk_space", disk_space)


def space(avail_mib: float, total_mib: float = 1000, device: int = 1, inodes: int = 1000,
          inodes_free: int = 800) -> DiskSpace:
    avail = int(avail_mib * MiB)
    return DiskSpace("x", device, int(total_mib * MiB), avail, avail, inodes, inodes_free, False)


def test_healthy_terminal(fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture's rootfs lives on the build machine's disk; give it an eMMC's numbers so the
    # result does not depend on how full that disk is.
    fake_disk(monkeypatch, **{"healthy-terminal": space(9200, 14600, device=1),
                              "posdiag": space(1700, 1900, device=2)})
    r = run_check(SPEC, sysfs=fixtures_dir / "sysfs/healthy-terminal",
                  procfs=fixtures_dir / "procfs/healthy-terminal",
                  rootfs=fixtures_dir / "rootfs/healthy-terminal")
    assert (r.status, r.reason) == (Status.OK, "ok"), r.summary
    m = r.metrics
    assert m["memory_available_percent"] == pytest.approx(76.877, abs=0.01)
    assert m["memory_total_mib"] == pytest.approx(3793.8)
    assert (m["load1"], m["cpu_count"]) == (0.31, 4)
    assert m["load1_per_cpu"] == pytest.approx(0.0775, abs=0.001)
    assert (m["temp_max_c"], m["temp_max_zone"], m["thermal_zones_count"]) == (
        47.0, "x86_pkg_temp", 2)
    assert (m["uptime_s"], m["recently_rebooted"]) == (277523, False)
    assert m["readonly_mounts_count"] == 0
    assert m["disk_root_free_percent"] == pytest.approx(63.014, abs=0.001)
    assert m["disk_var_lib_posdiag_free_mib"] == 1700
    assert "memory 77% available" in r.summary and "up 3d 5h" in r.summary


# --- disk ---------------------------------------------------------------------------------
def test_disk_low_fail_by_percent_on_real_statvfs(trees) -> None:
    r = run(trees, disk_warn_percent=100, disk_fail_percent=100)
    assert (r.status, r.reason) == (Status.FAIL, "disk_low")
    assert r.summary.startswith("/: ") and "fail below 100%" in r.summary
    assert r.hints == ("system.free_disk_space",)
    # "/" and /var/lib/posdiag are one file system here: judged once (bytes and inodes),
    # metrics for both
    assert all(f.summary.startswith("/: ") for f in r.findings)
    assert r.metrics["disk_root_free_percent"] == r.metrics["disk_var_lib_posdiag_free_percent"]


def test_disk_low_warn_on_real_statvfs(trees) -> None:
    r = run(trees, disk_warn_percent=100, disk_fail_percent=0)
    assert (r.status, r.reason) == (Status.WARN, "disk_low")
    assert "warn below 100%" in r.summary


def test_disk_low_fail_by_mib_floor(trees) -> None:
    r = run(trees, disk_fail_mib=1 << 40, disk_warn_percent=0, disk_fail_percent=0)
    assert (r.status, r.reason) == (Status.FAIL, "disk_low")
    assert "MiB free, fail below" in r.summary


def test_disk_low_with_full_state_partition(trees, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_disk(monkeypatch, root=space(600, device=1), posdiag=space(40, device=2))
    # Mapped paths end in "root" (the rootfs itself) and ".../var/lib/posdiag"
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "disk_low")
    assert r.summary == "/var/lib/posdiag: 4.0% free (40 MiB), fail below 5%"
    assert r.metrics["disk_var_lib_posdiag_free_percent"] == pytest.approx(4.0)
    assert r.metrics["disk_var_lib_posdiag_free_mib"] == pytest.approx(40.0)
    assert r.metrics["disk_root_free_percent"] == pytest.approx(60.0)
    assert r.metrics["disk_free_percent_min"] == pytest.approx(4.0)


def test_disk_warn_band(trees, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_disk(monkeypatch, root=space(80, device=1), posdiag=space(500, device=2))
    r = run(trees)
    assert (r.status, r.reason) == (Status.WARN, "disk_low")
    assert r.summary == "/: 8.0% free (80 MiB), warn below 10%"


def test_out_of_inodes_is_disk_low(trees, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_disk(monkeypatch, root=space(700, inodes=10000, inodes_free=100))
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "disk_low")
    assert r.summary == "/: 1.0% inodes free, fail below 5%"


def test_missing_mount_is_skipped(trees) -> None:
    r = run(trees, mounts=["/", "/data/journal"])
    assert r.status is Status.OK
    assert "disk_data_journal_free_percent" not in r.metrics
    assert r.metrics["disk_root_free_percent"] is not None


def test_statvfs_timeout_is_unknown(trees, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_disk(monkeypatch, root=space(600),
              posdiag=DeviceTimeout("stuck", device="/var/lib/posdiag", timeout_s=2.0))
    r = run(trees)
    assert (r.status, r.reason) == (Status.UNKNOWN, "timeout")
    assert r.summary == "/var/lib/posdiag: file system did not answer within 2 s"
    assert r.metrics["disk_root_free_percent"] == pytest.approx(60.0)


def test_statvfs_io_error_is_unknown(trees, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_disk(monkeypatch, root=DriverError("statvfs: Input/output error", device="/"))
    r = run(trees, mounts=["/"])
    assert (r.status, r.reason) == (Status.UNKNOWN, "io_error")


# --- read-only file systems ---------------------------------------------------------------
def test_state_partition_read_only(trees) -> None:
    _, procfs, _ = trees
    mounts = procfs / "self/mounts"
    mounts.write_text(mounts.read_text().replace(
        "/var/lib/posdiag ext4 rw,", "/var/lib/posdiag ext4 ro,"))
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "fs_readonly")
    assert r.summary == ("/var/lib/posdiag on a read-only file system "
                         "(/dev/mmcblk0p3 on /var/lib/posdiag, ext4)")
    assert r.hints == ("system.check_storage",)
    assert r.metrics["readonly_mounts_count"] == 1


def test_root_remounted_read_only_after_errors(trees) -> None:
    _, procfs, _ = trees
    mounts = procfs / "self/mounts"
    mounts.write_text(mounts.read_text().replace(
        "/dev/mmcblk0p2 / ext4 rw,relatime,errors=remount-ro",
        "/dev/mmcblk0p2 / ext4 ro,relatime,errors=remount-ro"))
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "fs_readonly")
    # /var/log lives on /; /var/lib/posdiag and /tmp have their own rw mounts
    assert r.summary.startswith("/var/log on a read-only file system (/dev/mmcblk0p2 on /")
    assert [f.reason for f in r.findings] == ["fs_readonly"]


def test_read_only_path_with_escaped_space(trees) -> None:
    _, procfs, _ = trees
    mounts = procfs / "self/mounts"
    mounts.write_text(mounts.read_text() + "/dev/sda1 /media/pos\\040data vfat ro,relatime 0 0\n")
    r = run(trees, writable_mounts=["/media/pos data/export"])
    assert (r.status, r.reason) == (Status.FAIL, "fs_readonly")
    assert "/dev/sda1 on /media/pos data, vfat" in r.summary


def test_read_only_paths_on_one_mount_give_one_finding(trees) -> None:
    _, procfs, _ = trees
    (procfs / "self/mounts").write_text("/dev/root / ext4 ro,relatime 0 0\n")
    r = run(trees)
    assert [f.reason for f in r.findings] == ["fs_readonly"]
    assert r.summary.startswith("/var/lib/posdiag, /var/log, /tmp on a read-only file system")


def test_no_mount_table(trees) -> None:
    _, procfs, _ = trees
    (procfs / "self/mounts").unlink()
    r = run(trees)
    assert r.status is Status.OK
    assert r.metrics["readonly_mounts_count"] is None


# --- memory -------------------------------------------------------------------------------
def _meminfo(procfs: Path, total: int, available: int) -> None:
    (procfs / "meminfo").write_text(f"MemTotal: {total} kB\nMemFree: {available // 2} kB\n"
                                    f"MemAvailable: {available} kB\nBuffers: 0 kB\n")


def test_memory_low_warn(trees) -> None:
    _meminfo(trees[1], 1_000_000, 80_000)
    r = run(trees)
    assert (r.status, r.reason) == (Status.WARN, "memory_low")
    assert r.summary.startswith("8.0% memory available") and "warn below 10%" in r.summary
    assert r.metrics["memory_available_percent"] == pytest.approx(8.0)
    assert r.hints == ("system.free_memory",)


def test_memory_low_fail(trees) -> None:
    _meminfo(trees[1], 1_000_000, 30_000)
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "memory_low")
    assert "fail below 5%" in r.summary
    assert r.metrics["memory_available_mib"] == pytest.approx(29.3)


def test_memory_thresholds_configurable(trees) -> None:
    _meminfo(trees[1], 1_000_000, 300_000)
    r = run(trees, memory_warn_percent=40, memory_fail_percent=20)
    assert (r.status, r.reason) == (Status.WARN, "memory_low")


def test_garbage_meminfo_leaves_memory_unknown(trees) -> None:
    (trees[1] / "meminfo").write_text("nonsense\n")
    r = run(trees)
    assert r.status is Status.OK
    assert r.metrics["memory_available_percent"] is None


# --- load ---------------------------------------------------------------------------------
def test_load_high(trees) -> None:
    (trees[1] / "loadavg").write_text("9.60 7.10 4.00 12/300 999\n")
    r = run(trees)
    assert (r.status, r.reason) == (Status.WARN, "load_high")
    assert r.summary == "load 9.60 on 4 CPU(s) = 2.40 per CPU, warn above 2"
    assert r.metrics["load1_per_cpu"] == pytest.approx(2.4)


def test_load_cpu_count_from_cpuinfo(trees) -> None:
    sysfs, procfs, _ = trees
    shutil.rmtree(sysfs / "devices")
    (procfs / "cpuinfo").write_text("processor\t: 0\nprocessor\t: 1\n")
    (procfs / "loadavg").write_text("3.00 1.00 1.00 1/100 5\n")
    r = run(trees, load_warn_per_cpu=1.0)
    assert (r.status, r.reason) == (Status.WARN, "load_high")
    assert r.metrics["cpu_count"] == 2


def test_load_without_cpu_count_is_not_judged(trees) -> None:
    sysfs, procfs, _ = trees
    shutil.rmtree(sysfs / "devices")
    (procfs / "cpuinfo").unlink()
    (procfs / "loadavg").write_text("50.00 1.00 1.00 1/100 5\n")
    r = run(trees)
    assert r.status is Status.OK
    assert r.metrics["load1"] == 50.0 and r.metrics["load1_per_cpu"] is None


# --- thermal ------------------------------------------------------------------------------
def _temp(sysfs: Path, zone: int, millideg: int, **attrs: str) -> None:
    d = sysfs / f"class/thermal/thermal_zone{zone}"
    (d / "temp").write_text(f"{millideg}\n")
    for k, v in attrs.items():
        (d / k).write_text(v + "\n")


def test_overheating_warn(trees) -> None:
    _temp(trees[0], 1, 80000)
    r = run(trees)
    assert (r.status, r.reason) == (Status.WARN, "overheating")
    assert r.summary == "x86_pkg_temp at 80.0 °C (warn at 75 °C)"
    assert (r.metrics["temp_max_c"], r.metrics["temp_max_zone"]) == (80.0, "x86_pkg_temp")
    assert r.hints == ("system.cool_down",)


def test_overheating_fail(trees) -> None:
    _temp(trees[0], 1, 93500)
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "overheating")
    assert r.summary == "x86_pkg_temp at 93.5 °C (fail at 90 °C)"


def test_passive_trip_lowers_warn(trees) -> None:
    _temp(trees[0], 1, 68000, trip_point_0_temp="65000")
    r = run(trees)
    assert (r.status, r.reason) == (Status.WARN, "overheating")
    assert r.summary == "x86_pkg_temp at 68.0 °C (throttling trip 65 °C)"


def test_critical_trip_lowers_fail(trees) -> None:
    _temp(trees[0], 0, 86000, trip_point_0_temp="85000")
    r = run(trees)
    assert (r.status, r.reason) == (Status.FAIL, "overheating")
    assert r.summary == "acpitz at 86.0 °C (critical trip 85 °C)"


def test_trip_points_can_be_ignored(trees) -> None:
    _temp(trees[0], 1, 68000, trip_point_0_temp="65000")
    assert run(trees, use_trip_points=False).status is Status.OK


def test_ignored_zone(trees) -> None:
    _temp(trees[0], 1, 95000)
    r = run(trees, ignore_thermal_zones=["x86_pkg_temp"])
    assert r.status is Status.OK
    assert r.metrics["thermal_zones_count"] == 1


def test_unreadable_zone_temp_is_skipped(trees) -> None:
    t = trees[0] / "class/thermal/thermal_zone1/temp"
    t.unlink()
    t.mkdir()
    r = run(trees)
    assert r.status is Status.OK
    assert (r.metrics["temp_max_c"], r.metrics["temp_max_zone"]) == (27.8, "acpitz")


def test_temperature_config_validated() -> None:
    with pytest.raises(ConfigError) as exc:
        run_check(SPEC, temp_warn_c=95, temp_fail_c=90)
    assert "checks.system.temp_warn_c" in str(exc.value)


@pytest.mark.parametrize(("cfg", "key"), [
    ({"disk_warn_percent": 5, "disk_fail_percent": 10}, "disk_fail_percent"),
    ({"memory_warn_percent": 5, "memory_fail_percent": 10}, "memory_fail_percent"),
    ({"mounts": ["var"]}, "mounts"),
    ({"writable_mounts": ["/tmp", "log"]}, "writable_mounts"),
    ({"load_warn_per_cpu": 0}, "load_warn_per_cpu"),
])
def test_config_validated(cfg: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        run_check(SPEC, **cfg)
    assert f"checks.system.{key}" in str(exc.value)


# --- uptime -------------------------------------------------------------------------------
def test_recently_rebooted_is_informational(trees) -> None:
    (trees[1] / "uptime").write_text("123.45 400.00\n")
    r = run(trees)
    assert (r.status, r.reason) == (Status.OK, "ok")
    assert (r.metrics["uptime_s"], r.metrics["recently_rebooted"]) == (123, True)
    assert "up 0h 2m" in r.summary


@pytest.mark.parametrize("raw", ["nan 1.0\n", "-5 1\n", "inf 1\n", "x\n"])
def test_garbage_uptime(trees, raw: str) -> None:
    (trees[1] / "uptime").write_text(raw)
    r = run(trees)
    assert r.status is Status.OK
    assert r.metrics["uptime_s"] is None and r.metrics["recently_rebooted"] is None


# --- nothing at all -----------------------------------------------------------------------
def test_nothing_readable_is_unknown(tmp_path: Path) -> None:
    r = run_check(SPEC, sysfs=tmp_path / "sys", procfs=tmp_path / "proc",
                  rootfs=tmp_path / "root", mounts=[])
    assert (r.status, r.reason) == (Status.UNKNOWN, "no_data")


def test_scenario_state_partition_readonly(fixtures_dir: Path) -> None:
    r = run_check(SPEC, sysfs=fixtures_dir / "sysfs/healthy-terminal",
                  procfs=fixtures_dir / "procfs/state-partition-readonly",
                  rootfs=fixtures_dir / "rootfs/healthy-terminal",
                  disk_warn_percent=0, disk_fail_percent=0)
    assert (r.status, r.reason) == (Status.FAIL, "fs_readonly")
    assert r.summary.startswith("/var/lib/posdiag on a read-only file system")
    assert r.metrics["readonly_mounts_count"] == 1
