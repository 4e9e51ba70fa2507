"""Builds a whole simulated terminal for one scenario folder, so ``diagnose`` runs against it.

A terminal is the healthy one (``hardware-fixtures/{sysfs,procfs,rootfs}/healthy-terminal``,
every device on a simulator, a payment host and a time source on loopback with certificates from
a test CA, a synchronised kernel clock) with one fault injected. ``scenario.toml`` says which:

    description = "…"                 what is wrong, in words
    trees = { procfs = "state-partition-readonly" }   hardware-fixtures trees copied over the
                                        healthy ones
    profile = "cellular-terminal"       a terminal model: tests/scenarios/profiles/<name>/ (its
                                        profile.toml lists paths to remove, its trees are copied)
    remove = ["sysfs/class/net/eth0"]   paths removed from the trees
    root = true                         needs root (nftables black hole, private network namespace)
    [devices.<check>]                   the device check's simulator: its constructor's keywords,
                                        or absent = true (the configured port does not exist)
    [host]   cert = good | expired | not_yet_valid | wrong_name | untrusted | expiring
             mode = tls | closed | silent | blackhole | nxdomain
    [clock]  kernel = synced | unsynced;  offset_s = seconds the time source is ahead;
             source = up | down
    [config]                            merged into the terminal's config (e.g. baselines)
    [expect] <symptom> = "<cause id>" | "no_fault"

and the folder's own ``sysfs/``, ``procfs/``, ``rootfs/`` subfolders are copied over the trees.
The checks run through the real registry and runner; only the clock check gets an injected
``adjtimex`` (the build machine's own clock state must not decide a scenario), by a registry
override here, not by a production config key.
"""

from __future__ import annotations

import functools
import os
import shutil
import tomllib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tlsfixtures import (
    CertificateAuthority,
    LocalServer,
    ServerCert,
    SynBlackHole,
    free_port,
    in_private_network,
    self_signed,
)

from posdiag import config as cfgmod
from posdiag.checks import REGISTRY, clock
from posdiag.checks.base import AnySpec
from posdiag.config import Config
from posdiag.diagnosis import Diagnosis, diagnose, load_catalogue
from posdiag.drivers.timex import STA_NANO, STA_PLL, STA_UNSYNC, TIME_ERROR, TIME_OK, Timex
from posdiag.paths import Roots
from simulators.escpos_printer import EscPosPrinterSimulator
from simulators.https_date import HttpsDateServer
from simulators.idtech_msr import IdTechMsrSimulator
from simulators.modem import ModemSimulator
from simulators.pn532 import Pn532Simulator
from simulators.pty_device import PtyDevice

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "hardware-fixtures"
PROFILES = HERE / "profiles"
TREES = ("sysfs", "procfs", "rootfs")
NO_FAULT = "no_fault"

# The terminal's baseline: what a fleet config for this model would pin.
MIN_READER_FIRMWARE = "2.3.0"  # the simulator's default reader reports 2.3.1
MIN_OPENSSL = "3.0.11-1~deb12u2"  # the healthy tree's openssl
SIMULATORS: Mapping[str, Callable[..., PtyDevice]] = {
    "card_reader": IdTechMsrSimulator,
    "contactless": Pn532Simulator,
    "printer": EscPosPrinterSimulator,
    "cellular": ModemSimulator,
}
# Short timeouts: a silent device or host must cost a fraction of a second, not the defaults.
DEVICE_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "card_reader": {"reply_timeout_s": 0.5, "min_firmware": MIN_READER_FIRMWARE},
    "contactless": {"ack_timeout_s": 0.3},
    "printer": {"transport": "serial", "reply_timeout_s": 0.5},
    "cellular": {"command_timeout_s": 0.5, "sim_timeout_s": 0.5},
}
HOST_TIMEOUT_S = 0.5
CERTS = ("good", "expired", "not_yet_valid", "wrong_name", "untrusted", "expiring")
HOST_MODES = ("tls", "closed", "silent", "blackhole", "nxdomain")
NXDOMAIN_HOST = "acquirer.invalid"
ALL_CHECKS = frozenset(s.name for s in REGISTRY)


