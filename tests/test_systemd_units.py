"""The files under systemd/: unit, sandbox, udev rules, sysusers and tmpfiles snippets.

The unit is checked with the real ``systemd-analyze`` (Debian package ``systemd``; ``make test``
installs it). No systemd runs as PID 1 in a test environment, so the unit's system call sandbox
is reproduced with libseccomp (a dependency of systemd, so present wherever systemd-analyze is)
from the unit's own settings, and the agent's real work runs inside it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "posdiag.service"
RULES = SYSTEMD / "60-posdiag.rules"
SYSUSERS = SYSTEMD / "posdiag.sysusers"
TMPFILES = SYSTEMD / "posdiag.tmpfiles"
DEVICES = REPO / "drivers" / "devices.toml"
EXPOSURE_LIMIT = 2.0


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.access(p, os.X_OK)), None)
    assert path, f"{name} is missing: apt-get install -y systemd"
    return path


@pytest.fixture(scope="module")
def analyze() -> str:
    return _tool("systemd-analyze")


def run(*argv: str, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, **kw)


# -- unit file reading -----------------------------------------------------------------------------

def read_unit(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; comments dropped, backslash continuations joined."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def service_values(key: str) -> list[str]:
    return [v for s, k, v in read_unit(UNIT) if s == "Service" and k == key]


def service_value(key: str) -> str | None:
    values = service_values(key)
    return values[-1] if values else None


# -- systemd-analyze verify and security -----------------------------------------------------------

def test_unit_verifies_clean(analyze: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` checks that ExecStart= names an executable file, and
    /opt/posdiag/bin/posdiag exists only on an installed terminal. So the unit is verified as a
    copy in which only that path is replaced by an executable stub (same file name, so %n and the
    unit name stay the same); every other line is the shipped one and must produce no output at all.
    The shipped file is verified too: its only permitted complaint is that missing binary.
    """
    stub = tmp_path / "bin" / "posdiag"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    original = UNIT.read_text()
    assert original.count("ExecStart=/opt/posdiag/bin/posdiag run\n") == 1
    copy = tmp_path / "unit" / UNIT.name
    copy.parent.mkdir()
    copy.write_text(original.replace("ExecStart=/opt/posdiag/bin/posdiag run",
                                     f"ExecStart={stub} run"))

    result = run(analyze, "verify", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""

    shipped = run(analyze, "verify", str(UNIT))
    complaints = [line for line in (shipped.stdout + shipped.stderr).splitlines() if line.strip()]
    for line in complaints:
        assert "/opt/posdiag/bin/posdiag" in line and "not executable" in line, line
    assert (shipped.returncode == 0) == (not complaints)


def test_unit_verify_catches_a_broken_unit(analyze: str, tmp_path: Path) -> None:
    # The check above would be worthless if verify accepted anything.
    broken = tmp_path / UNIT.name
    broken.write_text(UNIT.read_text().replace("ExecStart=/opt/posdiag/bin/posdiag run",
                                               "ExecStart=/bin/true\nWatchdogSecs=60"))
    result = run(analyze, "verify", str(broken))
    assert "WatchdogSecs" in result.stdout + result.stderr


def exposure(analyze: str, unit: Path) -> tuple[float, str]:
    result = run(analyze, "security", "--offline=true", "--no-pager", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result.stderr


def test_security_exposure_is_at_most_2(analyze: str) -> None:
    score, warnings = exposure(analyze, UNIT)
    print(f"\nsystemd-analyze security --offline=true {UNIT.name}: overall exposure {score}")
    assert warnings.strip() == ""  # e.g. "Unknown key ... ignoring" would mean a setting is lost
    assert score <= EXPOSURE_LIMIT


def test_security_score_reacts_to_hardening(analyze: str, tmp_path: Path) -> None:
    # The parse must read the real number: dropping the system call filter must cost points.
    weaker = tmp_path / UNIT.name
    weaker.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                                if not line.startswith(("SystemCallFilter=",
                                                        "CapabilityBoundingSet="))))
    assert exposure(analyze, weaker)[0] > exposure(analyze, UNIT)[0] + 0.5


def test_unit_keeps_the_daemon_contract() -> None:
    """What the daemon and the install steps rely on (issue 5 §1, §8)."""
    assert service_value("Type") == "notify"
    assert service_value("NotifyAccess") == "main"
    assert service_value("ExecStart") == "/opt/posdiag/bin/posdiag run"
    assert service_value("ExecReload") == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads the config
    assert service_value("WatchdogSec") == "60"
    assert service_value("Restart") == "on-failure"
    assert service_value("TimeoutStopSec") == "10"
    assert (service_value("User"), service_value("Group")) == ("posdiag", "posdiag")
    assert set((service_value("SupplementaryGroups") or "").split()) == {"dialout", "lp"}
    assert service_value("StateDirectory") == "posdiag"
    assert service_value("StateDirectoryMode") == "0700"
    assert service_value("ConfigurationDirectory") == "posdiag"
    assert service_value("UMask") == "0077"
    assert service_value("CapabilityBoundingSet") == ""
    assert service_value("AmbientCapabilities") == ""
    assert service_value("DevicePolicy") == "closed"
    assert set((service_value("RestrictAddressFamilies") or "").split()) == {
        "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    # Settings that would break the agent (see the comments in the unit):
    assert service_value("ProcSubset") in (None, "all")  # /proc/meminfo, /proc/net/route
    assert service_value("PrivateUsers") in (None, "no")  # udev monitor events
    assert service_value("ProtectClock") in (None, "no")  # adjtimex read
    assert service_value("IPAddressDeny") is None  # broker and payment hosts
    assert service_value("PrivateNetwork") in (None, "no")


def test_device_allow_list_names_the_usb_serial_and_printer_majors() -> None:
    allowed = {tuple(v.split()) for v in service_values("DeviceAllow")}
    # /proc/devices names: usb-serial registers "ttyUSB" (188), cdc-acm "ttyACM" (166), and
    # /dev/usb/lp* hang off USB_MAJOR 180, registered as "usb" (its sysfs class "usbmisc" is not
    # a /proc/devices name and would match nothing).
    assert allowed == {("char-ttyUSB", "rw"), ("char-ttyACM", "rw"), ("char-usb", "rw")}


# -- the unit's system call sandbox, reproduced ----------------------------------------------------

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ = 4, 5, 7
AF_MAX = 46  # <linux/socket.h>
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def scmp_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def syscall_groups(analyze: str) -> dict[str, list[str]]:
    """``@group -> members`` as this systemd defines them (``systemd-analyze syscall-filter``)."""
    result = run(analyze, "syscall-filter", "--no-pager")
    assert result.returncode == 0, result.stderr
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif not line.strip() or line.startswith("#"):
            current = None
        elif current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
    assert "@system-service" in groups and "@default" in groups
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= expand(groups[name], groups) if name.startswith("@") else {name}
    return out


@dataclass
class Sandbox:
    """Seccomp filters equivalent to the unit's SystemCallFilter=, SystemCallErrorNumber=,
    ProtectClock=, MemoryDenyWriteExecute= and RestrictAddressFamilies= (the settings a Python
    program can trip over at run time; mounts, devices and capabilities are not reproduced)."""

    filters: list[dict] = field(default_factory=list)

    @classmethod
    def from_unit(cls, entries: list[tuple[str, str, str]], groups: dict[str, list[str]],
                  *, protect_clock: bool | None = None) -> Sandbox:
        service = [(k, v) for s, k, v in entries if s == "Service"]
        settings = dict(service)
        box = cls()
        if protect_clock if protect_clock is not None else settings.get("ProtectClock") == "yes":
            box.filters.append(_deny_filter(expand(["@clock"], groups), errno.EPERM))
        if settings.get("MemoryDenyWriteExecute") == "yes":
            box.filters.append(_mdwe_filter())
        if "RestrictAddressFamilies" in settings:
            box.filters.append(_family_filter(settings["RestrictAddressFamilies"].split()))
        # systemd's semantics: the first SystemCallFilter= decides allow- or deny-list; later
        # lines add (plain) or take away (~) in allow mode; an allow list always gets @default.
        filter_lines = [v for k, v in service if k == "SystemCallFilter"]
        if filter_lines:
            allow_mode = not filter_lines[0].startswith("~")
            chosen = expand(["@default"], groups) if allow_mode else set()
            for value in filter_lines:
                negated = value.startswith("~")
                names = expand(value.lstrip("~").split(), groups)
                if negated == allow_mode:
                    chosen -= names
                else:
                    chosen |= names
            error = settings.get("SystemCallErrorNumber")
            action = scmp_errno(getattr(errno, error)) if error else SCMP_ACT_KILL_PROCESS
            if allow_mode:
                # Loaded last: installing a filter needs seccomp(), which the list itself denies.
                box.filters.append({"default": action,
                                    "rules": [[SCMP_ACT_ALLOW, n, []] for n in sorted(chosen)]})
            else:
                box.filters.append({"default": SCMP_ACT_ALLOW,
                                    "rules": [[action, n, []] for n in sorted(chosen)]})
        return box

    def allows(self, name: str) -> bool:
        last = self.filters[-1]
        listed = any(rule[1] == name for rule in last["rules"])
        return listed if last["default"] != SCMP_ACT_ALLOW else not listed


def _deny_filter(names: set[str], code: int) -> dict:
    return {"default": SCMP_ACT_ALLOW, "rules": [[scmp_errno(code), n, []] for n in sorted(names)]}


def _mdwe_filter() -> dict:
    # As systemd does it: no mapping both writable and executable, no mprotect() adding EXEC.
    eperm = scmp_errno(errno.EPERM)
    wx = PROT_WRITE | PROT_EXEC
    return {"default": SCMP_ACT_ALLOW, "rules": [
        [eperm, "mmap", [[2, SCMP_CMP_MASKED_EQ, wx, wx]]],
        [eperm, "mprotect", [[2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC]]],
        [eperm, "pkey_mprotect", [[2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC]]],
        [eperm, "shmat", [[2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC]]],
    ]}


def _family_filter(names: list[str]) -> dict:
    allowed = {int(getattr(socket, name)) for name in names}
    refuse = scmp_errno(errno.EAFNOSUPPORT)
    rules = [[refuse, "socket", [[0, SCMP_CMP_EQ, af, 0]]] for af in range(AF_MAX)
             if af not in allowed]
    rules.append([refuse, "socket", [[0, SCMP_CMP_GE, AF_MAX, 0]]])
    return {"default": SCMP_ACT_ALLOW, "rules": rules}


# Loads the filters with libseccomp, then execs the command: seccomp filters survive execve, as
# they do when systemd starts ExecStart=.
LAUNCHER = r'''
import ctypes, json, os, sys

class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(ArgCmp)]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
lib.seccomp_release.argtypes = [ctypes.c_void_p]

with open(sys.argv[1]) as f:
    filters = json.load(f)
for spec in filters:
    ctx = lib.seccomp_init(spec["default"])
    for action, name, cmps in spec["rules"]:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue  # not a system call on this architecture; systemd skips these too
        array = (ArgCmp * len(cmps))(*[ArgCmp(*c) for c in cmps]) if cmps else None
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
        if rc < 0:
            sys.exit(f"seccomp rule for {name}: {os.strerror(-rc)}")
    rc = lib.seccomp_load(ctx)
    if rc < 0:
        sys.exit(f"seccomp_load: {os.strerror(-rc)}")
    lib.seccomp_release(ctx)
os.execv(sys.argv[2], sys.argv[2:])
'''

# What the daemon does at run time, each step recorded as "ok" or the errno name it failed with.
WORKLOAD = r'''
import contextlib, errno, io, json, mmap, os, socket, sqlite3, ssl, sys, threading, time

results = {}

def probe(name, fn):
    try:
        fn()
        results[name] = "ok"
    except OSError as e:
        results[name] = errno.errorcode.get(e.errno, str(e))
    except Exception as e:
        results[name] = f"{type(e).__name__}: {e}"

def clock():
    from posdiag.drivers.timex import read_kernel_clock
    read_kernel_clock()

def outbox():
    db = sqlite3.connect(os.path.join(sys.argv[1], "outbox.sqlite"))
    assert db.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
    db.execute("create table if not exists m (seq integer primary key, body blob)")
    with db:
        db.execute("insert into m (body) values (?)", (b"x" * 1000,))
    db.close()

def udev_monitor():
    import pyudev
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by("tty")
    monitor.start()
    monitor.poll(timeout=0)
    list(context.list_devices(subsystem="tty"))

def notify():
    from posdiag.service.sdnotify import Notifier
    notifier = Notifier.from_environment()
    assert notifier.ready("sandbox") and notifier.watchdog()

def tcp():
    ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2) as s:
        s.sendall(b"ping")

def worker_thread():
    t = threading.Thread(target=time.sleep, args=(0.01,))
    t.start()
    t.join()

def system_readings():
    import psutil
    psutil.virtual_memory(); psutil.net_if_addrs(); psutil.boot_time(); list(psutil.pids())

probe("clock", clock)
probe("outbox", outbox)
probe("udev_monitor", udev_monitor)
probe("notify", notify)
probe("tcp", tcp)
probe("thread", worker_thread)
probe("system_readings", system_readings)
# Things the sandbox must refuse; all harmless when it does not.
probe("deny_wx_mapping", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE
                                             | mmap.PROT_EXEC).close())
probe("deny_packet_socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
probe("deny_affinity", lambda: os.sched_setaffinity(0, os.sched_getaffinity(0)))
probe("deny_clock_set", lambda: time.clock_settime(time.CLOCK_MONOTONIC, 0.0))

from posdiag.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["selftest", "--json"])
report = json.loads(out.getvalue())
results["selftest_exit"] = code
results["selftest"] = sorted([c["name"], c["status"], c["reason"]] for c in report["checks"])
print(json.dumps(results))
'''


@dataclass
class Peer:
    """The test's side: a notify socket and a TCP listener the sandboxed agent talks to."""

    notify: socket.socket
    notify_path: str
    listener: socket.socket


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def peer(sandbox_dir: Path) -> Iterator[Peer]:
    path = f"/tmp/posdiag-sbx-{os.getpid()}.sock"  # short: AF_UNIX paths stop at 107 bytes
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(path)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    try:
        yield Peer(notify, path, listener)
    finally:
        notify.close()
        listener.close()
        os.unlink(path)


def run_workload(directory: Path, peer: Peer, sandbox: Sandbox | None) -> dict:
    directory.mkdir(exist_ok=True)
    (directory / "workload.py").write_text(WORKLOAD)
    cmd = [sys.executable, str(directory / "workload.py"), str(directory),
           str(peer.listener.getsockname()[1])]
    if sandbox is not None:
        (directory / "launcher.py").write_text(LAUNCHER)
        (directory / "filters.json").write_text(json.dumps(sandbox.filters))
        cmd = [sys.executable, str(directory / "launcher.py"), str(directory / "filters.json"),
               *cmd]
    env = {**os.environ, "NOTIFY_SOCKET": peer.notify_path, "WATCHDOG_USEC": "60000000"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                            cwd=REPO)
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    conn, _ = peer.listener.accept()
    with conn:
        conn.settimeout(5)
        assert conn.recv(16) == b"ping"
    peer.notify.settimeout(5)
    assert peer.notify.recv(4096) == b"READY=1\nSTATUS=sandbox"
    assert peer.notify.recv(4096) == b"WATCHDOG=1"
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def unit_sandbox(analyze: str) -> Sandbox:
    return Sandbox.from_unit(read_unit(UNIT), syscall_groups(analyze))


@pytest.fixture(scope="module")
def sandboxed(sandbox_dir: Path, peer: Peer, unit_sandbox: Sandbox) -> dict:
    return run_workload(sandbox_dir / "confined", peer, unit_sandbox)


@pytest.fixture(scope="module")
def unconfined(sandbox_dir: Path, peer: Peer) -> dict:
    return run_workload(sandbox_dir / "free", peer, None)


@pytest.mark.parametrize("step", ["clock", "outbox", "udev_monitor", "notify", "tcp", "thread",
                                  "system_readings"])
def test_agent_work_runs_inside_the_unit_sandbox(sandboxed: dict, step: str) -> None:
    # clock: glibc's adjtimex() is clock_adjtime(CLOCK_REALTIME, modes=0), in @clock; outbox:
    # SQLite WAL; udev_monitor: AF_NETLINK; all under MemoryDenyWriteExecute= too (ctypes calls
    # without callbacks need no writable+executable memory).
    assert sandboxed[step] == "ok"


def test_sandbox_is_really_enforced(sandboxed: dict, unconfined: dict) -> None:
    assert sandboxed["deny_wx_mapping"] == "EPERM"  # MemoryDenyWriteExecute=
    assert sandboxed["deny_packet_socket"] == "EAFNOSUPPORT"  # RestrictAddressFamilies=
    assert sandboxed["deny_affinity"] == "EPERM"  # ~@resources, SystemCallErrorNumber=EPERM
    assert sandboxed["deny_clock_set"] == "EPERM"  # clock_settime stays denied
    # Outside the sandbox the same calls get past seccomp (the kernel itself refuses setting
    # CLOCK_MONOTONIC with EINVAL; a raw socket needs root).
    assert unconfined["deny_wx_mapping"] == "ok"
    assert unconfined["deny_affinity"] == "ok"
    assert unconfined["deny_clock_set"] == "EINVAL"


def test_selftest_gives_the_same_results_inside_the_sandbox(sandboxed: dict,
                                                            unconfined: dict) -> None:
    # A denied call would surface as a different status or reason (unknown, permission_denied).
    assert sandboxed["selftest"] == unconfined["selftest"]
    assert sandboxed["selftest_exit"] == unconfined["selftest_exit"]


def test_protect_clock_would_break_the_clock_check(analyze: str, sandbox_dir: Path,
                                                   peer: Peer) -> None:
    """Why the unit has no ProtectClock=yes: its @clock filter refuses even the read-only call."""
    box = Sandbox.from_unit(read_unit(UNIT), syscall_groups(analyze), protect_clock=True)
    result = run_workload(sandbox_dir / "protect-clock", peer, box)["clock"]
    assert result == "DriverError: clock: adjtimex failed: Operation not permitted"


def test_unit_filter_admits_exactly_the_clock_read(unit_sandbox: Sandbox) -> None:
    assert unit_sandbox.allows("clock_adjtime")
    assert unit_sandbox.allows("adjtimex")
    for call in ("clock_settime", "settimeofday", "setuid", "chown", "init_module", "reboot",
                 "mount", "ptrace", "sched_setaffinity"):
        assert not unit_sandbox.allows(call), call


# -- udev rules ------------------------------------------------------------------------------------

MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
              "DRIVERS", "ATTRS", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST", "SYSCTL"}
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
BOTH = {"NAME", "SYMLINK", "ATTR", "ENV", "TAG"}
NEEDS_ATTRIBUTE = {"ATTR", "ATTRS", "ENV", "SYSCTL", "IMPORT", "RUN", "TEST", "SECLABEL", "CONST"}
TOKEN = re.compile(r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^{}]+)\})?\s*'
                   r'(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>[^"]*)"\s*(?:,|$)')


