"""The ``posdiag`` command line. Imports are lazy so ``posdiag --version`` starts fast."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import argparse

    from posdiag.config import Config
    from posdiag.paths import Roots

EX_USAGE = 64
EX_SOFTWARE = 70
EX_CONFIG = 78


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
        return 130
    except BrokenPipeError:
        return 0


def _dispatch(argv: list[str]) -> int:
    from posdiag.errors import ConfigError, UsageError

    parser = _parser()
    ns = parser.parse_args(argv)
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


def _parser() -> argparse.ArgumentParser:

    from posdiag import __version__

    common = _Parser.make(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="config file (default /etc/posdiag/posdiag.toml; conf.d/*.toml beside "
                             "it are read after it)")
    common.add_argument("--sysfs", metavar="DIR", help="read the kernel's /sys from DIR")
    common.add_argument("--procfs", metavar="DIR", help="read /proc from DIR")
    common.add_argument("--rootfs", metavar="DIR", help="read files such as /etc from under DIR")
    common.add_argument("--lang", choices=("en", "zh_CN"),
                        help="language of texts (default: config, then LC_ALL/LANG)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    p = _Parser.make(prog="posdiag", description="Diagnostic agent for Linux POS terminals.")
    p.add_argument("--version", action="version", version=f"posdiag {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=type(p))

    st = sub.add_parser("selftest", parents=[common], help="check this terminal now",
                        description="Run the checks and print what is wrong. Exit code: 0 ok, "
                                    "1 warning, 2 failure, 3 unknown.")
    st.add_argument("--json", action="store_true", help="print exactly one JSON report")
    st.add_argument("--check", action="append", default=[], metavar="NAME",
                    help="run only this check (repeatable)")
    st.set_defaults(func=cmd_selftest)

    dg = sub.add_parser("diagnose", parents=[common],
                        help="find the cause of a merchant's complaint (刷卡失败, 交易超时 …)",
                        description="Run the checks that matter for a symptom, rank the likely "
                                    "causes with the evidence behind each, and say what to do. "
                                    "Without a symptom: list the symptoms. Exit code: 0 no fault "
                                    "found; with a likely cause the worst status of the checks "
                                    "behind the likely causes (1 warning, 2 failure, 3 unknown; "
                                    "at least 1); 3 when no fault was found but a needed check "
                                    "could not tell.")
    dg.add_argument("symptom", nargs="?", metavar="SYMPTOM",
                    help="symptom id (card-read-failure …) or its Chinese name (刷卡失败 …)")
    dg.add_argument("--json", action="store_true",
                    help="print exactly one JSON document (schema posdiag.diagnosis/1)")
    dg.set_defaults(func=cmd_diagnose)

    ch = sub.add_parser("checks", parents=[common], help="list the checks")
    ch.add_argument("--json", action="store_true", help="print the list as JSON")
    ch.set_defaults(func=cmd_checks)

    rn = sub.add_parser("run", parents=[common], help="run as a service (systemd Type=notify)",
                        description="Run the checks on their schedules, publish presence, "
                                    "heartbeats, reports and events over MQTT, answer commands.")
    rn.set_defaults(func=cmd_run)

    sw = sub.add_parser("swipe-test", parents=[common],
                        help="swipe a card to test the magnetic stripe reader",
                        description="Wait for one card swipe and report, per track, whether it "
                                    "was read correctly (structure, LRC, Luhn, expiry). Card data "
                                    "is never shown: the card number only masked. Exit code: 0 "
                                    "all tracks OK, 1 read with problems, 2 reader failure or no "
                                    "swipe.")
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

    cf = sub.add_parser("config", help="configuration")
    cfsub = cf.add_subparsers(dest="config_command", metavar="ACTION", required=True,
                              parser_class=type(p))
    cc = cfsub.add_parser("check", parents=[common],
                          help="validate the config and print the effective configuration")
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
        raise UsageError(f"unknown check {', '.join(unknown)} (known: {', '.join(sorted(known))})")

    renderer = None
    if not ns.json:
        renderer = Renderer(_texts(ns, cfg))  # type: ignore[arg-type]
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
    sys.stdout.write(cfgmod.to_toml(effective))
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from posdiag.daemon import Daemon

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
