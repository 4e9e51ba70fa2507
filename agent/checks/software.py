"""Software: OS release, kernel, Python, agent and Debian package versions against a baseline.

The baseline names components and versions: ``[checks.software.minimum]`` (below → fail
``below_minimum``) and ``[checks.software.recommended]`` (below → warn ``outdated``). A component is
a Debian package (``openssl``, ``libc6:i386``) or one of the pseudo-components ``kernel`` (the
running kernel release), ``os`` (os-release VERSION_ID) and ``posdiag`` (this agent).

``Baseline.assess`` works on any ``Mapping[str, str | None]`` of component → version, so another
source (reader firmware collected by the device checks) is assessed by the same rules: give its
components a ``VersionScheme`` in ``COMPONENT_SCHEMES`` and pass its versions in.

Without a dpkg database (an image without dpkg, or a broken one) OS, kernel, Python and agent are
still reported; the package part is ``unknown`` when the baseline names a package (it cannot be
verified) and ``warn`` otherwise (set ``packages = []`` on images without dpkg).
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from posdiag import __version__
from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.config import CheckConfig, rule
from posdiag.drivers.dpkg import DebianVersion, DpkgStatus, compare_part, read_status
from posdiag.drivers.dpkg.status import STATUS_PATH, valid_package_name
from posdiag.drivers.errors import DriverError
from posdiag.drivers.osinfo import read_kernel_release, read_os_release
from posdiag.results import CheckResult, Verdict
from posdiag.summary import Summary

DEFAULT_PACKAGES = ("openssl", "libc6", "ca-certificates", "tzdata")

_ARCH = re.compile(r"[a-z0-9][a-z0-9-]*")
_KERNEL_RELEASE = re.compile(r"[0-9][A-Za-z0-9.+~_-]{0,127}")


# --------------------------------------------------------------------------------------------
# Version schemes: how one kind of component's versions are validated and ordered
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionScheme:
    name: str
    problem: Callable[[str], str | None]  # why a text is no version of this scheme, or None
    compare: Callable[[str, str], int]  # -1, 0, 1; only called with texts that have no problem


def _debian_problem(text: str) -> str | None:
    try:
        DebianVersion.parse(text)
    except ValueError as e:
        return str(e)
    return None


def _debian_compare(a: str, b: str) -> int:
    return DebianVersion.parse(a).compare(DebianVersion.parse(b))


def _kernel_problem(text: str) -> str | None:
    if _KERNEL_RELEASE.fullmatch(text):
        return None
    return (f"{text!r} is not a kernel release (like 6.1.0-18-amd64: starts with a digit; "
            "letters, digits and . + ~ _ -)")


DEBIAN = VersionScheme("Debian version", _debian_problem, _debian_compare)
# A kernel release is ordered as one string: splitting "6.1.0-18-amd64" at its last hyphen as a
# Debian revision would rank it above 6.1.0-20.
KERNEL_RELEASE = VersionScheme("kernel release", _kernel_problem, compare_part)

COMPONENT_SCHEMES: Mapping[str, VersionScheme] = {
    "kernel": KERNEL_RELEASE,
    "os": DEBIAN,
    "posdiag": DEBIAN,
}
PSEUDO_COMPONENTS = frozenset(COMPONENT_SCHEMES)


def scheme_for(component: str) -> VersionScheme:
    """Debian ordering unless the component has its own scheme."""
    return COMPONENT_SCHEMES.get(component, DEBIAN)


def valid_package_query(text: str) -> bool:
    """``name`` or ``name:arch``, as dpkg-query accepts them."""
    name, colon, arch = text.partition(":")
    return valid_package_name(name) and (not colon or bool(_ARCH.fullmatch(arch)))


# --------------------------------------------------------------------------------------------
# Baseline
# --------------------------------------------------------------------------------------------
Kind = Literal["below_minimum", "outdated", "absent", "unparseable"]


@dataclass(frozen=True)
class Shortfall:
    """One component that does not meet the baseline."""

    component: str
    kind: Kind
    found: str | None  # the version found; None when the component is absent
    wanted: str  # the minimum it falls short of, else the recommended version
    required: bool  # it has a minimum (absent or unparseable is then serious)


def baseline_problems(minimum: Mapping[str, str],
                      recommended: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(key, problem) for every bad component name or version; keys like ``minimum.openssl``."""
    for table, entries in (("minimum", minimum), ("recommended", recommended)):
        for component, version in entries.items():
            key = f"{table}.{component}"
            if component not in COMPONENT_SCHEMES and not valid_package_query(component):
                pseudo = ", ".join(sorted(COMPONENT_SCHEMES))
                yield key, (f"{component!r} is neither a Debian package name (name or name:arch) "
                            f"nor one of {pseudo}")
                continue
            scheme = scheme_for(component)
            problem = scheme.problem(version)
            if problem:
                yield key, problem
    for component, version in recommended.items():
        low = minimum.get(component)
        scheme = scheme_for(component)
        if (low is not None and not scheme.problem(low) and not scheme.problem(version)
                and scheme.compare(version, low) < 0):
            yield (f"recommended.{component}",
                   f"{version} is below minimum.{component} ({low}); "
                   "a recommended version must be at least the minimum")


