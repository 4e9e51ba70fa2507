"""DNS resolver configuration: ``nameserver`` lines of ``/etc/resolv.conf`` (resolv.conf(5)).

When the only server is systemd-resolved's stub listener (127.0.0.53 / 127.0.0.54), the servers
that actually answer are the upstream ones systemd-resolved writes to
``/run/systemd/resolve/resolv.conf``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

RESOLV_CONF = "etc/resolv.conf"
RESOLVED_UPSTREAM = "run/systemd/resolve/resolv.conf"
RESOLVED_STUBS = frozenset({ipaddress.ip_address("127.0.0.53"), ipaddress.ip_address("127.0.0.54")})

Nameserver = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ResolverConfig:
    """``servers`` are the ones queries reach; ``stub`` tells whether systemd-resolved sits between.

    ``upstream_known`` is False when the stub is configured but its upstream file is missing.
    """

    servers: tuple[Nameserver, ...]
    configured: tuple[Nameserver, ...]  # as listed in /etc/resolv.conf
    stub: bool = False
    upstream_known: bool = True
    present: bool = True  # /etc/resolv.conf exists and is readable


def parse_nameservers(text: str) -> tuple[Nameserver, ...]:
    """``nameserver <ip>`` lines, in order, duplicates dropped; a zone index (%eth0) is removed."""
    out: dict[Nameserver, None] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 2 or f[0] != "nameserver":
            continue  # comments (#, ;), search, options, garbage
        try:
            out[ipaddress.ip_address(f[1].split("%", 1)[0])] = None
        except ValueError:
            continue
    return tuple(out)


def _text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def read_resolver(rootfs: Path) -> ResolverConfig:
    text = _text(rootfs / RESOLV_CONF)
    if text is None:
        return ResolverConfig((), (), present=False)
    configured = parse_nameservers(text)
    if not configured or not set(configured) <= RESOLVED_STUBS:
        return ResolverConfig(configured, configured)
    upstream = _text(rootfs / RESOLVED_UPSTREAM)
    if upstream is None:
        return ResolverConfig(configured, configured, stub=True, upstream_known=False)
    servers = tuple(s for s in parse_nameservers(upstream) if s not in RESOLVED_STUBS)
    return ResolverConfig(servers, configured, stub=True)
