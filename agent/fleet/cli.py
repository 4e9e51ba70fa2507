"""``posdiag fleet listen | status | command``: the backend side of the command line.

Broker settings come from flags; with ``--config FILE`` the agent's ``[mqtt]`` section of that file
gives the defaults (a bench or a demo where backend and terminal share a config), flags win.
Exit codes: see ``posdiag.exit_codes`` (shown by each action's ``--help`` and docs/cli.md).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from posdiag.fleet.connection import BrokerSettings
    from posdiag.fleet.store import Location

from posdiag.exit_codes import EX_IOERR, EX_NOINPUT, EX_UNAVAILABLE
from posdiag.exit_codes import FAIL as EXIT_REPLY_ERROR
from posdiag.exit_codes import OK as EXIT_REPLY_OK
from posdiag.exit_codes import UNKNOWN as EXIT_NO_REPLY


def default_db() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "posdiag", "fleet.sqlite")


def add_parser(subparsers: Any, common_parents: list[argparse.ArgumentParser]) -> None:
    """Add ``fleet`` and its actions to the ``posdiag`` sub-command parsers."""
    import argparse

    from posdiag.exit_codes import epilog

    make = type(common_parents[0]) if common_parents else argparse.ArgumentParser

    broker = make(add_help=False)
    g = broker.add_argument_group("broker")
    g.add_argument("--host", help="broker host (default localhost)")
    g.add_argument("--port", type=int, help="broker port (default 8883 with TLS, 1883 without)")
    g.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                   help="TLS with server verification (default on)")
    g.add_argument("--ca-file", metavar="FILE", help="CA bundle (default: system trust store)")
    g.add_argument("--cert-file", metavar="FILE", help="client certificate (PEM)")
    g.add_argument("--key-file", metavar="FILE", help="client private key (PEM)")
    g.add_argument("--username", help="MQTT user name")
    g.add_argument("--password-file", metavar="FILE",
                   help="file whose first line is the MQTT password")
    g.add_argument("--prefix", help="topic prefix (default posdiag/v1)")
    g.add_argument("--keepalive", type=int, metavar="SECONDS", help="keep-alive (default 60)")

    db = make(add_help=False)
    db.add_argument("--db", metavar="PATH|URL", default=default_db(),
                    help="fleet database: a file path or sqlite:///ABSOLUTE/PATH "
                         "(default %(default)s)")

    fl = subparsers.add_parser("fleet", help="backend side: collect what terminals publish, "
                               "show the fleet, send commands",
                               description="Reference backend consumer for posdiag terminals.")
    sub = fl.add_subparsers(dest="fleet_command", metavar="ACTION", required=True,
                            parser_class=type(fl))

    ls = sub.add_parser("listen", parents=[*common_parents, broker, db],
                        help="subscribe to every terminal and store what arrives",
                        description="Subscribe to presence, reports, heartbeats and events, "
                                    "validate them against the schemas and store them, until "
                                    "SIGINT or SIGTERM.",
                        epilog=epilog("fleet listen"))
    ls.add_argument("--share", metavar="GROUP",
                    help="MQTT 5 shared subscription group: consumers of one group split the "
                         "reports, heartbeats and events (give them the same --db)")
    ls.add_argument("--client-id", metavar="ID",
                    help="fixed client id: the broker keeps the session and queues messages "
                         "while this consumer is down (see --session-expiry)")
    ls.add_argument("--session-expiry", type=int, metavar="SECONDS",
                    help="how long the broker keeps the session (default 86400 with "
                         "--client-id, else 0)")
    ls.add_argument("--history-rows", type=int, default=10_000, metavar="N",
                    help="history rows kept per terminal (default %(default)s)")
    ls.add_argument("--history-days", type=float, default=30.0, metavar="DAYS",
                    help="history, gaps and rejected payloads kept this long (default "
                         "%(default)g)")
    ls.add_argument("--invalid-rows", type=int, default=1_000, metavar="N",
                    help="rejected payloads kept (default %(default)s)")
    ls.set_defaults(func=cmd_listen)

    st = sub.add_parser("status", parents=[*common_parents, db], help="show the fleet",
                        description="One line per terminal: presence, health, failing checks, "
                                    "last seen, stale, seq gaps.",
                        epilog=epilog("fleet status"))
    st.add_argument("--json", action="store_true", help="print exactly one JSON document")
    st.add_argument("--reorder-window", type=float, default=60.0, metavar="SECONDS",
                    help="a seq gap younger than this may still fill (out-of-order delivery) "
                         "and is not counted yet (default %(default)g)")
    st.set_defaults(func=cmd_status)

    co = sub.add_parser("command", help="send a command to a terminal and print its reply",
                        epilog=epilog("fleet command"))
    co.add_argument("terminal", metavar="TERMINAL_ID")
    verbs = co.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(fl))
    timing = make(add_help=False)
    timing.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the reply (default %(default)g)")
    parents = [*common_parents, broker, timing]
    v = verbs.add_parser("ping", parents=parents, epilog=epilog("fleet command"),
                         help="is the agent answering?")
    v.set_defaults(func=cmd_command)
    v = verbs.add_parser("report", parents=parents, epilog=epilog("fleet command"),
                         help="the agent's current full report")
    v.set_defaults(func=cmd_command)
    v = verbs.add_parser("selftest", parents=parents, epilog=epilog("fleet command"),
                         help="run the checks now")
    v.add_argument("--check", action="append", default=[], metavar="NAME",
                   help="run only this check (repeatable)")
    v.set_defaults(func=cmd_command)
    v = verbs.add_parser("diagnose", parents=parents, epilog=epilog("fleet command"),
                         help="diagnose a symptom",
                         description="--lang selects the language of the diagnosis texts.")
    v.add_argument("symptom")
    v.set_defaults(func=cmd_command)
    v = verbs.add_parser("history", parents=parents, epilog=epilog("fleet command"),
                         help="a window of the terminal's network flight recorder")
    when = v.add_mutually_exclusive_group()
    when.add_argument("--since", metavar="DURATION", help="90m, 2h … back, or an ISO time")
    when.add_argument("--at", metavar="TIME", help="HH:MM (terminal's local time) or ISO time")
    v.add_argument("--minutes", type=int, metavar="N", help="window length, 1-180 (default 60)")
    v.set_defaults(func=cmd_command)


# --------------------------------------------------------------------------------------------
def _settings(ns: argparse.Namespace) -> tuple[BrokerSettings, str]:
    """Broker settings and topic prefix: flags over ``--config``'s ``[mqtt]`` over defaults."""
    import dataclasses

    from posdiag.errors import UsageError
    from posdiag.fleet.connection import BrokerSettings
    from posdiag.fleet.consumer import DEFAULT_PREFIX, check_prefix

    base, prefix = BrokerSettings(), DEFAULT_PREFIX
    if getattr(ns, "config", None):
        from pathlib import Path

        from posdiag import config as cfgmod
        from posdiag.checks import REGISTRY

        cfg = cfgmod.load(Path(ns.config), {s.name: s.config_type for s in REGISTRY})
        base, prefix = BrokerSettings.from_mqtt_config(cfg.mqtt), cfg.mqtt.topic_prefix
    flags = {"host": ns.host, "port": ns.port, "tls": ns.tls, "ca_file": ns.ca_file,
             "cert_file": ns.cert_file, "key_file": ns.key_file, "username": ns.username,
             "password_file": ns.password_file, "keepalive_s": ns.keepalive}
    try:
        settings = dataclasses.replace(base, **{k: v for k, v in flags.items() if v is not None})
        prefix = check_prefix(ns.prefix if ns.prefix is not None else prefix)
    except ValueError as e:
        raise UsageError(str(e)) from e
    from posdiag.fleet.connection import secret_file_warnings

    for warning in secret_file_warnings(settings):
        print(f"posdiag: warning: {warning}", file=sys.stderr)
    return settings, prefix