@dataclass(frozen=True)
class Baseline:
    minimum: Mapping[str, str] = field(default_factory=dict)
    recommended: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, problem in baseline_problems(self.minimum, self.recommended):
            raise ValueError(f"{key}: {problem}")

    def __contains__(self, component: object) -> bool:
        return component in self.minimum or component in self.recommended

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.minimum, *self.recommended]))

    def assess(self, versions: Mapping[str, str | None]) -> tuple[Shortfall, ...]:
        """Shortfalls of the components in ``versions`` (None: absent) that the baseline names.

        Components the baseline names but ``versions`` lacks belong to another source and are
        not judged here.
        """
        out: list[Shortfall] = []
        for component in self.components:
            if component not in versions:
                continue
            found = versions[component]
            low = self.minimum.get(component)
            rec = self.recommended.get(component)
            wanted = low if low is not None else rec
            if wanted is None:
                continue
            required = low is not None
            scheme = scheme_for(component)
            if found is None:
                out.append(Shortfall(component, "absent", None, wanted, required))
            elif scheme.problem(found):
                out.append(Shortfall(component, "unparseable", found, wanted, required))
            elif low is not None and scheme.compare(found, low) < 0:
                out.append(Shortfall(component, "below_minimum", found, low, True))
            elif rec is not None and scheme.compare(found, rec) < 0:
                out.append(Shortfall(component, "outdated", found, rec, required))
        return tuple(out)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
def _package_list(names: tuple[str, ...]) -> str | None:
    bad = [n for n in names if not valid_package_query(n)]
    if bad:
        return (f"{bad[0]!r} is not a Debian package name (lower-case letters, digits, + - .; "
                "optionally :arch)")
    return None


@dataclass(frozen=True)
class SoftwareConfig(CheckConfig):
    packages: tuple[str, ...] = rule(_package_list, DEFAULT_PACKAGES)
    minimum: Mapping[str, str] = field(default_factory=dict)
    recommended: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> Iterable[tuple[str, str]]:
        return baseline_problems(self.minimum, self.recommended)

    @property
    def baseline(self) -> Baseline:
        return Baseline(self.minimum, self.recommended)

    @property
    def package_queries(self) -> tuple[str, ...]:
        """The configured packages, then every package the baseline names."""
        named = [c for c in (*self.minimum, *self.recommended) if c not in PSEUDO_COMPONENTS]
        return tuple(dict.fromkeys([*self.packages, *named]))


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------
def metric_key(package: str) -> str:
    """``ca-certificates`` → ``pkg_ca_certificates_version`` (metric keys are snake_case)."""
    return "pkg_" + re.sub(r"[^a-z0-9]+", "_", package.lower()).strip("_") + "_version"


