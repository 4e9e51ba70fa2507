"""Routing tables: ``/proc/net/route`` (IPv4 main table) and ``/proc/net/ipv6_route``.

``/proc/net/route`` prints each ``__be32`` address as a hex number in host byte order, so on the
little-endian CPUs terminals use, ``0101A8C0`` is 192.168.1.1. Lines that do not parse are skipped.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

# <linux/route.h>
RTF_UP = 0x0001
RTF_GATEWAY = 0x0002
RTF_HOST = 0x0004
RTF_REJECT = 0x0200

ByteOrder = Literal["little", "big"]
_HOST_ORDER: ByteOrder = "little" if sys.byteorder == "little" else "big"


@dataclass(frozen=True)
class Route4:
    iface: str
    destination: ipaddress.IPv4Address
    gateway: ipaddress.IPv4Address
    mask: ipaddress.IPv4Address
    flags: int
    metric: int

    def __post_init__(self) -> None:
        if not self.iface:
            raise ValueError("route without an interface")
        if self.metric < 0 or self.flags < 0:
            raise ValueError("negative metric or flags")

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The destination as a network; a non-contiguous mask gives the host route."""
        try:
            return ipaddress.IPv4Network(f"{self.destination}/{self.mask}", strict=False)
        except ValueError:
            return ipaddress.IPv4Network(f"{self.destination}/32")

    @property
    def usable(self) -> bool:
        return bool(self.flags & RTF_UP) and not self.flags & RTF_REJECT

    @property
    def is_default(self) -> bool:
        return self.usable and int(self.destination) == 0 and int(self.mask) == 0

    @property
    def via_gateway(self) -> bool:
        return bool(self.flags & RTF_GATEWAY) and int(self.gateway) != 0


@dataclass(frozen=True)
class Route6:
    iface: str
    destination: ipaddress.IPv6Network
    next_hop: ipaddress.IPv6Address
    metric: int
    flags: int

    def __post_init__(self) -> None:
        if not self.iface:
            raise ValueError("route without an interface")

    @property
    def is_default(self) -> bool:
        # The kernel lists an unreachable ::/0 (RTF_REJECT) on lo when there is no real default.
        return (self.destination.prefixlen == 0 and bool(self.flags & RTF_UP)
                and not self.flags & RTF_REJECT and self.iface != "lo")

    @property
    def via_gateway(self) -> bool:
        return bool(self.flags & RTF_GATEWAY) and int(self.next_hop) != 0


R = TypeVar("R", Route4, Route6)


def _be32(field: str, order: ByteOrder) -> ipaddress.IPv4Address:
    if len(field) != 8:
        raise ValueError(field)
    return ipaddress.IPv4Address(int(field, 16).to_bytes(4, order))


def parse_route(text: str, byteorder: ByteOrder = _HOST_ORDER) -> tuple[Route4, ...]:
    """Parse ``/proc/net/route``; the header and lines that do not parse are skipped."""
    routes: list[Route4] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8 or f[0] == "Iface":
            continue
        try:
            routes.append(Route4(
                iface=f[0],
                destination=_be32(f[1], byteorder),
                gateway=_be32(f[2], byteorder),
                flags=int(f[3], 16),
                metric=int(f[6]),
                mask=_be32(f[7], byteorder),
            ))
        except ValueError:
            continue
    return tuple(routes)


def _hex128(field: str) -> ipaddress.IPv6Address:
    if len(field) != 32:
        raise ValueError(field)
    return ipaddress.IPv6Address(int(field, 16))


def parse_ipv6_route(text: str) -> tuple[Route6, ...]:
    """Parse ``/proc/net/ipv6_route``: dest plen src plen next-hop metric refcnt use flags iface."""
    routes: list[Route6] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) != 10:
            continue
        try:
            plen = int(f[1], 16)
            routes.append(Route6(
                iface=f[9],
                destination=ipaddress.IPv6Network((_hex128(f[0]), plen), strict=False),
                next_hop=_hex128(f[4]),
                metric=int(f[5], 16),
                flags=int(f[8], 16),
            ))
        except ValueError:
            continue
    return tuple(routes)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii", "replace")
    except OSError:
        return ""


def read_routes(procfs: Path) -> tuple[Route4, ...]:
    return parse_route(_read(procfs / "net" / "route"))


def read_ipv6_routes(procfs: Path) -> tuple[Route6, ...]:
    return parse_ipv6_route(_read(procfs / "net" / "ipv6_route"))


def best_default(routes: Iterable[R]) -> R | None:
    """The default route the kernel would pick: lowest metric, first listed on a tie."""
    best: R | None = None
    for r in routes:
        if r.is_default and (best is None or r.metric < best.metric):
            best = r
    return best
