"""The symptom catalogue (``symptoms.toml``) as validated, frozen values.

Loading checks every name against what exists — checks against the registry, reasons against
the closed catalog of reason codes, causes and areas against the file itself — so a typo in the
data is a load error naming the entry, never a rule that silently matches nothing.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from posdiag.results import MetricValue, Status

EVIDENCE_STEP = "@evidence"  # in a cause's steps: the hints of its matched findings
OPERATORS = ("<", "<=", ">", ">=", "==", "!=", "in", "~", "!~")  # ~: glob match on text
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_SYMPTOM_ID = re.compile(r"^[a-z][a-z-]{1,40}$")  # as diagnosis.json has it (symptom_id)
_TEXT_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_METRIC_GLOB = re.compile(r"^[a-z0-9_*]+$")


class CatalogueError(ValueError):
    """The catalogue breaks a rule; the message names the entry (``causes.x.rules[1]: …``)."""


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """``metric op value`` on a check result's metrics; ``metric`` may be a glob."""

    metric: str
    op: str
    value: MetricValue | tuple[MetricValue, ...]

    def __post_init__(self) -> None:
        if not _METRIC_GLOB.match(self.metric):
            raise CatalogueError(f"metric {self.metric!r} is not a metric name or glob")
        if self.op not in OPERATORS:
            raise CatalogueError(f"operator {self.op!r} is not one of {', '.join(OPERATORS)}")
        if self.op == "in":
            if not isinstance(self.value, tuple) or not self.value:
                raise CatalogueError("operator 'in' needs a non-empty list of values")
        elif self.op in ("~", "!~"):
            if not isinstance(self.value, str) or not self.value:
                raise CatalogueError(f"operator {self.op!r} needs a glob pattern, "
                                     f"not {self.value!r}")
        elif self.op in ("<", "<=", ">", ">="):
            if isinstance(self.value, bool) or not isinstance(self.value, int | float) \
                    or not math.isfinite(self.value):
                raise CatalogueError(f"operator {self.op!r} needs a number, not {self.value!r}")
        elif isinstance(self.value, tuple) or self.value is None:
            raise CatalogueError(f"operator {self.op!r} needs one value, not {self.value!r}")

    def holds(self, value: MetricValue) -> bool:
        """Whether one measured value satisfies the condition (no reading never does)."""
        if value is None:
            return False
        if self.op == "in":
            return any(_same(value, v) for v in self.value)  # type: ignore[union-attr]
        if self.op == "==":
            return _same(value, self.value)  # type: ignore[arg-type]
        if self.op == "!=":
            return not _same(value, self.value)  # type: ignore[arg-type]
        if self.op in ("~", "!~"):
            if not isinstance(value, str):
                return False
            return fnmatchcase(value, self.value) == (self.op == "~")  # type: ignore[arg-type]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False  # an ordering on text or a flag means nothing
        limit = float(self.value)  # type: ignore[arg-type]
        return {"<": value < limit, "<=": value <= limit, ">": value > limit,
                ">=": value >= limit}[self.op]

    def matching(self, metrics: Mapping[str, MetricValue]) -> dict[str, MetricValue]:
        """The metrics named by ``metric`` whose values satisfy the condition."""
        return {k: v for k, v in metrics.items()
                if fnmatchcase(k, self.metric) and self.holds(v)}


def _same(a: MetricValue, b: MetricValue) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b  # True == 1 in Python: a flag is not a count
    return a == b


@dataclass(frozen=True)
class Rule:
    """Evidence for a cause: one finding of one check, optionally with metric conditions.

    A negative weight is evidence *against* the cause: it scales the score by (1 + weight).
    """

    check: str
    weight: float
    statuses: frozenset[Status] = frozenset()  # empty: any status
    reasons: frozenset[str] = frozenset()  # empty: any reason
    hint: str = ""  # the finding must carry this hint id ("" = no requirement)
    when: tuple[Condition, ...] = ()
    show: tuple[str, ...] = ()  # metric names or globs quoted as evidence
    corroborates: bool = False  # counts only when another rule of the cause found evidence

    def __post_init__(self) -> None:
        if not -1 <= self.weight <= 1 or self.weight == 0:
            raise CatalogueError(f"weight must be in -1…1 and not 0, not {self.weight!r}")
        if not self.reasons and not self.when:
            raise CatalogueError("a rule needs a reason or a metric condition (else it would "
                                 "match every result)")
        for glob in self.show:
            if not _METRIC_GLOB.match(glob):
                raise CatalogueError(f"show: {glob!r} is not a metric name or glob")
        if self.corroborates and self.weight < 0:
            raise CatalogueError("evidence against always needs other evidence: "
                                 "corroborates is for positive weights")


