"""The report: schema ``posdiag.report/1``, the unit every sink (CLI, outbox, MQTT) carries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from posdiag import __version__
from posdiag.results import CheckResult, Status

SCHEMA_ID = "posdiag.report/1"


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Report:
    terminal_id: str
    seq: int
    generated_at: datetime
    valid_until: datetime
    boot_id: str | None
    checks: tuple[CheckResult, ...]

    @property
    def status(self) -> Status:
        return Status.worst(c.status for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "terminal_id": self.terminal_id,
            "seq": self.seq,
            "generated_at": rfc3339(self.generated_at),
            "valid_until": rfc3339(self.valid_until),
            "agent": {"version": __version__, "boot_id": self.boot_id},
            "status": str(self.status),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent,
                          separators=None if indent else (",", ":"))


def build(results: Sequence[CheckResult], *, terminal_id: str, seq: int, valid_for_s: float,
          boot_id: str | None, now: datetime | None = None) -> Report:
    t = (now or datetime.now(UTC)).replace(microsecond=0)
    return Report(terminal_id, seq, t, t + timedelta(seconds=valid_for_s), boot_id,
                  tuple(results))


def schema(name: str = "report") -> dict[str, Any]:
    """A JSON Schema shipped in the package (see ``posdiag.schemas``)."""
    from posdiag import schemas

    return schemas.load(name)