class ScenarioError(ValueError):
    """A scenario.toml that asks for something the harness does not know."""


@dataclass(frozen=True)
class Scenario:
    name: str
    folder: Path
    description: str
    expect: Mapping[str, str]
    trees: Mapping[str, str] = field(default_factory=dict)
    profile: str = ""
    remove: tuple[str, ...] = ()
    root: bool = False
    devices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    host: Mapping[str, Any] = field(default_factory=dict)
    clock: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)


_KEYS = {"description", "expect", "trees", "profile", "remove", "root", "devices", "host",
         "clock", "config"}


def load_scenario(folder: Path) -> Scenario:
    data = tomllib.loads((folder / "scenario.toml").read_text("utf-8"))
    where = f"{folder.name}/scenario.toml"
    extra = set(data) - _KEYS
    if extra:
        raise ScenarioError(f"{where}: unknown keys {sorted(extra)}")
    if not data.get("description") or not data.get("expect"):
        raise ScenarioError(f"{where}: needs a description and an [expect] table")
    for tree in data.get("trees", {}):
        if tree not in TREES:
            raise ScenarioError(f"{where}: trees.{tree}: not one of {TREES}")
    for name in data.get("devices", {}):
        if name not in SIMULATORS:
            raise ScenarioError(f"{where}: devices.{name}: not a device check {tuple(SIMULATORS)}")
    host = data.get("host", {})
    if host.get("cert", "good") not in CERTS or host.get("mode", "tls") not in HOST_MODES:
        raise ScenarioError(f"{where}: [host] cert must be one of {CERTS}, mode one of "
                            f"{HOST_MODES}")
    clk = data.get("clock", {})
    if clk.get("kernel", "synced") not in ("synced", "unsynced") or \
            clk.get("source", "up") not in ("up", "down"):
        raise ScenarioError(f"{where}: [clock] kernel = synced|unsynced, source = up|down")
    if data.get("profile") and not (PROFILES / data["profile"] / "profile.toml").is_file():
        raise ScenarioError(f"{where}: no profile {data['profile']!r} in {PROFILES}")
    return Scenario(folder.name, folder, data["description"], dict(data["expect"]),
                    dict(data.get("trees", {})), data.get("profile", ""),
                    tuple(data.get("remove", ())), bool(data.get("root", False)),
                    dict(data.get("devices", {})), dict(host), dict(clk),
                    dict(data.get("config", {})))


def scenario_folders(base: Path = HERE) -> list[Path]:
    return sorted(p.parent for p in base.glob("*/scenario.toml"))


def load_all(base: Path = HERE) -> list[Scenario]:
    return [load_scenario(f) for f in scenario_folders(base)]


# --------------------------------------------------------------------------------------------
# Certificates (one CA for a whole run; key generation is the slow part)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca_file: Path
    certs: Mapping[str, ServerCert]
    files: Mapping[str, tuple[Path, Path]]  # name → (chain, key) written out


def make_pki(directory: Path) -> Pki:
    ca = CertificateAuthority("posdiag scenario CA")
    ca_file = ca.write(directory)
    ip = "127.0.0.1"
    issued = {
        "good": ca.issue(ip, "localhost"),
        "expired": ca.issue(ip, valid_from=timedelta(days=-400), valid_until=timedelta(days=-5)),
        "not_yet_valid": ca.issue(ip, valid_from=timedelta(days=5),
                                  valid_until=timedelta(days=400)),
        "wrong_name": ca.issue("pay.other-acquirer.example"),
        "untrusted": self_signed(ip),
        "expiring": ca.issue(ip, valid_until=timedelta(days=10)),
    }
    return Pki(ca_file, issued,
               {name: cert.write(directory, name) for name, cert in issued.items()})