@dataclass(frozen=True)
class Token:
    key: str
    attr: str | None
    op: str
    value: str

    @property
    def is_match(self) -> bool:
        return self.op in ("==", "!=")


@dataclass
class Rule:
    line: int
    tokens: list[Token]

    def match(self, key: str, attr: str | None = None) -> str | None:
        return next((t.value for t in self.tokens
                     if t.is_match and t.op == "==" and (t.key, t.attr) == (key, attr)), None)

    def assigned(self, key: str, attr: str | None = None) -> list[str]:
        return [t.value for t in self.tokens if not t.is_match and (t.key, t.attr) == (key, attr)]


def parse_rules(text: str) -> list[Rule]:
    """A strict reading of udev rule syntax (udev(7)); raises ValueError naming the line.

    ``udevadm verify`` exists only from systemd 254 on (Debian 12 has 252), so the syntax is
    checked here: key{attr}op"value" tokens separated by commas, operators legal for the key,
    every GOTO with its LABEL, octal modes, symlinks relative to /dev.
    """
    rules: list[Rule] = []
    labels: set[str] = set()
    gotos: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            raise ValueError(f"line {number}: continuation lines are not used here")
        tokens: list[Token] = []
        pos = 0
        while pos < len(line):
            m = TOKEN.match(line, pos)
            if not m or m.end() == pos:
                raise ValueError(f"line {number}: cannot parse at {line[pos:pos + 30]!r}")
            tokens.append(Token(m["key"], m["attr"], m["op"], m["value"]))
            pos = m.end()
        for t in tokens:
            if t.key not in MATCH_ONLY | ASSIGN_ONLY | BOTH:
                raise ValueError(f"line {number}: unknown key {t.key}")
            if t.is_match and t.key in ASSIGN_ONLY:
                raise ValueError(f"line {number}: {t.key} cannot be matched")
            if not t.is_match and t.key in MATCH_ONLY:
                raise ValueError(f"line {number}: {t.key} cannot be assigned (use ==)")
            if (t.attr is None) == (t.key in NEEDS_ATTRIBUTE):
                what = "needs" if t.attr is None else "takes no"
                raise ValueError(f"line {number}: {t.key} {what} {{attribute}}")
            if t.key == "MODE" and not re.fullmatch(r"0[0-7]{3}", t.value):
                raise ValueError(f"line {number}: MODE must be octal like 0660")
            if t.key == "SYMLINK" and not t.is_match and (t.value.startswith("/") or
                                                          t.op != "+="):
                raise ValueError(f"line {number}: SYMLINK+= a path relative to /dev")
            if t.key == "LABEL":
                labels.add(t.value)
            if t.key == "GOTO":
                gotos.append((number, t.value))
        if not any(t.is_match for t in tokens) and not any(t.key == "LABEL" for t in tokens):
            raise ValueError(f"line {number}: a rule without a match applies to every device")
        rules.append(Rule(number, tokens))
    for number, target in gotos:
        if target not in labels:
            raise ValueError(f"line {number}: GOTO {target!r} has no LABEL")
    return rules


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return parse_rules(RULES.read_text())


