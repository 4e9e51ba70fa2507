"""The dpkg package database and Debian version ordering."""

from __future__ import annotations

from posdiag.drivers.dpkg.status import (
    DpkgStatus,
    Package,
    PackageState,
    parse_status,
    read_status,
    valid_package_name,
)
from posdiag.drivers.dpkg.version import DebianVersion, compare, compare_part

__all__ = [
    "DebianVersion",
    "DpkgStatus",
    "Package",
    "PackageState",
    "compare",
    "compare_part",
    "parse_status",
    "read_status",
    "valid_package_name",
]
