"""Builders of every MQTT payload and topic (DESIGN §3.3); schemas in ``posdiag/schema``.

Payloads are compact JSON (no spaces): on a metered cellular link every byte is paid for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from posdiag import __version__
from posdiag.report import rfc3339
from posdiag.results import CheckResult, Status
from posdiag.schemas import IDS

KINDS = ("event", "report", "heartbeat")  # outbox priority, highest first


def dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Topics:
    """``<prefix>/<terminal_id>/…`` for one terminal."""

    prefix: str
    terminal_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.terminal_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def report(self) -> str:
        return f"{self.base}/report"

    @property
    def heartbeat(self) -> str:
        return f"{self.base}/heartbeat"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def commands(self) -> str:
        """Subscription filter for every command verb."""
        return f"{self.base}/cmd/+"

    def of(self, kind: str) -> str:
        return {"report": self.report, "heartbeat": self.heartbeat, "event": self.event}[kind]

    def verb_of(self, topic: str) -> str | None:
        head = f"{self.base}/cmd/"
        return topic[len(head):] if topic.startswith(head) else None


def status(terminal_id: str, state: str, boot_id: str | None, *, at: datetime | None = None,
           capabilities: Sequence[str] = (), checks: Sequence[str] = (),
           heartbeat_s: int | None = None, outbox_id: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": IDS["status"], "terminal_id": terminal_id, "state": state,
                           "at": rfc3339(at or now()),
                           "agent": {"version": __version__, "boot_id": boot_id}}
    if outbox_id:
        doc["agent"]["outbox_id"] = outbox_id
    if state == "online":
        doc["schemas"] = sorted(IDS.values())
        doc["capabilities"] = list(capabilities)
        doc["checks"] = list(checks)
        if heartbeat_s:
            doc["heartbeat_s"] = heartbeat_s
    return doc


@dataclass(frozen=True)
class OutboxHealth:
    depth: int = 0
    bytes: int = 0
    oldest_age_s: float | None = None
    dropped_event: int = 0
    dropped_report: int = 0
    dropped_heartbeat: int = 0
    denied: int = 0
    # Messages that could not be stored at all (full or failing file system); each used a seq.
    store_failed_event: int = 0
    store_failed_report: int = 0
    store_failed_heartbeat: int = 0
    outbox_id: str | None = None  # random, made with the outbox: a new one means seq restarted

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "depth": self.depth, "bytes": self.bytes,
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 1),
            "dropped": {"event": self.dropped_event, "report": self.dropped_report,
                        "heartbeat": self.dropped_heartbeat},
            "denied": self.denied,
            "store_failed": {"event": self.store_failed_event, "report": self.store_failed_report,
                             "heartbeat": self.store_failed_heartbeat}}
        if self.outbox_id:
            doc["id"] = self.outbox_id
        return doc


def heartbeat(terminal_id: str, seq: int, results: Iterable[CheckResult], *,
              valid_for_s: float, outbox: OutboxHealth, uptime_s: float | None = None,
              at: datetime | None = None) -> dict[str, Any]:
    t = at or now()
    results = list(results)
    doc: dict[str, Any] = {
        "schema": IDS["heartbeat"], "terminal_id": terminal_id, "seq": seq, "at": rfc3339(t),
        "status": str(Status.worst(r.status for r in results)),
        "failing": [{"name": r.name, "status": str(r.status), "reason": r.reason}
                    for r in results if r.status in (Status.WARN, Status.FAIL, Status.UNKNOWN)],
        "valid_until": rfc3339(t + timedelta(seconds=valid_for_s)),
        "outbox": outbox.to_dict(),
    }
    if uptime_s is not None:
        doc["uptime_s"] = round(uptime_s, 1)
    return doc


def status_changed(terminal_id: str, seq: int, before: Status, after: CheckResult, *,
                   at: datetime | None = None) -> dict[str, Any]:
    return {"schema": IDS["event"], "terminal_id": terminal_id, "seq": seq,
            "at": rfc3339(at or now()), "type": "status_changed", "check": after.name,
            "from": str(before), "to": str(after.status), "reason": after.reason,
            "summary": after.summary}


def device_event(terminal_id: str, seq: int, added: bool, device: Mapping[str, str | None], *,
                 at: datetime | None = None) -> dict[str, Any]:
    keys = ("kind", "vendor", "model", "vid", "pid", "devnode")
    return {"schema": IDS["event"], "terminal_id": terminal_id, "seq": seq,
            "at": rfc3339(at or now()), "type": "device_added" if added else "device_removed",
            "device": {k: device.get(k) for k in keys}}


def agent_started(terminal_id: str, seq: int, *, at: datetime | None = None) -> dict[str, Any]:
    return {"schema": IDS["event"], "terminal_id": terminal_id, "seq": seq,
            "at": rfc3339(at or now()), "type": "agent_started"}


def reply(terminal_id: str, verb: str, *, result: Mapping[str, Any] | None = None,
          error: tuple[str, str] | None = None, at: datetime | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": IDS["reply"], "terminal_id": terminal_id,
                           "verb": verb[:64], "ok": error is None, "at": rfc3339(at or now())}
    if error is None:
        doc["result"] = dict(result or {})
    else:
        doc["error"] = {"code": error[0], "message": error[1]}
    return doc
