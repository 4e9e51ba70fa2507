"""Network check: is there an uplink with a link, an address, a default route and DNS servers?

Findings follow the chain a technician walks: adapter → link → address → default route → DNS →
Wi-Fi signal. A missing link explains everything after it, so the chain stops at the first broken
link of the physical layer (no interface, no link, no address); the default route, the DNS
configuration and the Wi-Fi signal are independent of each other and are all reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, between, rule
from posdiag.drivers.procfs.net_addr import (
    Inet4Address,
    Inet6Address,
    read_ipv4_addresses,
    read_ipv6_addresses,
)
from posdiag.drivers.procfs.net_route import (
    Route4,
    Route6,
    best_default,
    read_ipv6_routes,
    read_routes,
)
from posdiag.drivers.procfs.net_wireless import WirelessStats, read_wireless
from posdiag.drivers.resolv_conf import ResolverConfig, read_resolver
from posdiag.drivers.sysfs.net import NetInterface, read_interfaces
from posdiag.results import CheckResult, Verdict
from posdiag.summary import Summary

DEFAULT_IGNORE = ("lo", "docker*", "veth*", "br-*", "virbr*")


def _names(v: tuple[str, ...]) -> str | None:
    bad = [n for n in v if not n or "/" in n or len(n) > 64]
    return f"not interface names or patterns: {bad!r}" if bad else None


def _iface_name(v: str) -> str | None:
    # Linux names: at most 15 bytes (IFNAMSIZ - 1), no '/' and no white space.
    if v == "" or (len(v.encode()) <= 15 and "/" not in v and not any(c.isspace() for c in v)):
        return None
    return f"{v!r} is not an interface name"


@dataclass(frozen=True)
class NetworkConfig(CheckConfig):
    # Interfaces to consider (names or globs such as "eth*"); empty: every hardware-backed one
    # (plus ppp/wwan modems) not matched by ``ignore``. Listed names win over ``ignore``.
    interfaces: tuple[str, ...] = rule(_names, ())
    ignore: tuple[str, ...] = rule(_names, DEFAULT_IGNORE)
    # This interface must have a link and an address (e.g. the cable the acquirer whitelists);
    # empty: any one of the interfaces is enough.
    require_interface: str = rule(_iface_name, "")
    wifi_warn_dbm: int = rule(between(-120, -1), -70)
    wifi_fail_dbm: int = rule(between(-120, -1), -85)

    def validate(self) -> Iterable[tuple[str, str]]:
        if self.wifi_fail_dbm >= self.wifi_warn_dbm:
            yield ("wifi_fail_dbm", f"must be below wifi_warn_dbm ({self.wifi_warn_dbm}), "
                                    f"not {self.wifi_fail_dbm}")


def _metric_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return key if key[:1].isalpha() else f"if_{key}"


def _select(ifaces: Sequence[NetInterface], cfg: NetworkConfig) -> list[NetInterface]:
    def listed(i: NetInterface, patterns: Iterable[str]) -> bool:
        return any(fnmatchcase(i.name, p) for p in patterns)

    if cfg.interfaces:
        chosen = [i for i in ifaces if listed(i, cfg.interfaces)]
    else:
        # No ``device`` link means software-made (bridge, veth, tun, dummy); ppp is the exception
        # that matters on terminals: a dial-up or cellular modem link.
        chosen = [i for i in ifaces if not i.is_loopback and not listed(i, cfg.ignore)
                  and (i.has_device or i.kind in ("ppp", "wwan"))]
    if cfg.require_interface and all(i.name != cfg.require_interface for i in chosen):
        chosen += [i for i in ifaces if i.name == cfg.require_interface]
    return chosen


def _link_problem(i: NetInterface) -> Summary:
    if i.admin_up is False:
        return Summary("network.admin_down", iface=i.name)
    if i.operstate == "dormant":
        return Summary("network.dormant", iface=i.name)
    if i.kind == "wifi":
        return Summary("network.wifi_not_connected", iface=i.name)
    if i.kind == "ethernet":
        return Summary("network.no_carrier", iface=i.name)
    return Summary("network.no_link", iface=i.name, state=i.operstate or "?")


def _link_hints(ifaces: Iterable[NetInterface]) -> list[str]:
    by_kind = {"ethernet": "network.check_cable", "wifi": "network.check_wifi",
               "wwan": "network.check_cellular", "ppp": "network.check_cellular"}
    hints = [by_kind.get(i.kind, "network.check_cable") for i in ifaces]
    if any(i.admin_up is False for i in ifaces):
        hints.append("network.enable_interface")
    return hints


@dataclass(frozen=True)
class _Addresses:
    v4: dict[str, list[Inet4Address]]
    v6: dict[str, list[Inet6Address]]

    def global_on(self, name: str) -> list[str]:
        return ([str(a.address) for a in self.v4.get(name, []) if a.is_global]
                + [str(a.address) for a in self.v6.get(name, []) if a.is_global])

    def link_local_v4(self, name: str) -> list[str]:
        return [str(a.address) for a in self.v4.get(name, []) if a.is_link_local]


def _addresses(v4: Iterable[Inet4Address], v6: Iterable[Inet6Address],
               default_iface: str | None) -> _Addresses:
    by4: dict[str, list[Inet4Address]] = {}
    for a in v4:
        # An address no on-link prefix covers (a point-to-point /32 on ppp0, a noprefixroute
        # address) most likely belongs to the interface that carries the default route.
        owner = a.iface or default_iface
        if owner is not None:
            by4.setdefault(owner, []).append(a)
    by6: dict[str, list[Inet6Address]] = {}
    for b in v6:
        by6.setdefault(b.iface, []).append(b)
    return _Addresses(by4, by6)


def _first_v4(addrs: _Addresses, name: str) -> str | None:
    found = addrs.v4.get(name, [])
    best = [a for a in found if a.is_global] or [a for a in found if a.is_link_local]
    return str(best[0].address) if best else None


def _first_v6(addrs: _Addresses, name: str) -> str | None:
    best = [a for a in addrs.v6.get(name, []) if a.is_global]
    return str(best[0].address) if best else None


def _gateway(r: Route4 | Route6 | None) -> str | None:
    if r is None or not r.via_gateway:
        return None
    return str(r.gateway if isinstance(r, Route4) else r.next_hop)


def _servers(res: ResolverConfig) -> str:
    return ", ".join(str(s) for s in res.servers)


def _wifi_in_use(up: Sequence[NetInterface], required: NetInterface | None,
                 default_iface: str | None) -> NetInterface | None:
    """The Wi-Fi interface whose signal matters: the required one, the one carrying the default
    route or, with no default route, any connected one."""
    wifi = [i for i in up if i.is_wireless]
    if required is not None:
        return required if required.is_wireless and required.link_up else None
    if default_iface is not None:
        return next((i for i in wifi if i.name == default_iface), None)
    return wifi[0] if wifi else None


def run(ctx: CheckContext, cfg: NetworkConfig) -> CheckResult:
    v = Verdict(ctx.name)
    roots = ctx.roots
    all_ifaces = read_interfaces(roots.sysfs)
    selected = _select(all_ifaces, cfg)
    required = next((i for i in selected if i.name == cfg.require_interface), None)
    v.metric("interfaces_total", len(selected))

    if cfg.require_interface and required is None:
        v.metric("interfaces_up", 0)
        v.fail("no_interface", Summary("network.required_missing", iface=cfg.require_interface,
                                       found=tuple(i.name for i in all_ifaces) or "-"),
               "network.check_adapter")
        return v.result(Summary("network.failed"))
    if not selected:
        v.metric("interfaces_up", 0)
        others = [i.name for i in all_ifaces if not i.is_loopback]
        detail = (Summary("network.only_virtual", names=tuple(others)) if others
                  else Summary("network.none_at_all"))
        v.fail("no_interface", Summary("network.no_adapter", detail=detail),
               "network.check_adapter")
        return v.result(Summary("network.failed"))

    up = [i for i in selected if i.link_up]
    v.metric("interfaces_up", len(up))

    # Routes through an interface without a link are dead even if the kernel still lists them.
    dead = {i.name for i in all_ifaces if not i.link_up}
    routes4 = read_routes(roots.procfs)
    routes6 = read_ipv6_routes(roots.procfs)
    r4 = best_default(r for r in routes4 if r.iface not in dead)
    r6 = best_default(r for r in routes6 if r.iface not in dead)
    default_iface = r4.iface if r4 else (r6.iface if r6 else None)
    addrs = _addresses(read_ipv4_addresses(roots.procfs), read_ipv6_addresses(roots.procfs),
                       default_iface)
    res = read_resolver(roots.rootfs)
    wifi_stats = {s.iface: s for s in read_wireless(roots.procfs)}

    for i in selected:
        k = _metric_key(i.name)
        v.metric(f"{k}_carrier", i.carrier)
        v.metric(f"{k}_operstate", i.operstate)
        v.metric(f"{k}_ipv4", _first_v4(addrs, i.name))
        v.metric(f"{k}_ipv6", _first_v6(addrs, i.name))
        if i.kind == "ethernet":
            v.metric(f"{k}_speed_mbps", i.speed_mbps)
    v.metric("default_route_iface", default_iface)
    v.metric("gateway", _gateway(r4))
    v.metric("gateway_ipv6", _gateway(r6))
    v.metric("dns_servers_count", len(res.servers))
    v.metric("dns_servers", _servers(res) or None)
    v.metric("dns_systemd_resolved", res.stub)
    wifi = _wifi_in_use(up, required, default_iface)
    stats = wifi_stats.get(wifi.name) if wifi else None
    if stats is None:  # not in use: still show a connected Wi-Fi's signal
        stats = next((wifi_stats[i.name] for i in up if i.name in wifi_stats), None)
    v.metric("wifi_iface", stats.iface if stats else None)
    v.metric("wifi_signal_dbm", stats.level_dbm if stats else None)
    v.metric("wifi_link_quality", stats.link_quality if stats else None)

    # 1. link
    if required is not None and not required.link_up:
        v.fail("link_down", _link_problem(required), *_link_hints([required]))
        return v.result(Summary("network.failed"))
    if not up:
        v.fail("link_down", Summary("network.links", clauses=tuple(_link_problem(i)
                                                                   for i in selected)),
               *_link_hints(selected))
        return v.result(Summary("network.failed"))

    # 2. address
    users = [required] if required is not None else up
    with_address = [i for i in users if addrs.global_on(i.name)]
    if not with_address:
        self_assigned = [(i.name, a) for i in users for a in addrs.link_local_v4(i.name)]
        if self_assigned:
            name, a = self_assigned[0]
            v.fail("no_address", Summary("network.self_assigned", iface=name, address=a),
                   "network.check_dhcp")
        else:
            names = tuple(i.name for i in users)
            v.fail("no_address", Summary("network.no_ip_one" if len(users) == 1
                                         else "network.no_ip_many", names=names),
                   "network.check_dhcp", "network.check_ip_settings")
        return v.result(Summary("network.failed"))

    # 3. default route
    if r4 is None and r6 is None:
        stale = best_default(r for r in (*routes4, *routes6) if r.iface in dead)
        if stale is not None:
            why = Summary("network.stale_route", iface=stale.iface)
        else:
            why = Summary("network.no_gateway")
        v.fail("no_default_route", Summary("network.no_default_route", why=why),
               "network.check_gateway")

    # 4. DNS
    if not res.present:
        v.fail("no_dns_servers", Summary("network.no_dns", why=Summary("network.no_resolv")),
               "network.check_dns_settings")
    elif not res.servers:
        where = Summary("network.resolved_empty" if res.stub else "network.resolv_empty")
        v.fail("no_dns_servers", Summary("network.no_dns", why=where),
               "network.check_dns_settings")

    # 5. Wi-Fi signal of the Wi-Fi that carries the traffic
    in_use = wifi_stats.get(wifi.name) if wifi else None
    if in_use is not None and in_use.level_dbm is not None:
        level = in_use.level_dbm
        if level <= cfg.wifi_fail_dbm:
            v.fail("weak_wifi_signal", Summary("network.wifi_fail", iface=in_use.iface,
                                               dbm=level, limit=cfg.wifi_fail_dbm),
                   "network.improve_wifi_signal")
        elif level <= cfg.wifi_warn_dbm:
            v.warn("weak_wifi_signal", Summary("network.wifi_warn", iface=in_use.iface,
                                               dbm=level, limit=cfg.wifi_warn_dbm),
                   "network.improve_wifi_signal")

    return v.result(_ok_summary(with_address, addrs, r4, r6, res, in_use))


def _ok_summary(with_address: Sequence[NetInterface], addrs: _Addresses, r4: Route4 | None,
                r6: Route6 | None, res: ResolverConfig, wifi: WirelessStats | None) -> Summary:
    parts = []
    for i in with_address:
        address = addrs.global_on(i.name)[0]
        parts.append(Summary("network.addr_speed", iface=i.name, address=address,
                             speed=i.speed_mbps) if i.speed_mbps
                     else Summary("network.addr", iface=i.name, address=address))
    route = r4 or r6
    if route is not None:
        gw = _gateway(route)
        parts.append(Summary("network.via_gateway", gateway=gw, iface=route.iface) if gw
                     else Summary("network.via_iface", iface=route.iface))
    parts.append(Summary("network.dns", servers=_servers(res)))
    if wifi is not None and wifi.level_dbm is not None:
        parts.append(Summary("network.wifi_level", dbm=wifi.level_dbm))
    return Summary("network.ok", clauses=tuple(parts))


SPEC = CheckSpec("network", run, NetworkConfig, timeout_s=5.0)
