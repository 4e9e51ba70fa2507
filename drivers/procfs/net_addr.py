"""Interface addresses from procfs alone: IPv4 from ``/proc/net/fib_trie``, IPv6 from
``/proc/net/if_inet6``.

procfs has no file that lists IPv4 addresses per interface, but the FIB trie lists every local
address as a ``/32 host LOCAL`` leaf, and ``/proc/net/route`` names the interface of each on-link
prefix; the longest on-link prefix that contains an address tells its interface. An address no
prefix route covers (a /32 on a point-to-point link, a ``noprefixroute`` address) keeps
``iface=None``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from posdiag.drivers.procfs.net_route import RTF_GATEWAY, Route4, read_routes

# <linux/if_addr.h> IFA_F_* flags that make an IPv6 address unusable for now
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40

# scope values in if_inet6 (IPV6_ADDR_* >> 16 as the kernel prints them)
SCOPE_GLOBAL = 0x00
SCOPE_HOST = 0x10
SCOPE_LINK = 0x20


@dataclass(frozen=True)
class Inet4Address:
    address: ipaddress.IPv4Address
    iface: str | None = None
    prefixlen: int | None = None

    def __post_init__(self) -> None:
        if self.prefixlen is not None and not 0 <= self.prefixlen <= 32:
            raise ValueError(f"bad IPv4 prefix length {self.prefixlen}")

    @property
    def is_link_local(self) -> bool:
        return self.address.is_link_local  # 169.254.0.0/16: no DHCP answer (RFC 3927)

    @property
    def is_global(self) -> bool:
        """Usable to reach another host: neither loopback nor link-local nor unspecified."""
        a = self.address
        return not (a.is_loopback or a.is_link_local or a.is_unspecified or a.is_multicast)


@dataclass(frozen=True)
class Inet6Address:
    address: ipaddress.IPv6Address
    iface: str
    prefixlen: int
    scope: int
    flags: int

    def __post_init__(self) -> None:
        if not 0 <= self.prefixlen <= 128:
            raise ValueError(f"bad IPv6 prefix length {self.prefixlen}")
        if not self.iface:
            raise ValueError("address without an interface")

    @property
    def is_link_local(self) -> bool:
        return self.address.is_link_local or self.scope == SCOPE_LINK

    @property
    def usable(self) -> bool:
        return not self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)

    @property
    def is_global(self) -> bool:
        """Global or unique-local, past duplicate address detection."""
        a = self.address
        return (self.usable and not self.is_link_local and self.scope != SCOPE_HOST
                and not (a.is_loopback or a.is_unspecified or a.is_multicast))


def parse_fib_trie(text: str) -> tuple[ipaddress.IPv4Address, ...]:
    """The local addresses in a ``fib_trie`` dump (``/32 host LOCAL`` leaves), in first-seen order.

    A leaf line is ``|-- <address>``; the lines below it start with ``/<plen> <scope> <type>``.
    The Main and Local tables repeat the same leaves on current kernels; duplicates are dropped.
    """
    seen: dict[ipaddress.IPv4Address, None] = {}
    leaf: ipaddress.IPv4Address | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|--"):
            try:
                leaf = ipaddress.IPv4Address(s[3:].strip())
            except ValueError:
                leaf = None
        elif s.startswith("/") and leaf is not None:
            f = s.split()
            if len(f) >= 3 and f[0] == "/32" and f[2] == "LOCAL":
                seen[leaf] = None
        elif s.startswith("+--") or s.endswith(":"):
            leaf = None
    return tuple(seen)


def assign_interfaces(addresses: Iterable[ipaddress.IPv4Address],
                      routes: Iterable[Route4]) -> tuple[Inet4Address, ...]:
    """Attach each address to the interface of the longest on-link prefix route holding it."""
    prefixes = [(r.network, r.iface) for r in routes
                if r.usable and not r.flags & RTF_GATEWAY and r.network.prefixlen > 0]
    out: list[Inet4Address] = []
    for a in addresses:
        best: tuple[ipaddress.IPv4Network, str] | None = None
        for net, iface in prefixes:
            if a in net and (best is None or net.prefixlen > best[0].prefixlen):
                best = (net, iface)
        if a.is_loopback:
            out.append(Inet4Address(a, "lo", 8))
        elif best is None:
            out.append(Inet4Address(a))
        else:
            out.append(Inet4Address(a, best[1], best[0].prefixlen))
    return tuple(out)


def parse_if_inet6(text: str) -> tuple[Inet6Address, ...]:
    """Parse ``/proc/net/if_inet6``: address ifindex plen scope flags name (all hex but name)."""
    out: list[Inet6Address] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) != 6 or len(f[0]) != 32:
            continue
        try:
            out.append(Inet6Address(
                address=ipaddress.IPv6Address(int(f[0], 16)),
                iface=f[5],
                prefixlen=int(f[2], 16),
                scope=int(f[3], 16),
                flags=int(f[4], 16),
            ))
        except ValueError:
            continue
    return tuple(out)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii", "replace")
    except OSError:
        return ""


def read_ipv4_addresses(procfs: Path) -> tuple[Inet4Address, ...]:
    local = parse_fib_trie(_read(procfs / "net" / "fib_trie"))
    return assign_interfaces(local, read_routes(procfs))


def read_ipv6_addresses(procfs: Path) -> tuple[Inet6Address, ...]:
    return parse_if_inet6(_read(procfs / "net" / "if_inet6"))
