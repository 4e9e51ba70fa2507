"""``posdiag run``: the checks as a service a fleet can rely on.

One main loop owns all state: it turns status changes into events (with a hold-off against
flapping), queues heartbeats and reports in the on-disk outbox, answers commands, and pings the
systemd watchdog — from this loop only, so a hung loop is restarted. Due checks run through the
same runner as the CLI, but on one worker thread (``scheduler.Worker``): a payment host that
black-holes for 15 s must not hold up heartbeats, presence or a ``busy`` answer. The worker's
results come back through the loop's queue, as paho's network thread and the udev thread put
their work there; a worker stuck far beyond every check's time limit stops the watchdog pings.

Every command with a usable Response Topic gets exactly one reply: ``selftest`` and
``diagnose`` wait for the worker, at most ``max_queued_commands`` of them behind the running one;
beyond that, or while stopping, the answer is ``busy``, built on the MQTT thread without running
anything. Rejected commands are logged as a summary per minute, not one line each.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from posdiag import report
from posdiag.checks import REGISTRY
from posdiag.checks.base import AnySpec
from posdiag.config import Config, as_dict, load
from posdiag.errors import ConfigError
from posdiag.paths import Roots
from posdiag.results import CheckResult, Status
from posdiag.runner import plan, run_checks
from posdiag.service import payloads
from posdiag.service.commands import Command, CommandRejected, parse, shown
from posdiag.service.scheduler import Periodic, Scheduler, Worker
from posdiag.service.tally import Tally

log = logging.getLogger("posdiag.service.daemon")

# Which check looks at a kind of device (a bridge serves the kind its table entry names).
DEVICE_CHECKS = {"card_reader": "card_reader", "contactless": "contactless",
                 "cellular": "cellular", "printer": "printer", "chip_reader": "chip_reader"}
CAPABILITIES = ("ping", "selftest", "report", "diagnose", "history")
EX_CANTCREAT = 73
SHUTDOWN_BUDGET_S = 4.0
WAIT_CAP_S = 0.5
HOTPLUG_SETTLE_S = 2.0  # SIGTERM → exit well within systemd's and the 5 s
STORE_RETRY_S = 5.0  # a status change the outbox could not store is tried again this often
WORKER_VERBS = frozenset({"selftest", "diagnose"})  # these run checks, on the worker
MAX_QUICK_COMMANDS = 64  # ping/report waiting; the link's Receive Maximum keeps it far lower
STALL_MARGIN_S = 60.0  # a worker job this far past the sum of all check time limits is stuck
# Read once at start: a reload cannot change them (the outbox is open; moving it would split
# the seq and its undelivered messages between two files; the flight log is open and sized).
RESTART_KEYS = ("outbox.path", "outbox.max_bytes", "paths.state_dir", "recorder.enabled",
                "recorder.path", "recorder.hours", "recorder.probe_host",
                "recorder.probe_interval_s", "recorder.probe_timeout_s")


@dataclass
class _Published:
    status: Status
    at: float


class Daemon:
    def __init__(self, config_path: Path | None, overrides: dict[str, str | None],
                 specs: Sequence[AnySpec] = REGISTRY, environ: dict[str, str] | None = None
                 ) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self.specs = tuple(specs)
        self.environ = dict(os.environ if environ is None else environ)
        self.config = self._load()
        self.roots = self._roots(self.config)
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.results: dict[str, CheckResult] = {}
        self.published: dict[str, _Published] = {}
        self.started = time.monotonic()
        self._stop = False
        self._reload = False
        self._open: dict[int, Command] = {}  # accepted, not answered yet (by id)
        self._closing = False
        self._commands_lock = threading.Lock()  # both are shared with the MQTT thread
        self.rejections = Tally(log, "commands not answered or refused")
        self._cycle_running = False
        self._stall_logged = False
        self._started_config = self.config  # what restart-only keys are in effect
        self._needs_restart: tuple[str, ...] = ()
        self._last_status_line = ""
        from posdiag.drivers.procfs.kernel import boot_id

        self.boot_id = boot_id(self.roots.procfs)

    # -- configuration --------------------------------------------------------------------------
    def _load(self) -> Config:
        return load(self.config_path, {s.name: s.config_type for s in self.specs})

    def _roots(self, cfg: Config) -> Roots:
        pick = {k: self.overrides.get(k) or getattr(cfg.paths, k)
                for k in ("sysfs", "procfs", "rootfs")}
        return Roots(Path(pick["sysfs"]), Path(pick["procfs"]), Path(pick["rootfs"]))

    @property
    def topics(self) -> payloads.Topics:
        return payloads.Topics(self.config.mqtt.topic_prefix, self.config.terminal_id)

    def intervals(self) -> dict[str, float]:
        d = self.config.daemon
        return {s.name: (self.config.check(s.name).interval_s or d.check_interval_s)
                for s in plan(self.specs, self.config).run}

    @property
    def valid_for_s(self) -> float:
        # Without news for two heartbeats (plus a margin) the backend should call it stale.
        return max(self.config.report.valid_for_s, 2 * self.config.daemon.heartbeat_s + 60)

    # -- life cycle -----------------------------------------------------------------------------
    def run(self) -> int:
        from posdiag.service.mqtt import Link
        from posdiag.service.outbox import Outbox, OutboxCorrupt, OutboxError
        from posdiag.service.sdnotify import Notifier

        self.notifier = Notifier.from_environment(self.environ)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        path, cap = Path(self.config.outbox.path), self.config.outbox.max_bytes
        try:
            try:
                self.outbox = Outbox(path, cap)
            except OutboxCorrupt as e:
                log.error("outbox damaged (%s); moving it aside and starting a new one", e)
                self.outbox = Outbox.recover(path, cap)
        except OutboxError as e:  # cannot create it at all: systemd restarts us later
            log.error("cannot open the outbox: %s", e)
            return EX_CANTCREAT
        self.link = self._new_link(Link)
        self.link.start()
        self.worker = Worker(lambda outcome: self.inbox.put(("done", outcome))).start()
        self.watcher = self._start_watcher()
        self.recorder = self._start_recorder()
        self._put("event", lambda seq: payloads.agent_started(self.config.terminal_id, seq))

        d = self.config.daemon
        jitter = d.jitter_percent / 100
        self.scheduler = Scheduler(self.intervals(), jitter=jitter)
        self.heartbeat = Periodic(d.heartbeat_s, jitter=jitter)
        self.report_timer = Periodic(d.report_s, jitter=jitter)
        self._run_checks(self.scheduler.due(), first=True)
        self._enqueue_report()
        self.notifier.ready()
        self._update_status_line()
        log.info("posdiag running as %s; %d checks", self.config.terminal_id, len(self.results))
        watchdog_s = self.notifier.watchdog_interval_s
        last_ping = time.monotonic()
        if watchdog_s:
            self.notifier.watchdog()

        while not self._stop:
            # The cap bounds how late a signal is acted on: Python runs handlers in the main
            # thread, and one delivered to another thread does not interrupt this wait.
            # While a cycle runs, due checks wait for it: its end arrives on the queue.
            next_check = 3600.0 if self._cycle_running else self.scheduler.seconds_until_next()
            timeout = min(next_check, self.heartbeat.seconds_left(),
                          self.report_timer.seconds_left(), self._holdoff_wait(), WAIT_CAP_S)
            if watchdog_s:
                timeout = min(timeout, max(0.0, last_ping + watchdog_s - time.monotonic()))
            try:
                kind, item = self.inbox.get(timeout=max(0.05, timeout))
                self._handle(kind, item)
            except queue.Empty:
                pass
            if self._reload:
                self._reload = False
                self._do_reload()
            if self._stop:
                break
            due = [] if self._cycle_running else self.scheduler.due()
            if due:
                self._start_cycle(due)
            self._flush_holdoffs()
            if self.heartbeat.due():
                self.heartbeat.done()
                self._enqueue_heartbeat()
            if self.report_timer.due():
                self.report_timer.done()
                self._enqueue_report()
            if watchdog_s and time.monotonic() - last_ping >= watchdog_s \
                    and not self._worker_stalled():
                self.notifier.watchdog()
                last_ping = time.monotonic()
            self.rejections.flush()
            self._update_status_line()
        return self._shutdown()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True
        self.inbox.put(("wake", None))

    def _shutdown(self) -> int:
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        self.notifier.stopping()
        log.info("stopping: delivering what is queued, then going offline")
        if self.watcher is not None:
            self.watcher.stop()
        with self._commands_lock:
            self._closing = True
            unanswered, self._open = list(self._open.values()), {}
        for cmd in unanswered:  # queued or on the worker: they still get their one reply
            self._reply(cmd, error=("busy", "the agent is stopping; ask again when it is back "
                                            "online"))
        self.worker.stop()
        if self.recorder is not None:
            self.recorder.stop()
        self.rejections.flush(force=True)
        offline = payloads.dumps(payloads.status(self.config.terminal_id, "offline",
                                                 self.boot_id))
        self.link.stop(offline, timeout_s=max(0.5, deadline - time.monotonic()))
        self.outbox.close()
        return 0

    # -- work items -----------------------------------------------------------------------------
    def _handle(self, kind: str, item: Any) -> None:
        if kind == "command":
            self._execute(item)
        elif kind == "done":  # a worker job's outcome, to be taken in on this loop
            item()
        elif kind == "udev":
            self._on_hotplug(item)

    def _on_command(self, verb: str, payload: bytes, response_topic: str | None,
                    correlation: bytes | None, ticket: int | None = None) -> None:
        """Called from the MQTT thread: validate and queue, or answer at once with an error."""
        try:
            cmd = parse(verb, payload, response_topic=response_topic, correlation=correlation,
                        known_checks=frozenset(s.name for s in self.specs), ticket=ticket)
        except CommandRejected as e:
            self.rejections.add(e.code, f"command '{shown(verb)}' refused ({e.code}): "
                                        f"{e.message}")
            if e.answerable:
                self._reply(Command(verb, {}, response_topic, correlation, ticket),
                            error=(e.code, e.message))
            else:  # nowhere to answer: only counted (and the delivery acknowledged)
                self.link.settle(ticket)
            return
        on_worker = cmd.verb in WORKER_VERBS
        limit = self.config.daemon.max_queued_commands + 1 if on_worker else MAX_QUICK_COMMANDS
        with self._commands_lock:
            waiting = sum(1 for c in self._open.values() if (c.verb in WORKER_VERBS) == on_worker)
            closing = self._closing
            accepted = waiting < limit and not closing
            if accepted:
                self._open[id(cmd)] = cmd
        if not accepted:
            why = ("the agent is stopping" if closing else
                   f"{waiting} commands that run checks are already running or waiting"
                   if on_worker else f"{waiting} commands are already waiting")
            self.rejections.add("busy", f"command '{cmd.verb}' answered busy: {why}")
            self._reply(cmd, error=("busy", f"{why}; try again later"))
            return
        self.inbox.put(("command", cmd))

    def _execute(self, cmd: Command) -> None:
        try:
            if cmd.verb == "ping":
                from posdiag import __version__

                self._answer(cmd, result={"pong": True, "version": __version__,
                                          "uptime_s": round(time.monotonic() - self.started, 1)})
            elif cmd.verb == "selftest":
                names = list(cmd.args.get("checks") or [])
                wanted = names or [s.name for s in plan(self.specs, self.config).run]

                def answer(fresh: list[CheckResult]) -> None:
                    self._apply_results(wanted, fresh)
                    rep = report.build(fresh, terminal_id=self.config.terminal_id, seq=0,
                                       valid_for_s=self.valid_for_s, boot_id=self.boot_id)
                    self._answer(cmd, result=rep.to_dict())

                self.worker.submit(self._checks_job(wanted), answer,
                                   partial(self._command_failed, cmd))
            elif cmd.verb == "report":
                self._answer(cmd, result=self._enqueue_report())
            elif cmd.verb == "history":
                self._answer(cmd, result=self._history(cmd))
            elif cmd.verb == "diagnose":
                self.worker.submit(partial(self._diagnose, cmd),
                                   lambda doc: self._answer(cmd, result=doc),
                                   partial(self._command_failed, cmd))
        except Exception as e:  # a command must never take the daemon down
            self._command_failed(cmd, e)

    def _command_failed(self, cmd: Command, e: BaseException) -> None:
        if isinstance(e, CommandRejected):
            self.rejections.add(e.code, f"command '{cmd.verb}' refused ({e.code}): {e.message}")
            self._answer(cmd, error=(e.code, e.message))
            return
        log.error("command %s failed", cmd.verb, exc_info=e)
        self._answer(cmd, error=("failed", f"{type(e).__name__}: {e}"[:300]))

    def _answer(self, cmd: Command, *, result: dict[str, Any] | None = None,
                error: tuple[str, str] | None = None) -> None:
        """The one reply of an accepted command."""
        with self._commands_lock:
            if self._open.pop(id(cmd), None) is None:
                return  # already answered (busy, while stopping)
        self._reply(cmd, result=result, error=error)

    def _history(self, cmd: Command) -> dict[str, Any]:
        """A window of the flight log, read here: at most 180 records, well under a millisecond."""
        from posdiag import history
        from posdiag.flightlog import FlightLog, FlightLogError, path_for

        t0, t1 = history.remote_window(time.time(), cmd.args)
        started = self._started_config  # the file in use, whatever a reload said since
        path = path_for(started.paths.state_dir, started.recorder.path)
        try:
            with FlightLog.open(path) as fl:
                return history.to_rows(fl.minutes(t0, t1), t0, t1)
        except FlightLogError as e:
            raise CommandRejected("failed", f"no flight log: {e}") from None

    def _diagnose(self, cmd: Command) -> dict[str, Any]:
        try:
            from posdiag.diagnosis import diagnose_remote
        except ImportError:
            raise CommandRejected("unknown_verb", "diagnose is not available in this "
                                                  "version") from None
        return diagnose_remote(self, cmd.args)

    def _reply(self, cmd: Command, *, result: dict[str, Any] | None = None,
               error: tuple[str, str] | None = None) -> None:
        if not cmd.response_topic:
            self.rejections.add("no_response_topic", f"command '{shown(cmd.verb)}' has no "
                                                     "response topic; no reply sent")
            self.link.settle(cmd.ticket)
            return
        doc = payloads.reply(self.config.terminal_id, cmd.verb, result=result, error=error)
        self.link.reply(cmd.response_topic, cmd.correlation, payloads.dumps(doc),
                        ticket=cmd.ticket)

    # -- checks, events, reports ----------------------------------------------------------------
    def _run_checks(self, names: Sequence[str], *, only: Sequence[str] = (),
                    first: bool = False) -> list[CheckResult]:
        """Run checks here, on the calling thread (the first cycle, before READY=1)."""
        wanted = list(only) or list(names)
        return self._apply_results(wanted, self._checks_job(wanted)(), first=first)

    def _checks_job(self, wanted: Sequence[str]) -> Callable[[], list[CheckResult]]:
        # The config and roots of now: a reload during the run does not mix two of them.
        return partial(run_checks, self.specs, self.config, self.roots, only=list(wanted))

    def _start_cycle(self, names: Sequence[str]) -> None:
        wanted = list(names)

        def finished(fresh: list[CheckResult]) -> None:
            self._cycle_running = False
            self._apply_results(wanted, fresh)

        def failed(e: BaseException) -> None:  # a runner bug: say it, try again next interval
            self._cycle_running = False
            self.scheduler.done(wanted)
            log.error("check cycle failed: %s: %s", type(e).__name__, e, exc_info=e)

        self._cycle_running = True
        self.worker.submit(self._checks_job(wanted), finished, failed)

    def _worker_stalled(self) -> bool:
        """True when a worker job has run far beyond every check's time limit together: the
        watchdog then goes unfed and systemd restarts the service."""
        limit = STALL_MARGIN_S + sum(s.timeout(self.config.check(s.name))
                                     for s in plan(self.specs, self.config).run)
        stalled = self.worker.running_for_s() > limit
        if stalled and not self._stall_logged:
            log.error("a check run has taken over %.0f s; no more watchdog pings", limit)
        self._stall_logged = stalled
        return stalled

    def _apply_results(self, wanted: Sequence[str], fresh: list[CheckResult], *,
                       first: bool = False) -> list[CheckResult]:
        """Take in results (on the main loop): new status, events for changes."""
        self.scheduler.done(wanted)
        now = time.monotonic()
        for r in fresh:
            before = self.results.get(r.name)
            self.results[r.name] = r
            if first or r.name not in self.published:
                self.published[r.name] = _Published(r.status, now - self._holdoff())
                continue
            if before is not None and before.status is r.status:
                continue
            self._maybe_event(r, now)
        return fresh

    def _holdoff(self) -> float:
        return float(self.config.daemon.event_holdoff_s)

    def _maybe_event(self, r: CheckResult, now: float) -> None:
        pub = self.published[r.name]
        if r.status is pub.status:
            return  # flapped back before anyone was told: nothing to say
        if now - pub.at >= self._holdoff():
            self._emit_change(pub.status, r, now)

    def _emit_change(self, before: Status, r: CheckResult, now: float) -> None:
        if not self._put("event", lambda seq: payloads.status_changed(
                self.config.terminal_id, seq, before, r)):
            # Not stored (counted as store_failed): the backend still believes ``before``, so
            # keep that as published and try again in STORE_RETRY_S (the hold-off clock).
            self.published[r.name] = _Published(before, now - self._holdoff() + STORE_RETRY_S)
            return
        self.published[r.name] = _Published(r.status, now)
        log.info("%s: %s -> %s (%s)", r.name, before, r.status, r.reason)

    def _flush_holdoffs(self) -> None:
        """After a hold-off, say where a flapping check ended up (once)."""
        now = time.monotonic()
        for name, pub in list(self.published.items()):
            r = self.results.get(name)
            if r is not None and r.status is not pub.status and now - pub.at >= self._holdoff():
                self._emit_change(pub.status, r, now)

    def _holdoff_wait(self) -> float:
        now = time.monotonic()
        waits = [pub.at + self._holdoff() - now for name, pub in self.published.items()
                 if name in self.results and self.results[name].status is not pub.status]
        return max(0.0, min(waits)) if waits else 3600.0

    def _ordered_results(self) -> list[CheckResult]:
        order = {s.name: i for i, s in enumerate(self.specs)}
        return sorted(self.results.values(), key=lambda r: order.get(r.name, 999))

    def _enqueue_report(self) -> dict[str, Any]:
        box: dict[str, Any] = {}

        def build(seq: int) -> bytes:
            rep = report.build(self._ordered_results(), terminal_id=self.config.terminal_id,
                               seq=seq, valid_for_s=self.valid_for_s, boot_id=self.boot_id)
            box["doc"] = rep.to_dict()
            box["doc"]["outbox"] = self.outbox.health().to_dict()  # drops reach the backend
            return payloads.dumps(box["doc"])

        self._put("report", build)
        return box.get("doc", {})

    def _enqueue_heartbeat(self) -> None:
        self._put("heartbeat", lambda seq: payloads.heartbeat(
            self.config.terminal_id, seq, self.results.values(), valid_for_s=self.valid_for_s,
            outbox=self.outbox.health(), uptime_s=time.monotonic() - self.started))

    def _put(self, kind: str, build: Any) -> int:
        from posdiag.service.outbox import MessageRefused, OutboxError

        def encoded(seq: int) -> bytes:
            doc = build(seq)
            return doc if isinstance(doc, bytes) else payloads.dumps(doc)

        try:
            seq = self.outbox.put(kind, self.topics.of(kind), encoded)
        except MessageRefused as e:  # oversize: counted by the outbox, said here
            log.error("could not queue a %s: %s", kind, e)
            return 0
        except OutboxError:  # disk full or failing: counted, and said once, by the outbox
            return 0
        self.link.wake()
        return seq

    # -- hotplug --------------------------------------------------------------------------------
    def _start_watcher(self) -> Any:
        from posdiag.drivers.errors import NotSupported
        from posdiag.drivers.hotplug import Watcher

        try:
            return Watcher(lambda ev: self.inbox.put(("udev", ev))).start()
        except (NotSupported, OSError) as e:
            log.warning("no hotplug events: %s", e)
            return None

    def _start_recorder(self) -> Any:
        from posdiag.service.recorder import Recorder

        def cellular() -> Mapping[str, Any]:
            r = self.results.get("cellular")  # read across threads: one dict lookup
            return r.metrics if r is not None else {}

        rec = Recorder.from_config(self.config, self.roots, cellular)
        return rec.start() if rec is not None else None

    def _on_hotplug(self, ev: Any) -> None:
        self._put("event", lambda seq: payloads.device_event(
            self.config.terminal_id, seq, ev.action == "add", ev.as_event_device()))
        check = DEVICE_CHECKS.get(ev.serves if ev.kind == "bridge" else ev.kind or "")
        if getattr(ev, "transport", None) == "hid":
            check = "hid_card_reader"  # a keyboard-mode reader: presence, not a serial probe
        if check and check in self.scheduler.intervals:
            def looked(fresh: list[CheckResult]) -> None:
                (result,) = self._apply_results([check], fresh) or (None,)
                if ev.action == "add" and result is not None and result.reason == "no_device":
                    # A port can be announced a moment before it can be found and opened (udev
                    # rules, firmware start-up): look once more after it has settled.
                    self.scheduler.run_in(check, HOTPLUG_SETTLE_S)

            self.worker.submit(self._checks_job([check]), looked,
                               lambda e: log.error("hotplug check of %s failed: %s", check, e))

    # -- reload and status ----------------------------------------------------------------------
    def _do_reload(self) -> None:
        self.notifier.reloading()
        try:
            new = self._load()
        except ConfigError as e:
            log.error("reload rejected, keeping the running configuration: %s", e)
            self.notifier.ready()
            return
        old = self.config
        changed = changed_keys(as_dict(old), as_dict(new))
        # Restart-only keys compare with what is in effect: the config the daemon started with.
        self._needs_restart = tuple(k for k in changed_keys(as_dict(self._started_config),
                                                            as_dict(new))
                                    if k in RESTART_KEYS)
        applied = [k for k in changed if k not in RESTART_KEYS]
        self.config = new
        self.roots = self._roots(new)
        d, jitter = new.daemon, new.daemon.jitter_percent / 100
        self.scheduler.update(self.intervals(), jitter=jitter)
        for name in [n for n in self.results if n not in self.scheduler.intervals]:
            del self.results[name]  # disabled now: no stale result in reports and heartbeats
            self.published.pop(name, None)
        self.heartbeat.update(d.heartbeat_s, jitter=jitter)
        self.report_timer.update(d.report_s, jitter=jitter)
        if (new.mqtt, new.terminal_id) != (old.mqtt, old.terminal_id):
            from posdiag.service.mqtt import Link

            log.info("broker settings changed: reconnecting")
            offline = payloads.dumps(payloads.status(old.terminal_id, "offline", self.boot_id))
            self.link.stop(offline, timeout_s=2.0)
            self.link = self._new_link(Link)
            self.link.start()
        else:
            if d.publish_rate_per_s != old.daemon.publish_rate_per_s:
                self.link.set_rate(d.publish_rate_per_s)
            if d.heartbeat_s != old.daemon.heartbeat_s:
                self.link.announce()  # presence tells the backend the cadence to expect
        if self._needs_restart:
            kept = ", ".join(f"{k} = {_value_at(as_dict(self._started_config), k)!r}"
                             for k in self._needs_restart)
            log.warning("configuration partly reloaded: applied %s; not applied until a "
                        "restart (systemctl restart posdiag): %s (still %s)",
                        ", ".join(applied) or "nothing else", ", ".join(self._needs_restart),
                        kept)
        else:
            back = [k for k in changed if k in RESTART_KEYS]  # to what has been in use all along
            said = [f"applied {k}" for k in applied] + [f"{k} back to the value in use"
                                                        for k in back]
            log.info("configuration reloaded: %s", ", ".join(said) or "nothing changed")
        self.notifier.ready()

    def _new_link(self, link_cls: Any) -> Any:
        from posdiag.service.mqtt import Backoff

        tid = self.config.terminal_id
        d = self.config.daemon
        return link_cls(
            self.config.mqtt, self.topics, self.outbox, client_id=f"posdiag-{tid}",
            will=payloads.dumps(payloads.status(tid, "lost", self.boot_id)),
            birth=lambda: payloads.dumps(payloads.status(  # the config of the moment
                tid, "online", self.boot_id, capabilities=CAPABILITIES,
                checks=[s.name for s in self.specs],
                heartbeat_s=self.config.daemon.heartbeat_s,
                outbox_id=self.outbox.outbox_id)),
            on_command=self._on_command, rate_per_s=d.publish_rate_per_s,
            window=self.config.mqtt.max_inflight,
            backoff=Backoff(self.config.mqtt.reconnect_min_s, self.config.mqtt.reconnect_max_s),
            connect_timeout_s=self.config.mqtt.connect_timeout_s)

    def _update_status_line(self) -> None:
        results = list(self.results.values())
        worst = Status.worst(r.status for r in results)
        bad = [f"{r.name} ({r.reason})" for r in self._ordered_results()
               if r.status in (Status.FAIL, Status.UNKNOWN, Status.WARN)]
        health = self.outbox.health()
        line = (f"{worst}: {', '.join(bad[:3]) or 'all checks ok'}"
                f"{' …' if len(bad) > 3 else ''}; mqtt "
                f"{'connected' if self.link.connected else 'disconnected'}; "
                f"outbox {health.depth}")
        if self._needs_restart:
            line += f"; restart to apply {', '.join(self._needs_restart)}"
        if line != self._last_status_line:
            self._last_status_line = line
            self.notifier.status(line)


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two ``config.as_dict`` trees."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b or (key in old) != (key in new):
            out.append(f"{prefix}{key}")
    return out


def _value_at(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree
