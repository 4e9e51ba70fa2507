"""The software check: versions of OS, kernel, Python, agent and packages against a baseline."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_check

from posdiag import __version__
from posdiag.checks.software import (
    DEFAULT_PACKAGES,
    SPEC,
    Baseline,
    Shortfall,
    SoftwareConfig,
    metric_key,
)
from posdiag.config import build
from posdiag.errors import ConfigError
from posdiag.results import Status

ROOTFS = FIXTURES / "rootfs/healthy-terminal"
PROCFS = FIXTURES / "procfs/healthy-terminal"
STATUS = "var/lib/dpkg/status"
OPENSSL = "3.0.11-1~deb12u2"  # what the healthy fixture has installed


def healthy(**cfg: object):
    return run_check(SPEC, rootfs=ROOTFS, procfs=PROCFS, **cfg)


def variant(tmp_path: Path, *, status: str | bytes | None = None, drop_status: bool = False,
            os_release: str | None = None) -> Path:
    """A copy of the healthy rootfs (only the files this check reads) with changes."""
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "var/lib/dpkg").mkdir(parents=True)
    shutil.copy(ROOTFS / "etc/os-release", root / "etc/os-release")
    if os_release is not None:
        (root / "etc/os-release").write_text(os_release)
    if not drop_status:
        if status is None:
            shutil.copy(ROOTFS / STATUS, root / STATUS)
        elif isinstance(status, bytes):
            (root / STATUS).write_bytes(status)
        else:
            (root / STATUS).write_text(status)
    return root


def procfs_with(tmp_path: Path, release: str | None) -> Path:
    proc = tmp_path / "procfs"
    (proc / "sys/kernel").mkdir(parents=True)
    if release is not None:
        (proc / "sys/kernel/osrelease").write_text(release + "\n")
    return proc


# --------------------------------------------------------------------------------------------
# Healthy
# --------------------------------------------------------------------------------------------
def test_healthy_terminal_without_baseline() -> None:
    r = healthy()
    assert r.status is Status.OK and r.reason == "ok"
    m = r.metrics
    assert m["os_pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert m["os_id"] == "debian"
    assert m["os_version_id"] == "12"
    assert m["kernel_release"] == "6.1.0-18-amd64"
    assert m["python_version"] == platform.python_version()
    assert m["agent_version"] == __version__
    assert m["pkg_openssl_version"] == OPENSSL
    assert m["pkg_libc6_version"] == "2.36-9+deb12u4"
    assert m["pkg_ca_certificates_version"] == "20230311"
    assert m["pkg_tzdata_version"] == "2024a-0+deb12u1"
    assert m["dpkg_installed_count"] == 15
    assert m["dpkg_damaged_entries"] == 0
    assert m["below_minimum_count"] == 0 and m["outdated_count"] == 0
    assert "Debian GNU/Linux 12 (bookworm)" in r.summary
    assert "6.1.0-18-amd64" in r.summary
    assert "no baseline configured" in r.summary


def test_healthy_terminal_meets_a_mixed_baseline() -> None:
    r = healthy(
        minimum={"openssl": "3.0.11-1~deb12u1", "libc6": "2.36-9", "kernel": "6.1.0-17-amd64",
                 "os": "12", "posdiag": "0.1.0", "openssh-server": "1:9.2p1-2"},
        recommended={"openssl": OPENSSL, "tzdata": "2024a-0+deb12u1", "kernel": "6.1.0-18"},
    )
    assert r.status is Status.OK, r.summary
    assert "baseline met (7 components)" in r.summary
    # A package the baseline names is reported even if `packages` does not list it.
    assert r.metrics["pkg_openssh_server_version"] == "1:9.2p1-2+deb12u2"


def test_packages_are_configurable() -> None:
    r = healthy(packages=["pcscd", "libusb-1.0-0"])
    assert r.status is Status.OK
    assert r.metrics["pkg_pcscd_version"] == "1.9.9-2"
    assert r.metrics["pkg_libusb_1_0_0_version"] == "2:1.0.26-1"
    assert "pkg_openssl_version" not in r.metrics


# --------------------------------------------------------------------------------------------
# below_minimum / outdated
# --------------------------------------------------------------------------------------------
def test_package_below_minimum_fails() -> None:
    r = healthy(minimum={"openssl": "3.0.11-1~deb12u3"})
    assert r.status is Status.FAIL
    assert r.reason == "below_minimum"
    assert r.summary == f"below minimum: openssl {OPENSSL} < 3.0.11-1~deb12u3"
    assert r.hints == ("software.update",)
    assert r.metrics["below_minimum_count"] == 1
    assert r.metrics["pkg_openssl_version"] == OPENSSL


def test_security_update_tilde_versions_order_correctly() -> None:
    # 3.0.11-1~deb12u2 is a backport below 3.0.11-1; a string compare would get this wrong.
    r = healthy(minimum={"openssl": "3.0.11-1"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")


def test_epoch_decides() -> None:
    assert healthy(minimum={"libusb-1.0-0": "1:9.9"}).status is Status.OK
    r = healthy(minimum={"libusb-1.0-0": "3:0.1"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")


def test_kernel_below_minimum_hints_a_reboot() -> None:
    r = healthy(minimum={"kernel": "6.1.0-20-amd64"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")
    assert "kernel 6.1.0-18-amd64 < 6.1.0-20-amd64" in r.summary
    assert "software.reboot_for_kernel" in r.hints


def test_kernel_release_is_compared_as_a_whole() -> None:
    # Read as a Debian version, "6.1.0-18-amd64" would be upstream 6.1.0-18 > 6.1.0.
    r = healthy(minimum={"kernel": "6.1.0-20"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")
    assert healthy(minimum={"kernel": "6.1"}).status is Status.OK


def test_os_and_agent_below_minimum() -> None:
    r = healthy(minimum={"os": "13", "posdiag": "99.0"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")
    assert r.summary == f"below minimum: os 12 < 13, posdiag {__version__} < 99.0"
    assert r.metrics["below_minimum_count"] == 2


def test_outdated_warns() -> None:
    r = healthy(recommended={"libc6": "2.36-9+deb12u7", "tzdata": "2024b-0+deb12u1"})
    assert (r.status, r.reason) == (Status.WARN, "outdated")
    assert r.summary == ("older than recommended: libc6 2.36-9+deb12u4 < 2.36-9+deb12u7, "
                         "tzdata 2024a-0+deb12u1 < 2024b-0+deb12u1")
    assert r.hints == ("software.update",)
    assert r.metrics["outdated_count"] == 2
    assert r.metrics["below_minimum_count"] == 0


def test_below_minimum_beats_outdated_and_both_are_kept() -> None:
    r = healthy(minimum={"openssl": "3.0.13-1~deb12u1"},
                recommended={"openssl": "3.0.14-1~deb12u1", "libc6": "2.36-9+deb12u7"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")
    assert [f.reason for f in r.findings] == ["below_minimum", "outdated"]
    # openssl is below its minimum: it is not listed a second time as merely outdated.
    assert r.findings[1].summary == "older than recommended: libc6 2.36-9+deb12u4 < 2.36-9+deb12u7"
    assert r.metrics["below_minimum_count"] == 1 and r.metrics["outdated_count"] == 1


def test_many_shortfalls_keep_the_summary_one_short_line() -> None:
    r = healthy(minimum={"openssl": "9", "libc6": "9", "tzdata": "9999", "bash": "9", "dpkg": "9"})
    assert r.summary.endswith("and 2 more")
    assert r.metrics["below_minimum_count"] == 5


# --------------------------------------------------------------------------------------------
# package_missing
# --------------------------------------------------------------------------------------------
def test_missing_package_with_a_minimum_fails() -> None:
    r = healthy(minimum={"modemmanager": "1.20"})
    assert (r.status, r.reason) == (Status.FAIL, "package_missing")
    assert r.summary == ("not installed: modemmanager (minimum 1.20; "
                         "dpkg: deinstall ok config-files)")
    assert r.hints == ("software.install_package",)
    assert r.metrics["pkg_modemmanager_version"] is None


def test_missing_package_without_a_minimum_warns() -> None:
    r = healthy(packages=[*DEFAULT_PACKAGES, "cups"])
    assert (r.status, r.reason) == (Status.WARN, "package_missing")
    assert r.summary == "not installed: cups"
    assert r.metrics["pkg_cups_version"] is None
    assert r.metrics["pkg_openssl_version"] == OPENSSL


def test_missing_package_with_only_a_recommendation_warns() -> None:
    r = healthy(recommended={"cups": "2.4"})
    assert (r.status, r.reason) == (Status.WARN, "package_missing")


def test_default_package_missing_warns(tmp_path: Path) -> None:
    text = (ROOTFS / STATUS).read_text().replace(
        "Package: tzdata\nStatus: install ok installed",
        "Package: tzdata\nStatus: install ok half-configured")
    r = run_check(SPEC, rootfs=variant(tmp_path, status=text), procfs=PROCFS)
    assert (r.status, r.reason) == (Status.WARN, "package_missing")
    assert r.summary == "not installed: tzdata (dpkg: install ok half-configured)"


def test_held_package_counts_as_installed(tmp_path: Path) -> None:
    text = (ROOTFS / STATUS).read_text().replace(
        "Package: openssl\nStatus: install ok installed",
        "Package: openssl\nStatus: hold ok installed")
    r = run_check(SPEC, rootfs=variant(tmp_path, status=text), procfs=PROCFS,
                  minimum={"openssl": OPENSSL})
    assert r.status is Status.OK
    assert r.metrics["pkg_openssl_version"] == OPENSSL


def test_multi_arch_uses_the_lowest_installed_version(tmp_path: Path) -> None:
    i386 = ("\nPackage: libc6\nStatus: install ok installed\nArchitecture: i386\n"
            "Multi-Arch: same\nVersion: 2.36-9+deb12u3\n")
    text = (ROOTFS / STATUS).read_text() + i386
    root = variant(tmp_path, status=text)
    r = run_check(SPEC, rootfs=root, procfs=PROCFS, minimum={"libc6": "2.36-9+deb12u4"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")
    assert r.metrics["pkg_libc6_version"] == "2.36-9+deb12u3"
    r = run_check(SPEC, rootfs=root, procfs=PROCFS, minimum={"libc6:amd64": "2.36-9+deb12u4"})
    assert r.status is Status.OK
    assert r.metrics["pkg_libc6_amd64_version"] == "2.36-9+deb12u4"


# --------------------------------------------------------------------------------------------
# The package database missing, garbage or damaged
# --------------------------------------------------------------------------------------------
def test_missing_status_file_still_reports_the_system(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=variant(tmp_path, drop_status=True), procfs=PROCFS)
    assert (r.status, r.reason) == (Status.WARN, "package_db_missing")
    assert r.summary.startswith("no dpkg database at /var/lib/dpkg/status: versions of openssl")
    assert r.hints == ("software.repair_package_db", "software.no_dpkg")
    m = r.metrics
    assert m["os_version_id"] == "12"
    assert m["kernel_release"] == "6.1.0-18-amd64"
    assert m["python_version"] == platform.python_version()
    assert m["agent_version"] == __version__
    assert m["pkg_openssl_version"] is None
    assert m["dpkg_installed_count"] is None


def test_missing_status_file_with_a_package_baseline_is_unknown(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=variant(tmp_path, drop_status=True), procfs=PROCFS,
                  minimum={"openssl": "3.0", "kernel": "6.1"})
    assert (r.status, r.reason) == (Status.UNKNOWN, "package_db_missing")
    assert r.hints == ("software.repair_package_db",)


def test_missing_status_file_does_not_hide_other_failures(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=variant(tmp_path, drop_status=True), procfs=PROCFS,
                  minimum={"openssl": "3.0", "kernel": "6.2"})
    assert (r.status, r.reason) == (Status.FAIL, "below_minimum")
    assert [f.reason for f in r.findings] == ["package_db_missing", "below_minimum"]


def test_image_without_dpkg_and_no_packages_is_ok(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=variant(tmp_path, drop_status=True), procfs=PROCFS,
                  packages=[], minimum={"kernel": "6.1", "os": "12"})
    assert r.status is Status.OK, r.summary
    assert not any(k.startswith("pkg_") for k in r.metrics)


def test_garbage_status_file(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 40 + b"\nPackage\n:::\n\n\x00\x00 Version: 1\n"
    r = run_check(SPEC, rootfs=variant(tmp_path, status=garbage), procfs=PROCFS)
    assert (r.status, r.reason) == (Status.WARN, "package_db_unreadable")
    assert "holds no valid package entry" in r.summary
    assert r.metrics["pkg_openssl_version"] is None
    assert r.metrics["dpkg_installed_count"] is None
    assert r.metrics["dpkg_damaged_entries"] >= 1
    assert r.metrics["os_version_id"] == "12"
    r = run_check(SPEC, rootfs=variant(tmp_path / "b", status=garbage), procfs=PROCFS,
                  minimum={"openssl": "3.0"})
    assert (r.status, r.reason) == (Status.UNKNOWN, "package_db_unreadable")


def test_status_path_that_is_a_directory_is_unreadable(tmp_path: Path) -> None:
    root = variant(tmp_path, drop_status=True)
    (root / STATUS).mkdir()
    r = run_check(SPEC, rootfs=root, procfs=PROCFS)
    assert (r.status, r.reason) == (Status.WARN, "package_db_unreadable")
    assert r.summary.startswith("cannot read /var/lib/dpkg/status: not a regular file")


def test_partly_damaged_status_file_warns_and_reads_the_rest(tmp_path: Path) -> None:
    text = "Package: broken\nthis line is garbage\nStatus: what\n\n" + (ROOTFS / STATUS).read_text()
    r = run_check(SPEC, rootfs=variant(tmp_path, status=text), procfs=PROCFS,
                  minimum={"openssl": OPENSSL})
    assert (r.status, r.reason) == (Status.WARN, "package_db_damaged")
    assert r.summary == "/var/lib/dpkg/status has 1 damaged entry; the rest was read"
    assert r.metrics["dpkg_damaged_entries"] == 1
    assert r.metrics["pkg_openssl_version"] == OPENSSL


def test_unparseable_installed_version(tmp_path: Path) -> None:
    text = (ROOTFS / STATUS).read_text().replace(
        f"Version: {OPENSSL}\nDepends: libc6 (>= 2.34), libssl3",
        "Version: v3-custom\nDepends: libc6 (>= 2.34), libssl3")
    root = variant(tmp_path, status=text)
    r = run_check(SPEC, rootfs=root, procfs=PROCFS, minimum={"openssl": "3.0"})
    assert (r.status, r.reason) == (Status.UNKNOWN, "version_unknown")
    assert r.summary == "cannot tell the version of openssl (found 'v3-custom', minimum 3.0)"
    assert r.metrics["pkg_openssl_version"] == "v3-custom"
    r = run_check(SPEC, rootfs=root, procfs=PROCFS, recommended={"openssl": "3.0"})
    assert (r.status, r.reason) == (Status.WARN, "version_unknown")


# --------------------------------------------------------------------------------------------
# OS and kernel unknown
# --------------------------------------------------------------------------------------------
def test_unreadable_kernel_with_a_minimum_is_unknown(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=ROOTFS, procfs=procfs_with(tmp_path, None),
                  minimum={"kernel": "6.1"})
    assert (r.status, r.reason) == (Status.UNKNOWN, "version_unknown")
    assert r.summary == "cannot tell the version of kernel (minimum 6.1)"
    assert r.metrics["kernel_release"] is None


def test_unreadable_kernel_without_baseline_is_only_reported(tmp_path: Path) -> None:
    r = run_check(SPEC, rootfs=ROOTFS, procfs=procfs_with(tmp_path, None))
    assert r.status is Status.OK
    assert "kernel unknown" in r.summary


def test_os_release_without_version_id(tmp_path: Path) -> None:
    root = variant(tmp_path, os_release='PRETTY_NAME="Debian GNU/Linux trixie/sid"\nID=debian\n')
    r = run_check(SPEC, rootfs=root, procfs=PROCFS, recommended={"os": "12"})
    assert (r.status, r.reason) == (Status.WARN, "version_unknown")
    assert r.metrics["os_pretty_name"] == "Debian GNU/Linux trixie/sid"
    assert r.metrics["os_version_id"] is None


def test_no_os_release_at_all(tmp_path: Path) -> None:
    root = variant(tmp_path)
    (root / "etc/os-release").unlink()
    r = run_check(SPEC, rootfs=root, procfs=PROCFS)
    assert r.status is Status.OK
    assert r.metrics["os_pretty_name"] is None and r.metrics["os_id"] is None
    assert r.summary.startswith("unknown OS, kernel 6.1.0-18-amd64")


# --------------------------------------------------------------------------------------------
# Config: a bad baseline is a ConfigError naming the key
# --------------------------------------------------------------------------------------------
def build_software(table: dict) -> SoftwareConfig:
    cfg = build({"checks": {"software": table}}, {"software": SoftwareConfig})
    result = cfg.check("software")
    assert isinstance(result, SoftwareConfig)
    return result


@pytest.mark.parametrize(("table", "key", "problem"), [
    ({"minimum": {"openssl": "not a version"}}, "checks.software.minimum.openssl",
     "white space"),
    ({"minimum": {"openssl": "v3.0"}}, "checks.software.minimum.openssl",
     "must start with a digit"),
    ({"recommended": {"libc6": "2.36-"}}, "checks.software.recommended.libc6",
     "revision after the last '-' is empty"),
    ({"minimum": {"kernel": "linux 6.1"}}, "checks.software.minimum.kernel",
     "is not a kernel release"),
    ({"minimum": {"os": "bookworm"}}, "checks.software.minimum.os", "must start with a digit"),
    ({"minimum": {"Not_A_Package": "1.0"}}, "checks.software.minimum.Not_A_Package",
     "neither a Debian package name"),
    ({"minimum": {"openssl": "3.0.13"}, "recommended": {"openssl": "3.0.11"}},
     "checks.software.recommended.openssl", "must be at least the minimum"),
    ({"packages": ["openssl", "Bad Name"]}, "checks.software.packages",
     "'Bad Name' is not a Debian package name"),
    ({"minimum": {"openssl": 3}}, "checks.software.minimum.openssl", "must be a string"),
])
def test_bad_baseline_is_a_config_error(table: dict, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_software(table)
    assert e.value.key == key
    assert problem in e.value.problem


def test_good_baseline_builds() -> None:
    cfg = build_software({"packages": ["openssl", "libc6:i386"],
                          "minimum": {"openssl": "3.0.11-1~deb12u2", "kernel": "6.1.0-18-amd64",
                                      "posdiag": "0.1", "os": "12", "libstdc++6": "12"},
                          "recommended": {"openssl": "3.0.11-1~deb12u2"}})
    assert cfg.package_queries == ("openssl", "libc6:i386", "libstdc++6")
    assert "kernel" in cfg.baseline and "cups" not in cfg.baseline
    assert SoftwareConfig().packages == DEFAULT_PACKAGES


def test_metric_keys_are_snake_case() -> None:
    assert metric_key("libstdc++6") == "pkg_libstdc_6_version"
    assert metric_key("libc6:i386") == "pkg_libc6_i386_version"
    assert metric_key("python3.11") == "pkg_python3_11_version"


# --------------------------------------------------------------------------------------------
# The baseline as a plug-in point for other version sources (reader firmware, later)
# --------------------------------------------------------------------------------------------
def test_baseline_assesses_any_version_mapping() -> None:
    baseline = Baseline(minimum={"openssl": "3.0", "kernel": "6.1", "pcscd": "1.9"},
                        recommended={"openssl": "3.1", "libc6": "2.36"})
    found = baseline.assess({"openssl": "3.0.11-1", "kernel": "5.10.0-28-amd64", "libc6": None,
                             "unrelated": "1.0"})
    assert found == (
        Shortfall("openssl", "outdated", "3.0.11-1", "3.1", True),
        Shortfall("kernel", "below_minimum", "5.10.0-28-amd64", "6.1", True),
        Shortfall("libc6", "absent", None, "2.36", False),
    )  # pcscd is not in the mapping: another source's business, not judged here


def test_baseline_validates_itself() -> None:
    with pytest.raises(ValueError, match=r"minimum\.openssl: .*must start with a digit"):
        Baseline(minimum={"openssl": "x"})


def test_unreadable_status_file_names_the_cause(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from posdiag.drivers.dpkg import status as status_mod

    def refuse(*_args: object) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(status_mod, "read_regular", refuse)
    r = run_check(SPEC, rootfs=variant(tmp_path), procfs=PROCFS, minimum={"libc6": "2.36"})
    assert (r.status, r.reason) == (Status.UNKNOWN, "package_db_unreadable")
    assert r.summary.startswith("cannot read /var/lib/dpkg/status: permission denied")