def _listing(items: list[str] | list[Summary], limit: int = 3) -> Summary:
    if len(items) > limit:
        return Summary("software.list_more", items=tuple(items[:limit]), more=len(items) - limit)
    return Summary("software.list", items=tuple(items))


def _lowest(versions: list[str]) -> str:
    """Of several installed architectures, the lowest version (the one a minimum binds)."""
    def order(a: str, b: str) -> int:
        try:
            return _debian_compare(a, b)
        except ValueError:
            return 0
    return min(versions, key=functools.cmp_to_key(order))


@dataclass(frozen=True)
class _Packages:
    versions: dict[str, str | None]  # query → installed version (None: not installed)
    states: dict[str, str]  # query → dpkg state, for packages that have a stanza but no install


def _installed(db: DpkgStatus, queries: tuple[str, ...]) -> _Packages:
    versions: dict[str, str | None] = {}
    states: dict[str, str] = {}
    for q in queries:
        found = [p.version for p in db.installed(q) if p.version is not None]
        versions[q] = _lowest(found) if found else None
        entries = db.entries(q)
        if not found and entries:
            states[q] = str(entries[0].state)
    return _Packages(versions, states)


def _package_db(v: Verdict, ctx: CheckContext, cfg: SoftwareConfig,
                queries: tuple[str, ...]) -> _Packages | None:
    """Read dpkg's database; on trouble add the finding and return None (versions unknown)."""
    path = "/" + STATUS_PATH
    db: DpkgStatus | None = None
    reason, trouble = "package_db_missing", Summary("software.no_db", path=path)
    try:
        db = read_status(ctx.roots.rootfs)
    except DriverError as e:
        reason, trouble = ("package_db_unreadable",
                           Summary("software.db_unreadable", path=path, detail=e.message))
    if db is not None and not db.packages:
        reason, trouble = "package_db_unreadable", Summary("software.db_empty", path=path)
    if db is None or not db.packages:
        v.metric("dpkg_installed_count", None)
        v.metric("dpkg_damaged_entries", None if db is None else db.damaged)
        for q in queries:
            v.metric(metric_key(q), None)
        needed = [q for q in queries if q in cfg.baseline]
        summary = Summary("software.versions_unknown", trouble=trouble,
                          packages=_listing(list(queries)))
        if needed:  # the baseline cannot be verified
            v.unknown(reason, summary, "software.repair_package_db")
        else:
            v.warn(reason, summary, "software.repair_package_db", "software.no_dpkg")
        return None
    v.metric("dpkg_installed_count", db.installed_count)
    v.metric("dpkg_damaged_entries", db.damaged)
    if db.damaged:
        v.warn("package_db_damaged",
               Summary("software.db_damaged_one" if db.damaged == 1 else "software.db_damaged",
                       path=path, count=db.damaged),
               "software.repair_package_db")
    found = _installed(db, queries)
    for q in queries:
        v.metric(metric_key(q), found.versions[q])
    return found


def _unknown_version(s: Shortfall) -> Summary:
    wanted = Summary("software.minimum" if s.required else "software.recommended",
                     version=s.wanted)
    if s.found:
        return Summary("software.unparseable", component=s.component, found=repr(s.found),
                       wanted=wanted)
    return Summary("software.component_note", component=s.component, note_clauses=(wanted,))


