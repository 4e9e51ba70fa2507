"""The result model every check returns: status, stable reason code, summary, metrics, hints."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_HINT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")

MetricValue = int | float | str | bool | None


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"

    @property
    def rank(self) -> int:
        """Severity for 'worst of': fail beats unknown beats warn beats ok beats skipped."""
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """Monitoring-plugins convention: 0 ok, 1 warn, 2 fail (critical), 3 unknown."""
        return _EXIT[self]

    @staticmethod
    def worst(statuses: Any) -> Status:
        worst = Status.SKIPPED
        for s in statuses:
            if s.rank > worst.rank:
                worst = s
        return Status.OK if worst is Status.SKIPPED else worst


_RANK = {Status.SKIPPED: 0, Status.OK: 1, Status.WARN: 2, Status.UNKNOWN: 3, Status.FAIL: 4}
_EXIT = {Status.SKIPPED: 0, Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.UNKNOWN: 3}


@dataclass(frozen=True)
class Finding:
    """One thing a check noticed. A check may notice several; the worst becomes the result."""

    status: Status
    reason: str
    summary: str
    hints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_reason(self.reason)
        for h in self.hints:
            if not _HINT.match(h):
                raise ValueError(f"hint id must look like 'area.name': {h!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "reason": self.reason, "summary": self.summary,
                "hints": list(self.hints)}


@functools.cache
def known_reasons() -> frozenset[str]:
    """The stable reason codes: those with a title in the locale catalog (docs/reason-codes.md)."""
    from posdiag.i18n import catalog

    return frozenset(catalog("en")["reason"])


def _check_reason(reason: str) -> None:
    if not _CODE.match(reason):
        raise ValueError(f"reason code must be snake_case: {reason!r}")
    if reason not in known_reasons():
        raise ValueError(f"reason code {reason!r} is not in the catalog of stable codes")


def _clean_metric(key: str, value: MetricValue) -> MetricValue:
    if not _CODE.match(key):
        raise ValueError(f"metric key must be snake_case with its unit: {key!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # JSON has no NaN/inf; "no reading" is null
        return round(value, 3)
    if value is None or isinstance(value, int | str | bool):
        return value
    raise TypeError(f"metric {key!r} has unsupported type {type(value).__name__}")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str
    summary: str
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    hints: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    duration_ms: float = 0.0

    def __post_init__(self) -> None:
        _check_reason(self.reason)
        if self.status is Status.OK and self.reason != "ok":
            raise ValueError("an ok result has reason 'ok'")
        clean = {k: _clean_metric(k, v) for k, v in dict(self.metrics).items()}
        object.__setattr__(self, "metrics", MappingProxyType(clean))
        object.__setattr__(self, "hints", tuple(dict.fromkeys(self.hints)))

    def with_duration(self, duration_ms: float) -> CheckResult:
        return replace(self, duration_ms=round(duration_ms, 1))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "status": str(self.status),
            "reason": self.reason,
            "summary": self.summary,
            "metrics": dict(self.metrics),
            "hints": list(self.hints),
            "duration_ms": self.duration_ms,
        }
        if self.findings:
            d["findings"] = [f.to_dict() for f in self.findings]
        return d


class Verdict:
    """Collects findings and metrics while a check runs, then builds one CheckResult.

    The worst finding gives status, reason and summary (the first one added wins a tie, so checks
    add findings in order of root cause); all findings and all hints are kept.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.metrics: dict[str, MetricValue] = {}
        self.findings: list[Finding] = []

    def metric(self, key: str, value: MetricValue) -> None:
        self.metrics[key] = value

    def add(self, status: Status, reason: str, summary: str, *hints: str) -> None:
        self.findings.append(Finding(status, reason, summary, tuple(hints)))

    def warn(self, reason: str, summary: str, *hints: str) -> None:
        self.add(Status.WARN, reason, summary, *hints)

    def fail(self, reason: str, summary: str, *hints: str) -> None:
        self.add(Status.FAIL, reason, summary, *hints)

    def unknown(self, reason: str, summary: str, *hints: str) -> None:
        self.add(Status.UNKNOWN, reason, summary, *hints)

    def result(self, ok_summary: str) -> CheckResult:
        problems = [f for f in self.findings if f.status is not Status.OK]
        if not problems:
            return CheckResult(self.name, Status.OK, "ok", ok_summary, self.metrics)
        top = max(problems, key=lambda f: f.status.rank)  # max keeps the first of equals
        hints = tuple(h for f in problems for h in f.hints)
        return CheckResult(self.name, top.status, top.reason, top.summary, self.metrics,
                           hints, tuple(problems))


def skipped(name: str, reason: str, summary: str) -> CheckResult:
    return CheckResult(name, Status.SKIPPED, reason, summary)
