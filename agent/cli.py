"""The ``posdiag`` command line. Imports are lazy so ``posdiag --version`` starts fast."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import argparse

    from posdiag.config import Config
    from posdiag.paths import Roots

from posdiag.exit_codes import EX_CONFIG, EX_SOFTWARE, EX_USAGE, INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):  # the fast path: no argparse, no agent imports
        from posdiag import __version__

        print(f"posdiag {__version__}")
        return 0
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("posdiag: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return 0


def _dispatch(argv: list[str]) -> int:
    from posdiag.errors import ConfigError, UsageError

    parser = _parser()
    ns = _merge_common(parser.parse_args(argv))
    _logging(ns.verbose)
    try:
        return int(ns.func(ns))
    except ConfigError as e:
        print(f"posdiag: config error: {e}", file=sys.stderr)
        return EX_CONFIG
    except UsageError as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_USAGE


class _Parser:
    """argparse exits 2 on bad usage, which would read as 'fail' to a monitoring system."""

    @staticmethod
    def make(**kw: object) -> argparse.ArgumentParser:
        import argparse

        class P(argparse.ArgumentParser):
            def error(self, message: str) -> NoReturn:
                self.print_usage(sys.stderr)
                self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")

        return P(**kw)  # type: ignore[arg-type]


# The options every command takes. They may come before the command too (``posdiag --config F
# selftest``, as with git or systemctl); given both before and after, the one after the command
# wins, because it is the more specific; ``-v`` counts add up.
COMMON_OPTIONS = ("config", "sysfs", "procfs", "rootfs", "lang")
_BEFORE = "before_"


def _add_common(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    def dest(name: str) -> dict[str, str]:
        return {"dest": prefix + name} if prefix else {}

    parser.add_argument("--config", metavar="FILE", **dest("config"),
                        help="config file (default /etc/posdiag/posdiag.toml; conf.d/*.toml "
                             "beside it are read after it)")
    parser.add_argument("--sysfs", metavar="DIR", **dest("sysfs"),
                        help="read the kernel's /sys from DIR")
    parser.add_argument("--procfs", metavar="DIR", **dest("procfs"), help="read /proc from DIR")
    parser.add_argument("--rootfs", metavar="DIR", **dest("rootfs"),
                        help="read files such as /etc from under DIR")
    parser.add_argument("--lang", choices=("en", "zh_CN"), **dest("lang"),
                        help="language of texts (default: config, then LC_ALL/LANG)")
    parser.add_argument("-v", "--verbose", action="count", default=0, **dest("verbose"),
                        help="more log output (repeatable)")


def _merge_common(ns: argparse.Namespace) -> argparse.Namespace:
    """Fold the options given before the command into those given after it (after wins)."""
    for name in COMMON_OPTIONS:
        before = getattr(ns, _BEFORE + name)
        delattr(ns, _BEFORE + name)
        if getattr(ns, name, None) is None:
            setattr(ns, name, before)
    ns.verbose = getattr(ns, "verbose", 0) + getattr(ns, _BEFORE + "verbose")
    delattr(ns, _BEFORE + "verbose")
    return ns


def _parser() -> argparse.ArgumentParser:
    from posdiag import __version__
    from posdiag.exit_codes import epilog

    common = _Parser.make(add_help=False)
    _add_common(common)

    p = _Parser.make(prog="posdiag", description="Diagnostic agent for Linux POS terminals.")
    p.add_argument("--version", action="version", version=f"posdiag {__version__}")
    before = p.add_argument_group(
        "options for every command",
        "also accepted before COMMAND; when given on both sides, the one after COMMAND wins")
    _add_common(before, prefix=_BEFORE)  # type: ignore[arg-type]
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=type(p))

    st = sub.add_parser("selftest", parents=[common], help="check this terminal now",
                        description="Run the checks and print what is wrong.",
                        epilog=epilog("selftest"))
    st.add_argument("--json", action="store_true", help="print exactly one JSON report")
    st.add_argument("--check", action="append", default=[], metavar="NAME",
                    help="run only this check (repeatable)")
    st.set_defaults(func=cmd_selftest)

    dg = sub.add_parser("diagnose", parents=[common],
                        help="find the cause of a merchant's complaint (刷卡失败, 交易超时 …)",
                        description="Run the checks that matter for a symptom, rank the likely "
                                    "causes with the evidence behind each, and say what to do. "
                                    "Without a symptom: list the symptoms.",
                        epilog=epilog("diagnose"))
    dg.add_argument("symptom", nargs="?", metavar="SYMPTOM",
                    help="symptom id (card-read-failure …) or its Chinese name (刷卡失败 …)")
    dg.add_argument("--json", action="store_true",
                    help="print exactly one JSON document (schema posdiag.diagnosis/1)")
    dg.set_defaults(func=cmd_diagnose)

    ch = sub.add_parser("checks", parents=[common], help="list the checks",
                        epilog=epilog("checks"))
    ch.add_argument("--json", action="store_true", help="print the list as JSON")
    ch.set_defaults(func=cmd_checks)

    rn = sub.add_parser("run", parents=[common], help="run as a service (systemd Type=notify)",
                        description="Run the checks on their schedules, publish presence, "
                                    "heartbeats, reports and events over MQTT, answer commands.",
                        epilog=epilog("run"))
    rn.set_defaults(func=cmd_run)

    sw = sub.add_parser("swipe-test", parents=[common],
                        help="swipe a card to test the magnetic stripe reader",
                        description="Wait for one card swipe and report, per track, whether it "
                                    "was read correctly (structure, LRC, Luhn, expiry). Card data "
                                    "is never shown: the card number only masked.",
                        epilog=epilog("swipe-test"))
    sw.add_argument("--port", metavar="PORT",
                    help="reader port or pyserial URL (default: [checks.card_reader] port, "
                         "else found on USB)")
    sw.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="how long to wait for the swipe (default 30)")
    sw.add_argument("--json", action="store_true", help="print exactly one JSON document")
    sw.set_defaults(func=cmd_swipe_test)

    cp = sub.add_parser("chip-test", parents=[common],
                        help="insert or tap a card to test the chip reader",
                        description="Wait for one chip card (inserted or tapped) and report, "
                                    "step by step, the answer to reset, protocol, payment "
                                    "applications and brand. Only SELECT is sent: no card "
                                    "number is read or shown. Exit code: 0 OK, 1 the card has "
                                    "a problem, 2 reader failure or no card.")
    cp.add_argument("--reader", metavar="NAME",
                    help="PC/SC reader name or glob (default: [checks.chip_reader] readers)")
    cp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="how long to wait for the card (default 30)")
    cp.add_argument("--json", action="store_true", help="print exactly one JSON document")
    cp.set_defaults(func=cmd_chip_test)

    hi = sub.add_parser("history", parents=[common],
                        help="the network flight recorder: link, signal, RTT, DNS per minute",
                        description="Show the per-minute samples the service keeps on this "
                                    "terminal (72 h by default): a table and sparklines.",
                        epilog=epilog("history"))
    when = hi.add_mutually_exclusive_group()
    when.add_argument("--since", metavar="DURATION", help="the last 90m, 2h, 1d … (default 1h)")
    when.add_argument("--at", metavar="TIME",
                      help="HH:MM (local, last occurrence) or ISO time: 15 minutes either side")
    hi.add_argument("--json", action="store_true", help="print exactly one JSON document")
    hi.set_defaults(func=cmd_history)

    cf = sub.add_parser("config", help="configuration")
    cfsub = cf.add_subparsers(dest="config_command", metavar="ACTION", required=True,
                              parser_class=type(p))
    cc = cfsub.add_parser("check", parents=[common],
                          help="validate the config and print the effective configuration",
                          epilog=epilog("config check"))
    cc.set_defaults(func=cmd_config_check)

    from posdiag.fleet.cli import add_parser as add_fleet_parser

    add_fleet_parser(sub, [common])
    return p


def _logging(verbose: int) -> None:
    import logging

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="posdiag: %(levelname)s: %(name)s: %(message)s")


# --------------------------------------------------------------------------------------------
def _load(ns: argparse.Namespace) -> tuple[Config, Roots]:
    from pathlib import Path

    from posdiag import config as cfgmod
    from posdiag.checks import REGISTRY
    from posdiag.errors import UsageError
    from posdiag.paths import Roots

    cfg = cfgmod.load(Path(ns.config) if ns.config else None,
                      {s.name: s.config_type for s in REGISTRY})
    dirs = {}
    for key in ("sysfs", "procfs", "rootfs"):
        given = getattr(ns, key)
        if given is not None and not Path(given).is_dir():
            raise UsageError(f"--{key} {given}: no such directory")
        dirs[key] = Path(given if given is not None else getattr(cfg.paths, key))
    return cfg, Roots(**dirs)


def _texts(ns: argparse.Namespace, cfg: Config | None) -> object:
    from posdiag.i18n import Texts, resolve_lang

    return Texts(resolve_lang(ns.lang, cfg.terminal.lang if cfg else ""))


def cmd_selftest(ns: argparse.Namespace) -> int:
    from posdiag import report
    from posdiag.checks import REGISTRY
    from posdiag.drivers.procfs.kernel import boot_id
    from posdiag.errors import UsageError
    from posdiag.render import Renderer
    from posdiag.results import Status
    from posdiag.runner import run_checks

    cfg, roots = _load(ns)
    known = {s.name for s in REGISTRY}
    unknown = [n for n in ns.check if n not in known]
    if unknown:
        raise UsageError(f"unknown check {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(sorted(known))})")

    renderer = None
    if not ns.json:
        # The name column fits the longest check name, so no row pushes its columns right.
        renderer = Renderer(_texts(ns, cfg),  # type: ignore[arg-type]
                            name_width=max(len(s.name) for s in REGISTRY))
        renderer.header(cfg.terminal_id)
    results = run_checks(REGISTRY, cfg, roots, only=ns.check,
                         on_result=renderer.progress if renderer else None)
    rep = report.build(results, terminal_id=cfg.terminal_id, seq=0,
                       valid_for_s=cfg.report.valid_for_s, boot_id=boot_id(roots.procfs))
    if renderer is None:
        print(rep.to_json(indent=2))
    else:
        renderer.table(rep.checks, rep.status)
    return Status(rep.status).exit_code


def cmd_diagnose(ns: argparse.Namespace) -> int:
    import json

    from posdiag import diagnosis
    from posdiag.checks import REGISTRY
    from posdiag.diagnosis.render import render, render_symptoms
    from posdiag.drivers.procfs.kernel import boot_id
    from posdiag.errors import UsageError
    from posdiag.i18n import Texts
    from posdiag.render import Renderer

    cfg, roots = _load(ns)
    t: Texts = _texts(ns, cfg)  # type: ignore[assignment]
    try:
        cat = diagnosis.load_catalogue([s.name for s in REGISTRY])
    except diagnosis.CatalogueError as e:  # a packaging bug, not the user's fault
        print(f"posdiag: the symptom catalogue is broken: {e}", file=sys.stderr)
        return EX_SOFTWARE
    if ns.symptom is None:
        if ns.json:
            print(json.dumps(diagnosis.symptom_list(t, cat), ensure_ascii=False, indent=2))
        else:
            render_symptoms(cat, t, sys.stdout)
        return 0
    symptom = cat.find(ns.symptom)
    if symptom is None:
        raise UsageError(f"unknown symptom {ns.symptom!r} (known: {', '.join(cat.symptoms)}; "
                         "'posdiag diagnose' lists them with their Chinese names)")
    progress = None if ns.json else Renderer(t).progress
    d = diagnosis.diagnose(symptom, REGISTRY, cfg, roots, catalogue=cat, on_result=progress)
    if ns.json:
        doc = diagnosis.document(d, t, terminal_id=cfg.terminal_id, boot_id=boot_id(roots.procfs))
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        render(d, t, sys.stdout, terminal_id=cfg.terminal_id)
    return d.exit_code


def cmd_checks(ns: argparse.Namespace) -> int:
    import json

    from posdiag.checks import REGISTRY
    from posdiag.i18n import Texts, resolve_lang

    t = Texts(resolve_lang(ns.lang))
    rows = [{"name": s.name, "description": t.check(s.name),
             "enabled_by_default": s.enabled_by_default, "depends_on": list(s.depends_on),
             "timeout_s": s.timeout_s} for s in REGISTRY]
    if ns.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    from posdiag.render import pad

    w = max(len(r["name"]) for r in rows) + 2
    print(t.ui("checks_title"))
    for r in rows:
        extra = t.ui("default_on") if r["enabled_by_default"] else t.ui("default_off")
        if r["depends_on"]:
            extra += f"; {t.ui('depends_on')} {', '.join(r['depends_on'])}"
        print(f"  {pad(r['name'], w)}{r['description']} ({extra})")
    return 0


def cmd_swipe_test(ns: argparse.Namespace) -> int:
    import json
    import math

    from posdiag import swipe
    from posdiag.errors import UsageError
    from posdiag.i18n import Texts

    if not math.isfinite(ns.timeout) or not 0 < ns.timeout <= 600:
        raise UsageError(f"--timeout {ns.timeout:g}: must be more than 0 and at most 600 seconds")
    cfg, roots = _load(ns)
    t: Texts = _texts(ns, cfg)  # type: ignore[assignment]

    def ready(port: str) -> None:
        # On stderr, so that stdout holds only the result (one JSON document with --json).
        print(swipe.prompt(t, ns.timeout), file=sys.stderr, flush=True)

    result = swipe.read_swipe(cfg, roots, timeout_s=ns.timeout, port=ns.port, on_ready=ready)
    if ns.json:
        print(json.dumps(swipe.document(result, cfg.terminal_id), ensure_ascii=False, indent=2))
    else:
        print(swipe.render_text(result, t))
    return result.exit_code


def cmd_chip_test(ns: argparse.Namespace) -> int:
    import json
    import math

    from posdiag import chip_test
    from posdiag.errors import UsageError
    from posdiag.i18n import Texts

    if not math.isfinite(ns.timeout) or not 0 < ns.timeout <= 600:
        raise UsageError(f"--timeout {ns.timeout:g}: must be more than 0 and at most 600 seconds")
    cfg, roots = _load(ns)
    t: Texts = _texts(ns, cfg)  # type: ignore[assignment]

    def ready(reader: str) -> None:
        print(chip_test.prompt(t, ns.timeout), file=sys.stderr, flush=True)

    result = chip_test.read_chip(cfg, roots, timeout_s=ns.timeout, reader=ns.reader,
                                 on_ready=ready)
    if ns.json:
        doc = chip_test.document(result, cfg.terminal_id)
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(chip_test.render_text(result, t))
    return result.exit_code


def cmd_config_check(ns: argparse.Namespace) -> int:
    from posdiag import config as cfgmod

    cfg, roots = _load(ns)
    files = ", ".join(cfg.files) if cfg.files else "no config file, built-in defaults"
    print(f"posdiag: config OK ({files})", file=sys.stderr)
    for warning in cfgmod.secret_file_warnings(cfg):
        print(f"posdiag: warning: {warning}", file=sys.stderr)
    effective = cfgmod.as_dict(cfg)
    effective["terminal"]["id"] = cfg.terminal_id
    effective["paths"].update(sysfs=str(roots.sysfs), procfs=str(roots.procfs),
                              rootfs=str(roots.rootfs))
    from posdiag.checks import REGISTRY

    for spec in REGISTRY:  # "enabled" unset means the check's default: show what that is
        table = effective["checks"][spec.name]
        if table.get("enabled") is None:
            table["enabled"] = spec.enabled_by_default
    sys.stdout.write(cfgmod.to_toml(effective))
    return 0


def cmd_history(ns: argparse.Namespace) -> int:
    import json
    import time

    from posdiag import history
    from posdiag.exit_codes import EX_NOINPUT
    from posdiag.flightlog import FlightLog, FlightLogError, path_for

    cfg, _roots = _load(ns)
    texts = _texts(ns, cfg)
    t0, t1 = history.window(time.time(), since=ns.since, at=ns.at)
    path = path_for(cfg.paths.state_dir, cfg.recorder.path)
    if not path.exists():
        sys.stderr.write("posdiag: " + texts.get("history", "no_log").format(path=path) + "\n")
        return EX_NOINPUT
    try:
        with FlightLog.open(path) as fl:
            minutes = history.rows(fl, t0, t1)
    except FlightLogError as e:
        sys.stderr.write(f"posdiag: {e}\n")
        return EX_NOINPUT
    if ns.json:
        sys.stdout.write(json.dumps(history.to_json(minutes, t0, t1), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(history.render(minutes, texts))
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from posdiag.service.daemon import Daemon

    for key in ("sysfs", "procfs", "rootfs"):
        given = getattr(ns, key)
        if given is not None and not Path(given).is_dir():
            from posdiag.errors import UsageError

            raise UsageError(f"--{key} {given}: no such directory")
    if ns.verbose == 0:  # a service says what it does at info level (journald keeps it)
        import logging

        logging.getLogger().setLevel(logging.INFO)
    daemon = Daemon(Path(ns.config) if ns.config else None,
                    {k: getattr(ns, k) for k in ("sysfs", "procfs", "rootfs")})
    return daemon.run()
