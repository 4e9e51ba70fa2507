"""Host readers: meminfo, loadavg, mounts, CPU count, uptime and statvfs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posdiag.drivers import statvfs as statvfs_mod
from posdiag.drivers.errors import DeviceTimeout, DriverError, PermissionDenied
from posdiag.drivers.procfs.cpuinfo import parse_processor_count, read_processor_count
from posdiag.drivers.procfs.kernel import uptime_s
from posdiag.drivers.procfs.loadavg import LoadAvg, parse_loadavg, read_loadavg
from posdiag.drivers.procfs.meminfo import MemInfo, parse_meminfo, read_meminfo
from posdiag.drivers.procfs.mounts import Mount, covering_mount, parse_mounts, read_mounts
from posdiag.drivers.statvfs import DiskSpace, disk_space
from posdiag.drivers.sysfs.cpu import online_cpu_count, parse_cpu_list


@pytest.fixture
def healthy_proc(fixtures_dir: Path) -> Path:
    return fixtures_dir / "procfs/healthy-terminal"


# --- meminfo ------------------------------------------------------------------------------
def test_meminfo_healthy(healthy_proc: Path) -> None:
    mi = read_meminfo(healthy_proc)
    assert mi is not None
    assert (mi.total_kib, mi.available_kib, mi.free_kib) == (3884836, 2986544, 1942212)
    assert not mi.available_estimated
    assert mi.swap_total_kib == 1048572
    assert mi.available_percent == pytest.approx(76.877, abs=0.01)


def test_meminfo_without_memavailable_is_estimated() -> None:
    mi = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
    assert mi is not None and mi.available_estimated
    assert mi.available_kib == 400


@pytest.mark.parametrize("text", [
    "", "garbage", "MemFree: 10 kB\n", "MemTotal: 0 kB\nMemFree: 0 kB\n",
    "MemTotal: 100 kB\nMemFree: 200 kB\n",
    "MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 500 kB\n",
    "MemTotal: lots\nMemFree: 1 kB\n",
])
def test_meminfo_garbage_is_none(text: str) -> None:
    assert parse_meminfo(text) is None


def test_meminfo_missing_file(tmp_path: Path) -> None:
    assert read_meminfo(tmp_path) is None


def test_meminfo_validates() -> None:
    with pytest.raises(ValueError):
        MemInfo(0, 0, 0)
    with pytest.raises(ValueError):
        MemInfo(100, 101, 50)


@given(st.text(max_size=300))
def test_meminfo_never_raises(text: str) -> None:
    mi = parse_meminfo(text)
    assert mi is None or 0 <= mi.available_percent <= 100


# --- loadavg ------------------------------------------------------------------------------
def test_loadavg_healthy(healthy_proc: Path) -> None:
    assert read_loadavg(healthy_proc) == LoadAvg(0.31, 0.27, 0.22, 2, 212)


@pytest.mark.parametrize("text", ["", "0.1 0.2", "a b c d/e f", "0.10 0.20 0.30 1/2",
                                  "-1.00 0.20 0.30 1/100 5", "nan 0.20 0.30 1/100 5"])
def test_loadavg_garbage(text: str) -> None:
    assert parse_loadavg(text) is None


@given(st.text(max_size=60))
def test_loadavg_never_raises(text: str) -> None:
    la = parse_loadavg(text)
    assert la is None or la.load1 >= 0


def test_loadavg_validates() -> None:
    with pytest.raises(ValueError):
        LoadAvg(float("inf"), 0.0, 0.0, 1, 1)


# --- CPU count ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "cpus"), [
    ("0\n", {0}), ("0-3\n", {0, 1, 2, 3}), ("0-3,6,8-9", {0, 1, 2, 3, 6, 8, 9}),
])
def test_cpu_list(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == frozenset(cpus)


@pytest.mark.parametrize("text", ["", "a", "3-1", "0-", "0,,1", "0-3;5"])
def test_cpu_list_garbage(text: str) -> None:
    assert parse_cpu_list(text) is None


@given(st.text(alphabet="0123456789-,x ", max_size=20))
def test_cpu_list_never_raises(text: str) -> None:
    r = parse_cpu_list(text)
    assert r is None or all(c >= 0 for c in r)


def test_cpu_counts_from_fixture(fixtures_dir: Path, healthy_proc: Path, tmp_path: Path) -> None:
    assert online_cpu_count(fixtures_dir / "sysfs/healthy-terminal") == 4
    assert read_processor_count(healthy_proc) == 4
    assert online_cpu_count(tmp_path) is None
    assert read_processor_count(tmp_path) is None


def test_processor_count_ignores_other_lines() -> None:
    text = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 10 (v7l)\n\nprocessor\t: 1\n" \
           "Hardware\t: Freescale i.MX6 Quad\nprocessors: 9\n"
    assert parse_processor_count(text) == 2
    assert parse_processor_count("Hardware : x\n") is None


# --- uptime -------------------------------------------------------------------------------
def test_uptime(healthy_proc: Path, tmp_path: Path) -> None:
    assert uptime_s(healthy_proc) == pytest.approx(277523.84)
    assert uptime_s(tmp_path) is None


# --- mounts -------------------------------------------------------------------------------
def test_mounts_healthy(healthy_proc: Path) -> None:
    mounts = read_mounts(healthy_proc)
    assert len(mounts) == 24
    root = covering_mount(mounts, "/var/log")
    assert root is not None and (root.source, root.mount_point, root.fstype) == (
        "/dev/mmcblk0p2", "/", "ext4")
    assert not root.read_only
    assert "errors=remount-ro" in root.options  # an option mentioning ro is not ro
    state = covering_mount(mounts, "/var/lib/posdiag")
    assert state is not None and state.source == "/dev/mmcblk0p3"
    assert covering_mount(mounts, "/var/lib/posdiag/outbox.sqlite") == state
    assert covering_mount(mounts, "/var/lib/posdiagx") == root  # prefix is not containment
    tmp = covering_mount(mounts, "/tmp/")
    assert tmp is not None and tmp.fstype == "tmpfs"


def test_mounts_octal_escapes() -> None:
    text = ("/dev/sda1 /media/pos\\040data vfat ro,relatime 0 0\n"
            "/dev/sdb1 /mnt/tab\\011and\\134slash ext4 rw 0 0\n")
    a, b = parse_mounts(text)
    assert a.mount_point == "/media/pos data" and a.read_only
    assert b.mount_point == "/mnt/tab\tand\\slash"
    assert covering_mount((a, b), "/media/pos data/export") == a


def test_mounts_malformed_lines_are_skipped() -> None:
    text = ("\n"
            "onlythree fields here\n"
            "/dev/x relative ext4 rw 0 0\n"
            "/dev/mmcblk0p2 / ext4 ro,relatime 0 0\n")
    (m,) = parse_mounts(text)
    assert m.mount_point == "/" and m.read_only


def test_stacked_mount_last_wins() -> None:
    mounts = parse_mounts("/dev/a / ext4 rw 0 0\n/dev/b /data ext4 rw 0 0\n"
                          "/dev/c /data ext4 ro 0 0\n")
    m = covering_mount(mounts, "/data/x")
    assert m is not None and m.source == "/dev/c"


def test_mounts_fallback_and_absent(tmp_path: Path) -> None:
    assert read_mounts(tmp_path) == ()
    (tmp_path / "mounts").write_text("/dev/a / ext4 rw 0 0\n")
    assert [m.source for m in read_mounts(tmp_path)] == ["/dev/a"]
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mounts").write_text("/dev/b / ext4 ro 0 0\n")
    assert [m.source for m in read_mounts(tmp_path)] == ["/dev/b"]


def test_mounts_non_utf8_path_is_kept(tmp_path: Path) -> None:
    (tmp_path / "mounts").write_bytes(b"/dev/a / ext4 rw 0 0\n/dev/b /media/\xff ext4 rw 0 0\n")
    assert len(read_mounts(tmp_path)) == 2


def test_covering_mount_of_empty_table() -> None:
    assert covering_mount((), "/var/log") is None


def test_mount_validates() -> None:
    with pytest.raises(ValueError):
        Mount("/dev/a", "relative", "ext4", ())


@given(st.text(max_size=200))
def test_mounts_never_raise(text: str) -> None:
    for m in parse_mounts(text):
        assert m.mount_point.startswith("/")


# --- statvfs ------------------------------------------------------------------------------
def test_disk_space_of_tmp_path(tmp_path: Path) -> None:
    ds = disk_space(tmp_path)
    assert ds is not None
    real = os.statvfs(tmp_path)
    assert ds.total_bytes == real.f_blocks * real.f_frsize
    assert 0 <= ds.available_bytes <= ds.free_bytes <= ds.total_bytes
    assert ds.available_percent is not None and 0 <= ds.available_percent <= 100
    assert ds.device == os.stat(tmp_path).st_dev


def test_disk_space_missing_path(tmp_path: Path) -> None:
    assert disk_space(tmp_path / "nope") is None


def test_disk_space_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    returned = threading.Event()

    def stuck(path: object) -> os.statvfs_result:
        release.wait(10)  # a dead NFS server, until the test lets go
        returned.set()
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(statvfs_mod.os, "statvfs", stuck)
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as exc:
        disk_space(tmp_path, timeout_s=0.1)
    elapsed = time.monotonic() - start
    abandoned = not returned.is_set()  # the answer came while statvfs still hung
    release.set()
    assert abandoned
    assert 0.1 <= elapsed < 0.1 + 3.0  # the ceiling only catches a hang
    assert exc.value.timeout_s == 0.1


@pytest.mark.parametrize(("code", "error"), [(13, PermissionDenied), (5, DriverError)])
def test_disk_space_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int,
                           error: type[DriverError]) -> None:
    def failing(path: object) -> os.statvfs_result:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(statvfs_mod.os, "statvfs", failing)
    with pytest.raises(error):
        disk_space(tmp_path)


def test_disk_space_percent_like_df() -> None:
    # 1000 blocks, 100 free of which 50 reserved for root: df shows 900 used, 50 available
    ds = DiskSpace("/", 1, 1000, 100, 50, 0, 0, False)
    assert ds.available_percent == pytest.approx(100 * 50 / 950)
    assert ds.inodes_available_percent is None  # btrfs/vfat: no inode limit
    assert DiskSpace("/", 1, 0, 0, 0, 0, 0, False).available_percent is None
    with pytest.raises(ValueError):
        DiskSpace("/", 1, 10, 20, 5, 0, 0, False)