# --------------------------------------------------------------------------------------------
# The kernel clock, injected
# --------------------------------------------------------------------------------------------
def fake_adjtimex(synced: bool) -> Callable[[Timex], int]:
    def call(buf: Timex) -> int:
        if synced:
            buf.status, buf.maxerror, buf.esterror, buf.offset = STA_PLL | STA_NANO, 8000, 250, 0
            return TIME_OK
        buf.status, buf.maxerror, buf.esterror = STA_UNSYNC, 16_000_000, 16_000_000
        return TIME_ERROR
    return call


def registry(synced: bool) -> tuple[AnySpec, ...]:
    """The production registry with the clock check's syscall replaced."""
    run = functools.partial(clock.run, adjtimex=fake_adjtimex(synced))
    return tuple(replace(s, run=run) if s.name == "clock" else s for s in REGISTRY)


# --------------------------------------------------------------------------------------------
# Building the terminal
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Terminal:
    scenario: Scenario
    specs: tuple[AnySpec, ...]
    config: Config
    roots: Roots

    def diagnose(self, symptom: str) -> Diagnosis:
        def run() -> Diagnosis:
            return diagnose(symptom, self.specs, self.config, self.roots)

        if self.scenario.host.get("mode") == "nxdomain":
            # The host's name really fails to resolve, inside a namespace where no packet leaves.
            return in_private_network(run)
        return run()


def _remove(into: Path, paths: tuple[str, ...], who: str) -> None:
    for rel in paths:
        target = into / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            raise ScenarioError(f"{who}: remove {rel!r}: not in the trees")


def _copy_over(src: Path, dst: Path) -> None:
    """Copy a tree onto another: files and symlinks replace what is there (copytree cannot
    replace a symlink such as procfs/mounts)."""
    for here, dirs, files in os.walk(src):
        rel = Path(here).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in [*files, *(d for d in dirs if (Path(here) / d).is_symlink())]:
            source, target = Path(here) / name, dst / rel / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            if source.is_symlink():
                target.symlink_to(os.readlink(source))
            else:
                shutil.copy2(source, target)


def _overlay(into: Path, folder: Path) -> None:
    for tree in TREES:
        if (folder / tree).is_dir():
            _copy_over(folder / tree, into / tree)


def build_trees(scn: Scenario, into: Path) -> Roots:
    """Healthy trees (with the named fixture trees copied over), then the profile (its
    removals, its files), then the scenario's."""
    for tree in TREES:
        shutil.copytree(FIXTURES / tree / "healthy-terminal", into / tree, symlinks=True)
        if tree in scn.trees:  # fixture trees model one fault and hold only what it touches
            _copy_over(FIXTURES / tree / scn.trees[tree], into / tree)
    if scn.profile:
        folder = PROFILES / scn.profile
        meta = tomllib.loads((folder / "profile.toml").read_text("utf-8"))
        _remove(into, tuple(meta.get("remove", ())), f"profile {scn.profile}")
        _overlay(into, folder)
    _remove(into, scn.remove, scn.name)
    _overlay(into, scn.folder)
    return Roots(into / "sysfs", into / "procfs", into / "rootfs")


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _host(scn: Scenario, pki: Pki, stack: ExitStack) -> dict[str, Any]:
    mode = scn.host.get("mode", "tls")
    target: dict[str, Any] = {"name": "acquirer", "host": "127.0.0.1",
                              "ca_file": str(pki.ca_file),
                              "connect_timeout_s": HOST_TIMEOUT_S}
    if mode == "tls":
        cert = pki.certs[scn.host.get("cert", "good")]
        target["port"] = stack.enter_context(LocalServer("tls", cert)).port
    elif mode == "silent":
        target["port"] = stack.enter_context(LocalServer("silent")).port
    elif mode == "closed":
        target["port"] = free_port()
    elif mode == "blackhole":
        target["port"] = stack.enter_context(SynBlackHole("127.0.0.1")).port
    else:  # nxdomain
        target.update(host=NXDOMAIN_HOST, port=443)
    return target