@dataclass(frozen=True)
class Cause:
    id: str
    area: str
    steps: tuple[str, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Symptom:
    id: str
    aliases: tuple[str, ...]
    checks: tuple[str, ...]
    causes: Mapping[str, float]  # cause id → relevance (0–1), in file order
    no_fault_steps: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    threshold: float
    order: tuple[str, ...]  # areas, troubleshooting order
    symptoms: Mapping[str, Symptom]
    causes: Mapping[str, Cause]
    _names: Mapping[str, str] = field(default_factory=dict, repr=False)

    def find(self, name: str) -> Symptom | None:
        """A symptom by id or alias (case and surrounding space ignored); None if unknown."""
        key = self._names.get(_fold(name))
        return self.symptoms[key] if key is not None else None

    def area_rank(self, cause_id: str) -> int:
        return self.order.index(self.causes[cause_id].area)

    def step_ids(self) -> frozenset[str]:
        """Every text id a remediation list may show (both step and hint ids)."""
        ids = {s for c in self.causes.values() for s in c.steps if s != EVIDENCE_STEP}
        ids.update(s for sym in self.symptoms.values() for s in sym.no_fault_steps)
        return frozenset(ids)


def _fold(name: str) -> str:
    return name.strip().casefold().replace("_", "-")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
class _Reader:
    """Typed access to the parsed TOML, with the path of each value for error messages."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def error(self, key: str, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.where}.{key}: {problem}" if key else
                              f"{self.where}: {problem}")

    def only(self, allowed: Collection[str]) -> None:
        extra = sorted(set(self.data) - set(allowed))
        if extra:
            raise self.error(extra[0], f"unknown key (known here: {', '.join(sorted(allowed))})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"must be {_kind_name(kind)}, not {type(value).__name__}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        if values is default and default is not ...:
            return tuple(default)
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                raise self.error(f"{key}[{i}]", "must be a non-empty string")
        if len(set(values)) != len(values):
            raise self.error(key, "lists a value twice")
        return tuple(values)

    def table(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f"{self.where}.{key}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a number", float: "a number", list: "a list",
             dict: "a table", bool: "true or false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def parse(text: str, *, checks: Collection[str], reasons: Collection[str],
          source: str = "symptoms.toml") -> Catalogue:
    """Parse and validate catalogue text against the known check names and reason codes."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogueError(f"{source}: not valid TOML: {e}") from None
    top = _Reader(data, source)
    top.only(("engine", "symptoms", "causes"))
    engine = top.table("engine")
    engine.only(("threshold", "order"))
    threshold = float(engine.get("threshold", (int, float)))
    if not 0 < threshold < 1:
        raise engine.error("threshold", f"must be between 0 and 1, not {threshold!r}")
    order = engine.strings("order")
    for i, area in enumerate(order):
        if not _ID.match(area):
            raise engine.error(f"order[{i}]", f"{area!r} is not a snake_case area name")

    causes_table = top.table("causes")
    causes = {cid: _cause(causes_table, cid, order, checks, reasons)
              for cid in causes_table.data}
    symptoms_table = top.table("symptoms")
    symptoms = {sid: _symptom(symptoms_table, sid, causes, checks)
                for sid in symptoms_table.data}
    unused = [c for c in causes if not any(c in s.causes for s in symptoms.values())]
    if unused:
        raise causes_table.error(unused[0], "no symptom lists this cause")
    names: dict[str, str] = {}
    for s in symptoms.values():
        for name in (s.id, *s.aliases):
            other = names.setdefault(_fold(name), s.id)
            if other != s.id:
                raise symptoms_table.error(s.id, f"alias {name!r} also names symptom {other}")
    return Catalogue(threshold, order, MappingProxyType(symptoms), MappingProxyType(causes),
                     MappingProxyType(names))


def _cause(table: _Reader, cid: str, order: Sequence[str], checks: Collection[str],
           reasons: Collection[str]) -> Cause:
    if not _ID.match(cid):
        raise table.error(cid, "a cause id must be snake_case")
    r = table.table(cid)
    r.only(("area", "steps", "rules"))
    area = r.get("area", str)
    if area not in order:
        raise r.error("area", f"{area!r} is not in engine.order ({', '.join(order)})")
    steps = r.strings("steps")
    for i, step in enumerate(steps):
        if step != EVIDENCE_STEP and not _TEXT_ID.match(step):
            raise r.error(f"steps[{i}]", f"{step!r} is not a text id (area.name) or "
                                         f"{EVIDENCE_STEP}")
    raw_rules = r.get("rules", list)
    if not raw_rules:
        raise r.error("rules", "a cause needs at least one rule")
    rules = tuple(_rule(r, i, raw, checks, reasons) for i, raw in enumerate(raw_rules))
    if not any(rule.weight > 0 and not rule.corroborates for rule in rules):
        raise r.error("rules", "a cause needs at least one rule with a positive weight that "
                               "does not only corroborate")
    return Cause(cid, area, steps, rules)


def _rule(cause: _Reader, i: int, raw: Any, checks: Collection[str],
          reasons: Collection[str]) -> Rule:
    if not isinstance(raw, dict):
        raise cause.error(f"rules[{i}]", "must be a table")
    r = _Reader(raw, f"{cause.where}.rules[{i}]")
    r.only(("check", "status", "reason", "hint", "weight", "when", "show", "corroborates"))
    check = r.get("check", str)
    if check not in checks:
        raise r.error("check", f"unknown check {check!r} (known: {', '.join(sorted(checks))})")
    statuses = []
    for j, s in enumerate(r.strings("status", ())):
        try:
            statuses.append(Status(s))
        except ValueError:
            raise r.error(f"status[{j}]", f"{s!r} is not a status "
                                          f"({', '.join(Status)})") from None
    rule_reasons = r.strings("reason", ())
    for j, reason in enumerate(rule_reasons):
        if reason not in reasons:
            raise r.error(f"reason[{j}]", f"unknown reason code {reason!r} "
                                          "(not in the reason catalog, docs/reason-codes.md)")
    hint = r.get("hint", str, "")
    if hint and not _TEXT_ID.match(hint):
        raise r.error("hint", f"{hint!r} is not a hint id")
    conditions = []
    for j, c in enumerate(r.get("when", list, [])):
        if not isinstance(c, dict):
            raise r.error(f"when[{j}]", "must be a table {metric, op, value}")
        cr = _Reader(c, f"{r.where}.when[{j}]")
        cr.only(("metric", "op", "value"))
        value = cr.get("value", (str, int, float, bool, list))
        if isinstance(value, list):
            if not all(isinstance(v, str | int | float | bool) for v in value):
                raise cr.error("value", "a list of values must hold only scalars")
            value = tuple(value)
        try:
            conditions.append(Condition(cr.get("metric", str), cr.get("op", str), value))
        except CatalogueError as e:
            raise cr.error("", str(e)) from None
    try:
        return Rule(check, float(r.get("weight", (int, float))), frozenset(statuses),
                    frozenset(rule_reasons), hint, tuple(conditions), r.strings("show", ()),
                    r.get("corroborates", bool, False))
    except CatalogueError as e:
        raise r.error("", str(e)) from None


def _symptom(table: _Reader, sid: str, causes: Mapping[str, Cause],
             checks: Collection[str]) -> Symptom:
    if not _SYMPTOM_ID.match(sid):
        raise table.error(sid, "a symptom id is lower-case words joined by '-'")
    r = table.table(sid)
    r.only(("aliases", "checks", "causes", "no_fault_steps"))
    aliases = r.strings("aliases", ())
    wanted = r.strings("checks")
    for i, name in enumerate(wanted):
        if name not in checks:
            raise r.error(f"checks[{i}]", f"unknown check {name!r} "
                                          f"(known: {', '.join(sorted(checks))})")
    relevance: dict[str, float] = {}
    ct = r.table("causes")
    if not ct.data:
        raise r.error("causes", "a symptom needs at least one cause")
    for cid in ct.data:
        if cid not in causes:
            raise ct.error(cid, "unknown cause (not defined under [causes])")
        value = float(ct.get(cid, (int, float)))
        if not 0 < value <= 1:
            raise ct.error(cid, f"relevance must be above 0 and at most 1, not {value!r}")
        if not any(rule.check in wanted for rule in causes[cid].rules):
            raise ct.error(cid, "none of this cause's rules looks at a check the symptom "
                                f"runs ({', '.join(wanted)}): it could never be found")
        relevance[cid] = value
    steps = r.strings("no_fault_steps")
    for i, step in enumerate(steps):
        if not _TEXT_ID.match(step):
            raise r.error(f"no_fault_steps[{i}]", f"{step!r} is not a text id (area.name)")
    return Symptom(sid, aliases, wanted, MappingProxyType(relevance), steps)


def problems_with_texts(cat: Catalogue, texts: Mapping[str, Mapping[str, str]]
                        ) -> Iterator[str]:
    """What a locale catalog lacks for this catalogue (symptom names, cause titles, steps).

    A step id may be a diagnosis step ([step]) or a check's hint ([hint]).
    """
    for sid in cat.symptoms:
        if sid not in texts.get("symptom", {}):
            yield f"[symptom] {sid}"
    for cid in cat.causes:
        if cid not in texts.get("cause", {}):
            yield f"[cause] {cid}"
    steps, hints = texts.get("step", {}), texts.get("hint", {})
    for step in sorted(cat.step_ids()):
        if step not in steps and step not in hints:
            yield f"[step] {step}"