@pytest.fixture(scope="module")
def devices() -> list[dict]:
    return tomllib.loads(DEVICES.read_text())["device"]


def usb_id(rule: Rule, key: str) -> tuple[str, str] | None:
    vid, pid = rule.match(key, "idVendor"), rule.match(key, "idProduct")
    return (vid, pid) if vid and pid else None


def test_rules_skip_removal_first(rules: list[Rule]) -> None:
    first = rules[0]
    assert first.match("ACTION") == "remove"
    assert first.assigned("GOTO") == ["posdiag_end"]
    assert rules[-1].assigned("LABEL") == ["posdiag_end"]


def test_card_readers_and_bridges_are_hidden_from_modemmanager(rules: list[Rule],
                                                               devices: list[dict]) -> None:
    for dev in devices:
        if dev["kind"] not in ("card_reader", "contactless", "bridge"):
            continue
        ids = (dev["vid"], dev["pid"])
        on_usb_device = [r for r in rules if r.match("SUBSYSTEM") == "usb"
                         and r.match("ENV", "DEVTYPE") == "usb_device"
                         and usb_id(r, "ATTR") == ids]
        assert [r.assigned("ENV", "ID_MM_DEVICE_IGNORE") for r in on_usb_device] == [["1"]], ids
        if dev["transport"] == "tty":
            (tty,) = [r for r in rules if r.match("SUBSYSTEM") == "tty"
                      and usb_id(r, "ATTRS") == ids]
            assert tty.assigned("ENV", "ID_MM_DEVICE_IGNORE") == ["1"], ids