def _clock(scn: Scenario, pki: Pki, stack: ExitStack) -> dict[str, Any]:
    if scn.clock.get("source", "up") == "down":
        return {"skew_url": f"https://127.0.0.1:{free_port()}/", "ca_file": str(pki.ca_file)}
    chain, key = pki.files["good"]
    server = stack.enter_context(HttpsDateServer(chain, key,
                                                 offset_s=float(scn.clock.get("offset_s", 0))))
    return {"skew_url": server.url, "ca_file": str(pki.ca_file)}


def _devices(scn: Scenario, stack: ExitStack, tmp: Path, checks: Collection[str]
             ) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, make in SIMULATORS.items():
        if name not in checks:
            continue  # not run: no simulator to start and stop
        kwargs = dict(scn.devices.get(name, {}))
        cfg = {"required": True, **DEVICE_CONFIG[name]}
        if kwargs.pop("absent", False):
            cfg["port"] = str(tmp / "dev" / f"tty-{name}-unplugged")
        else:
            cfg["port"] = stack.enter_context(make(**kwargs)).port
        out[name] = cfg
    return out


@contextmanager
def terminal(scn: Scenario, tmp: Path, pki: Pki, checks: Collection[str] = ALL_CHECKS
             ) -> Iterator[Terminal]:
    """The scenario's terminal, with its servers and simulators running while inside.

    Only what ``checks`` use is started (a symptom runs a few checks; the rest of the terminal
    would only cost start-up and shut-down time).
    """
    roots = build_trees(scn, tmp / "trees")
    with ExitStack() as stack:
        tables: dict[str, Any] = {"software": {"minimum": {"openssl": MIN_OPENSSL}}}
        if "payment_host" in checks:
            tables["payment_host"] = {"targets": [_host(scn, pki, stack)],
                                      "dns_timeout_s": HOST_TIMEOUT_S,
                                      "tls_timeout_s": HOST_TIMEOUT_S}
        if "clock" in checks:
            tables["clock"] = _clock(scn, pki, stack)
        tables.update(_devices(scn, stack, tmp, checks))
        data: dict[str, Any] = {"terminal": {"id": f"T-{scn.name}"[:64]}, "checks": tables}
        _merge(data, scn.config)
        specs = registry(scn.clock.get("kernel", "synced") == "synced")
        config = cfgmod.build(data, {s.name: s.config_type for s in specs})
        yield Terminal(scn, specs, config, roots)


# --------------------------------------------------------------------------------------------
# Running cases
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    symptom: str
    diagnosis: Diagnosis
    terminal_id: str
    seconds: float

    @property
    def top(self) -> str:
        top = self.diagnosis.most_likely
        return top.id if top is not None else NO_FAULT

    @property
    def expected(self) -> str:
        return self.scenario.expect[self.symptom]


def run_case(scn: Scenario, symptom: str, pki: Pki, tmp: Path) -> Outcome:
    """Build the scenario's terminal for one symptom and diagnose it."""
    import time

    started = time.monotonic()
    checks = load_catalogue().symptoms[symptom].checks
    with terminal(scn, tmp, pki, checks) as term:
        d = term.diagnose(symptom)
    return Outcome(scn, symptom, d, term.config.terminal_id, time.monotonic() - started)


def run_cases(cases: Iterable[tuple[Scenario, str]], pki: Pki, tmp: Path, *,
              workers: int = 8) -> dict[tuple[str, str], Future[Outcome]]:
    """Every case on its own terminal, several at a time: they mostly wait on timeouts and
    command gaps, so the suite takes seconds instead of a minute."""
    out: dict[tuple[str, str], Future[Outcome]] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario") as pool:
        for scn, symptom in cases:
            folder = tmp / f"{scn.name}--{symptom}"
            out[(scn.name, symptom)] = pool.submit(run_case, scn, symptom, pki, folder)
    return out