def _judge(v: Verdict, shortfalls: tuple[Shortfall, ...], unlisted_missing: list[str],
           packages: _Packages | None) -> None:
    """Turn shortfalls into findings, most serious and most fundamental first."""
    states = packages.states if packages else {}

    def missing(component: str, minimum: str | None = None) -> Summary:
        notes = [Summary("software.minimum", version=minimum)] if minimum else []
        if component in states:
            notes.append(Summary("software.dpkg_state", state=states[component]))
        if not notes:
            return Summary("software.component", component=component)
        return Summary("software.component_note", component=component, note_clauses=tuple(notes))

    def versions(items: list[Shortfall]) -> Summary:
        return _listing([Summary("software.lower", component=s.component, found=s.found or "?",
                                 wanted=s.wanted) for s in items])

    def pick(kind: Kind, required: bool | None = None, pseudo: bool | None = None
             ) -> list[Shortfall]:
        return [s for s in shortfalls if s.kind == kind
                and (required is None or s.required == required)
                and (pseudo is None or (s.component in PSEUDO_COMPONENTS) == pseudo)]

    below = pick("below_minimum")
    if below:
        hints = ["software.update"]
        if any(s.component == "kernel" for s in below):
            hints.append("software.reboot_for_kernel")
        v.fail("below_minimum", Summary("software.below_minimum", items=versions(below)),
               *hints)
    gone = pick("absent", required=True, pseudo=False)
    if gone:
        v.fail("package_missing", Summary("software.not_installed", items=_listing(
            [missing(s.component, s.wanted) for s in gone])), "software.install_package")
    for required in (True, False):
        unknown = [*pick("absent", required, pseudo=True), *pick("unparseable", required)]
        if unknown:
            summary = Summary("software.cannot_tell", items=_listing(
                [_unknown_version(s) for s in unknown]))
            if required:
                v.unknown("version_unknown", summary)
            else:
                v.warn("version_unknown", summary)
    optional = [missing(s.component) for s in pick("absent", required=False, pseudo=False)]
    optional += [missing(q) for q in unlisted_missing]
    if optional:
        v.warn("package_missing", Summary("software.not_installed", items=_listing(optional)),
               "software.install_package")
    old = pick("outdated")
    if old:
        hints = ["software.update"]
        if any(s.component == "kernel" for s in old):
            hints.append("software.reboot_for_kernel")
        v.warn("outdated", Summary("software.outdated", items=versions(old)), *hints)
    v.metric("below_minimum_count", len(below))
    v.metric("outdated_count", len(old))


def run(ctx: CheckContext, cfg: SoftwareConfig) -> CheckResult:
    v = Verdict(ctx.name)
    baseline = cfg.baseline
    versions: dict[str, str | None] = {}

    osr = read_os_release(ctx.roots.rootfs)
    v.metric("os_pretty_name", osr.pretty_name if osr else None)
    v.metric("os_id", osr.id if osr else None)
    v.metric("os_version_id", osr.version_id if osr else None)
    versions["os"] = osr.version_id if osr else None
    kernel = read_kernel_release(ctx.roots.procfs)
    v.metric("kernel_release", kernel)
    versions["kernel"] = kernel
    v.metric("python_version", platform.python_version())
    v.metric("agent_version", __version__)
    versions["posdiag"] = __version__

    queries = cfg.package_queries
    packages = _package_db(v, ctx, cfg, queries) if queries else None
    if packages is not None:
        versions.update(packages.versions)
    unlisted_missing = [q for q in queries if packages is not None
                        and packages.versions[q] is None and q not in baseline]
    _judge(v, baseline.assess(versions), unlisted_missing, packages)

    os_name = (osr.pretty_name if osr else None) or Summary("software.unknown_os")
    about = Summary("software.about", os=os_name, kernel=kernel or Summary("software.unknown"),
                    version=__version__)
    if queries and packages is not None:
        about = Summary("software.about_packages", about=about, count=len(queries))
    judged = [c for c in baseline.components if c in versions]
    verdict = (Summary("software.baseline_met", count=len(judged)) if judged
               else Summary("software.no_baseline"))
    return v.result(Summary("software.ok", about=about, verdict=verdict))


SPEC = CheckSpec("software", run, SoftwareConfig, timeout_s=10.0)