def test_modems_stay_with_modemmanager(rules: list[Rule], devices: list[dict]) -> None:
    modems = {(d["vid"], d["pid"]) for d in devices if d["kind"] == "cellular"}
    assert modems
    for rule in rules:
        if usb_id(rule, "ATTR") in modems or usb_id(rule, "ATTRS") in modems:
            assert rule.assigned("ENV", "ID_MM_DEVICE_IGNORE") == [], rule.line
    (link,) = [r for r in rules if r.assigned("SYMLINK") == ["posdiag/modem"]]
    assert link.match("ENV", "POSDIAG_KIND") == "cellular"
    # The link goes to the AT port devices.toml names, never to interface 00 (Qualcomm DIAG).
    wanted = {f"{d['at_interface']:02x}" for d in devices if d["kind"] == "cellular"}
    assert wanted == {link.match("ATTRS", "bInterfaceNumber")}


def test_every_port_gets_group_mode_and_a_stable_link(rules: list[Rule],
                                                      devices: list[dict]) -> None:
    subsystem = {"tty": "tty", "usblp": "usbmisc"}
    group = {"tty": "dialout", "usblp": "lp"}
    for dev in devices:
        if dev["transport"] == "hid":
            continue  # no node posdiag opens
        ids = (dev["vid"], dev["pid"])
        (rule,) = [r for r in rules if r.match("SUBSYSTEM") == subsystem[dev["transport"]]
                   and usb_id(r, "ATTRS") == ids]
        assert rule.assigned("GROUP") == [group[dev["transport"]]], ids
        assert rule.assigned("MODE") == ["0660"], ids
        assert rule.assigned("ENV", "POSDIAG_KIND") == [dev["kind"]], ids
        if dev["kind"] != "cellular":  # modems: the AT-port rule above
            (link,) = rule.assigned("SYMLINK")
            assert link.startswith("posdiag/"), ids
    unit_groups = set((service_value("SupplementaryGroups") or "").split())
    assert {t.value for r in rules for t in r.tokens if t.key == "GROUP"} <= unit_groups