def _location(ns: argparse.Namespace) -> Location:
    from posdiag.errors import UsageError
    from posdiag.fleet.store import parse_location

    try:
        return parse_location(ns.db)
    except ValueError as e:
        raise UsageError(f"--db {e}") from e


def _validator_or_exit() -> int | None:
    """EX_UNAVAILABLE, said in one line, when jsonschema (the ``fleet`` extra) is missing."""
    from posdiag.fleet.consumer import require_validator
    from posdiag.fleet.errors import FleetError

    try:
        require_validator()
    except FleetError as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_UNAVAILABLE
    return None


class _Created:
    """The database file and folders a run is about to create, so that a run that fails
    before it stored anything leaves nothing behind."""

    def __init__(self, path: Path) -> None:
        self.files = [] if path.exists() else [path.with_name(path.name + s)
                                               for s in ("", "-wal", "-shm", "-journal")]
        self.folders = [d for d in path.absolute().parents if not d.exists()]

    def remove(self) -> None:
        import contextlib

        for f in self.files:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        for d in self.folders:  # innermost first; a folder someone filled meanwhile stays
            with contextlib.suppress(OSError):
                d.rmdir()


def cmd_listen(ns: argparse.Namespace) -> int:
    import signal
    import threading

    from posdiag.errors import UsageError
    from posdiag.fleet.consumer import Consumer
    from posdiag.fleet.errors import FleetError, StorageError
    from posdiag.fleet.store import Retention, open_store

    # Everything that can refuse the run is checked before the database is created.
    location = _location(ns)
    if (code := _validator_or_exit()) is not None:
        return code
    settings, prefix = _settings(ns)
    expiry = ns.session_expiry if ns.session_expiry is not None else (
        86400 if ns.client_id else 0)
    try:
        retention = Retention(history_rows_per_terminal=ns.history_rows,
                              history_max_age_s=ns.history_days * 86400.0,
                              invalid_rows=ns.invalid_rows)
    except ValueError as e:
        raise UsageError(str(e)) from e
    created = _Created(location.path)
    try:
        store = open_store(location, retention=retention)
    except StorageError as e:
        created.remove()
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_IOERR
    started = False
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT,
                                                                      signal.SIGTERM)}
    consumer = None
    try:
        store.prune()
        try:
            consumer = Consumer(store, settings, prefix=prefix, share=ns.share,
                                client_id=ns.client_id, session_expiry_s=expiry)
        except ValueError as e:
            raise UsageError(str(e)) from e
        consumer.start()
        started = True
        print(f"posdiag: listening on {settings.describe()} under {prefix}/ "
              f"(database {location}); stop with Ctrl-C", file=sys.stderr)
        while not stop.is_set() and not consumer.failed.is_set():
            stop.wait(0.5)
    except StorageError as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_IOERR
    except FleetError as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_UNAVAILABLE
    finally:
        if consumer is not None:
            consumer.stop()
        store.close()
        if not started:
            created.remove()
        for s, handler in previous.items():
            signal.signal(s, handler)
    counts = consumer.counts()
    print("posdiag: stopped; " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                  or "no messages"), file=sys.stderr)
    if consumer.failure is not None:
        print(f"posdiag: {consumer.failure}", file=sys.stderr)
        return EX_IOERR if isinstance(consumer.failure, StorageError) else EX_UNAVAILABLE
    return 0


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def cmd_status(ns: argparse.Namespace) -> int:
    import json
    import time

    from posdiag.fleet.errors import StorageError
    from posdiag.fleet.store import open_store
    from posdiag.render import clip, pad
    from posdiag.report import rfc3339

    location = _location(ns)
    try:
        store = open_store(location, create=False)
    except StorageError as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_NOINPUT
    now = time.time()
    with store:
        views = store.terminals(now=now, reorder_window_s=ns.reorder_window)
    if ns.json:
        from datetime import UTC, datetime

        doc = {"generated_at": rfc3339(datetime.fromtimestamp(now, UTC)),
               "reorder_window_s": ns.reorder_window,
               "terminals": [v.to_dict() for v in views]}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    header = ("TERMINAL", "PRESENCE", "HEALTH", "FAILING", "LAST SEEN", "STALE", "GAPS")
    rows = []
    for v in views:
        gaps = str(v.gaps) if not v.gaps else f"{v.gaps} ({v.missing} lost)"
        if v.pending_gaps:
            gaps += f" +{v.pending_gaps} pending"
        rows.append((v.terminal_id, v.presence or "-", v.health or "-",
                     clip(", ".join(f"{f.name}:{f.reason}" for f in v.failing) or "-", 48),
                     "-" if v.last_seen is None else _ago(now - v.last_seen),
                     "stale" if v.stale else "", gaps))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip())
    if not rows:
        print("(no terminal has been seen yet)")
    return 0