def test_rules_name_no_device_missing_from_the_table(rules: list[Rule],
                                                     devices: list[dict]) -> None:
    known = {(d["vid"], d["pid"]) for d in devices}
    for rule in rules:
        for ids in (usb_id(rule, "ATTR"), usb_id(rule, "ATTRS")):
            assert ids is None or ids in known, f"line {rule.line}: {ids} not in devices.toml"
            assert ids is None or all(re.fullmatch(r"[0-9a-f]{4}", x) for x in ids)


def test_no_rule_touches_hid_or_input_nodes(rules: list[Rule]) -> None:
    # A keyboard-mode card reader types card data into its hidraw/input node (DESIGN §6).
    for rule in rules:
        assert rule.match("SUBSYSTEM") not in ("hidraw", "input"), rule.line


@pytest.mark.parametrize(("line", "complaint"), [
    ('SUBSYSTEM="tty", GROUP="dialout"', "cannot be assigned"),
    ('SUBSYSTEM=="tty", GROUP=="dialout"', "cannot be matched"),
    ('SUBSYSTEM=="tty", MODE="660"', "octal"),
    ('SUBSYSTEM=="tty", SYMLINK+="/dev/posdiag/x"', "relative"),
    ('SUBSYSTEM=="tty" GROUP="dialout" ,,', "cannot parse"),
    ("SUBSYSTEM=='tty', GROUP='dialout'", "cannot parse"),
    ('SUBSYSTEM=="tty", ATTRS=="x"', "needs"),
    ('SUBSYSTEM=="tty", GROUP{x}="lp"', "takes no"),
    ('SUBSYSTEMZ=="tty", GROUP="dialout"', "unknown key"),
    ('ACTION=="remove", GOTO="nowhere"', "no LABEL"),
    ('GROUP="dialout"', "every device"),
])
def test_rule_parser_rejects_bad_syntax(line: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_rules(line + "\n")


# -- sysusers and tmpfiles -------------------------------------------------------------------------

def read_db(path: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in path.read_text().splitlines() if line}


def make_sysroot(root: Path) -> str:
    """Create our accounts in an empty root with systemd-sysusers; returns what it reported."""
    (root / "etc").mkdir()
    result = run(_tool("systemd-sysusers"), f"--root={root}", str(SYSUSERS))
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_sysusers_creates_the_service_account(tmp_path: Path) -> None:
    report = make_sysroot(tmp_path)
    # sysusers names a bad line ("Unknown command type", "not a valid user or group name") and
    # goes on; a clean file produces only the "Creating ..." lines.
    assert all(line.startswith("Creating ") for line in report.splitlines()), report
    passwd = read_db(tmp_path / "etc" / "passwd")
    group = read_db(tmp_path / "etc" / "group")
    _name, _, uid, gid, _gecos, home, shell = passwd["posdiag"]
    assert int(uid) < 1000  # a system account
    assert group["posdiag"][2] == gid
    assert home == f"/var/lib/{service_value('StateDirectory')}"
    assert shell.endswith("nologin")
    for supplementary in (service_value("SupplementaryGroups") or "").split():
        assert "posdiag" in group[supplementary][3].split(","), supplementary


@pytest.mark.root
def test_tmpfiles_create_state_and_config_directories(tmp_path: Path) -> None:
    make_sysroot(tmp_path)
    sysroot = tmp_path
    result = run(_tool("systemd-tmpfiles"), f"--root={sysroot}", "--create", str(TMPFILES))
    assert result.returncode == 0, result.stderr
    uid = int(read_db(sysroot / "etc" / "passwd")["posdiag"][2])
    state = (sysroot / "var" / "lib" / "posdiag").stat()
    # The same owner and mode StateDirectory= applies, so the two never fight.
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (
        uid, int(service_value("StateDirectoryMode") or "0755", 8))
    conf_d = (sysroot / "etc" / "posdiag" / "conf.d").stat()
    assert conf_d.st_uid == 0 and stat.S_IMODE(conf_d.st_mode) == 0o755