def cmd_command(ns: argparse.Namespace) -> int:
    import json

    from posdiag.errors import UsageError
    from posdiag.fleet.command import Command, Commander
    from posdiag.fleet.errors import BadReply, CommandTimeout, CommandUndelivered, FleetError

    if (code := _validator_or_exit()) is not None:
        return code
    payload: dict[str, Any] = {}
    if ns.verb == "selftest" and ns.check:
        payload["checks"] = ns.check
    elif ns.verb == "diagnose":
        payload["symptom"] = ns.symptom
        if ns.lang:
            payload["lang"] = ns.lang
    elif ns.verb == "history":
        payload.update({k: getattr(ns, k) for k in ("since", "at", "minutes")
                        if getattr(ns, k) is not None})
    try:
        command = Command(ns.terminal, ns.verb, payload)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if not 0 < ns.timeout <= 3600:
        raise UsageError(f"--timeout {ns.timeout:g}: must be more than 0 and at most 3600")
    settings, prefix = _settings(ns)
    try:
        with Commander(settings, prefix=prefix) as commander:
            reply = commander.send(command, timeout_s=ns.timeout)
    except (CommandTimeout, CommandUndelivered) as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EXIT_NO_REPLY
    except BadReply as e:
        print(f"posdiag: {e}; payload: {e.payload[:500]!r}", file=sys.stderr)
        return EXIT_NO_REPLY
    except FleetError as e:
        print(f"posdiag: {e}", file=sys.stderr)
        return EX_UNAVAILABLE
    print(json.dumps(reply, ensure_ascii=False, indent=2))
    if reply["ok"]:
        return EXIT_REPLY_OK
    err = reply["error"]
    print(f"posdiag: {ns.terminal}: {ns.verb}: {err['code']}: {err['message']}", file=sys.stderr)
    return EXIT_REPLY_ERROR
