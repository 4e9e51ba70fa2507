"""The diagnosis engine: load the catalogue, run a symptom's checks, score and rank the causes.

``diagnose`` runs only the checks the symptom names (those the config has not switched off),
through the same runner as ``posdiag selftest``; ``evaluate`` is the pure part: check results in,
ranked causes with their evidence out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import resources
from types import MappingProxyType

from posdiag.checks.base import AnySpec
from posdiag.config import Config
from posdiag.diagnosis.catalogue import (
    EVIDENCE_STEP,
    Catalogue,
    Cause,
    Rule,
    Symptom,
    parse,
)
from posdiag.paths import Roots
from posdiag.results import CheckResult, Finding, MetricValue, Status, skipped

CATALOGUE_FILE = "symptoms.toml"


class UnknownSymptom(LookupError):
    """A symptom name that is neither an id nor an alias in the catalogue."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown symptom {name!r} (known: {', '.join(self.known)})")


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------
def load_catalogue(checks: Collection[str] | None = None) -> Catalogue:
    """The catalogue shipped in the package, validated against ``checks`` (default: the check
    registry) and the closed catalog of reason codes. Raises ``CatalogueError``."""
    if checks is None:
        from posdiag.checks import REGISTRY

        checks = [s.name for s in REGISTRY]
    return _load(frozenset(checks))


@functools.cache
def _load(checks: frozenset[str]) -> Catalogue:
    from posdiag.results import known_reasons

    text = resources.files("posdiag.diagnosis").joinpath(CATALOGUE_FILE).read_text("utf-8")
    return parse(text, checks=checks, reasons=known_reasons(), source=CATALOGUE_FILE)


def find_symptom(catalogue: Catalogue, name: str) -> Symptom:
    symptom = catalogue.find(name)
    if symptom is None:
        raise UnknownSymptom(name, catalogue.symptoms)
    return symptom


# --------------------------------------------------------------------------------------------
# Results of a diagnosis
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """One finding that supports a cause, with the measured values the rule looked at."""

    check: str
    status: Status
    reason: str
    summary: str
    metrics: Mapping[str, MetricValue]
    hints: tuple[str, ...]
    weight: float  # negative: evidence against the cause


@dataclass(frozen=True)
class RankedCause:
    cause: Cause
    score: float  # 0–1: relevance to the symptom × combined weight of the evidence
    evidence: tuple[Evidence, ...]
    steps: tuple[str, ...]  # text ids (diagnosis steps or check hints), "@evidence" expanded

    @property
    def id(self) -> str:
        return self.cause.id

    @property
    def status(self) -> Status:
        """The worst status among the supporting evidence (skipped counts as ok)."""
        return Status.worst(e.status for e in self.evidence if e.weight > 0)


@dataclass(frozen=True)
class Diagnosis:
    symptom: Symptom
    threshold: float
    results: tuple[CheckResult, ...]
    likely: tuple[RankedCause, ...]  # above the threshold, most likely first
    unlikely: tuple[RankedCause, ...]  # some evidence, but not above the threshold

    @property
    def fault_found(self) -> bool:
        return bool(self.likely)

    @property
    def most_likely(self) -> RankedCause | None:
        return self.likely[0] if self.likely else None

    @property
    def status(self) -> Status:
        """Worst status of the checks run (as a report's)."""
        return Status.worst(r.status for r in self.results)

    @property
    def inconclusive(self) -> tuple[str, ...]:
        """Checks that could not tell (unknown) and that no likely cause accounts for."""
        cited = {e.check for c in self.likely for e in c.evidence if e.weight > 0}
        return tuple(r.name for r in self.results
                     if r.status is Status.UNKNOWN and r.name not in cited)

    @property
    def exit_code(self) -> int:
        """Monitoring-plugins convention, judged on what matters for this symptom.

        A likely cause: the worst status of the evidence behind the likely causes (2 fail,
        3 unknown, 1 warn; at least 1 — a fault was found). No likely cause: 0, or 3 when a
        check the symptom needs could not tell (the "no fault" is then unproven).
        """
        if self.likely:
            worst = Status.worst(c.status for c in self.likely)
            return worst.exit_code if worst in (Status.FAIL, Status.UNKNOWN, Status.WARN) else 1
        return Status.UNKNOWN.exit_code if self.inconclusive else 0


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------
def _candidates(result: CheckResult) -> tuple[Finding, ...]:
    """What a rule is matched against: every finding, or the result itself when it has none
    (ok and skipped results)."""
    if result.findings:
        return result.findings
    return (Finding(result.status, result.reason, result.summary, result.hints),)


def match(rule: Rule, result: CheckResult) -> Evidence | None:
    """The evidence ``rule`` finds in ``result`` (its first matching finding), or None."""
    if result.name != rule.check:
        return None
    for f in _candidates(result):
        if rule.statuses and f.status not in rule.statuses:
            continue
        if rule.reasons and f.reason not in rule.reasons:
            continue
        if rule.hint and rule.hint not in f.hints:
            continue
        seen: dict[str, MetricValue] = {}
        for cond in rule.when:
            hits = cond.matching(result.metrics)
            if not hits:
                return None  # metrics belong to the result: no other finding can do better
            seen.update(hits)
        for glob in rule.show:
            seen.update((k, v) for k, v in result.metrics.items()
                        if fnmatchcase(k, glob) and k not in seen)
        return Evidence(result.name, f.status, f.reason, f.summary, MappingProxyType(seen),
                        f.hints, rule.weight)
    return None


def _steps(cause: Cause, evidence: Sequence[Evidence]) -> tuple[str, ...]:
    listed = [s for s in cause.steps if s != EVIDENCE_STEP]
    out: list[str] = []
    for step in cause.steps:
        if step == EVIDENCE_STEP:
            out.extend(h for e in evidence for h in e.hints if h not in listed)
        else:
            out.append(step)
    return tuple(dict.fromkeys(out))


def score_cause(cause: Cause, relevance: float, results: Sequence[CheckResult]
                ) -> RankedCause:
    """relevance × (1 − Π(1 − w) over supporting evidence) × Π(1 + w) over evidence against.

    Corroborating rules and evidence against only ever adjust a cause that has support of its
    own; without it the cause scores nothing.
    """
    found: list[tuple[Rule, Evidence]] = []
    for rule in cause.rules:
        for r in results:
            e = match(rule, r)
            if e is not None:
                found.append((rule, e))
    primary = [e for rule, e in found if e.weight > 0 and not rule.corroborates]
    if not primary:
        return RankedCause(cause, 0.0, (), ())
    miss = 1.0
    factor = 1.0
    for _, e in found:
        if e.weight > 0:
            miss *= 1.0 - e.weight  # noisy OR: independent pieces of evidence
        else:
            factor *= 1.0 + e.weight
    score = round(relevance * (1.0 - miss) * factor, 3)
    # The steps follow the primary evidence: corroboration repeats advice for another cause.
    return RankedCause(cause, score, tuple(e for _, e in found), _steps(cause, primary))


def evaluate(catalogue: Catalogue, symptom: Symptom, results: Sequence[CheckResult]
             ) -> Diagnosis:
    """Score every cause of ``symptom`` on ``results``; rank by score, then troubleshooting
    order of the cause's area, then the catalogue's order."""
    relevant = [r for r in results if r.name in symptom.checks]
    position = {cid: i for i, cid in enumerate(catalogue.causes)}
    scored = [score_cause(catalogue.causes[cid], rel, relevant)
              for cid, rel in symptom.causes.items()]
    scored.sort(key=lambda c: (-c.score, catalogue.area_rank(c.id), position[c.id]))
    likely = tuple(c for c in scored if c.score > catalogue.threshold)
    unlikely = tuple(c for c in scored if 0 < c.score <= catalogue.threshold)
    return Diagnosis(symptom, catalogue.threshold, tuple(relevant), likely, unlikely)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
def diagnose(symptom: str | Symptom, specs: Sequence[AnySpec], config: Config, roots: Roots,
             *, catalogue: Catalogue | None = None,
             on_result: Callable[[CheckResult], None] | None = None) -> Diagnosis:
    """Run the symptom's checks and evaluate them.

    Checks switched off in the config (``enabled = false``: the terminal has no such device)
    are reported as skipped, not run: the symptom names what *may* matter, the config what
    exists. Raises ``UnknownSymptom``.
    """
    from posdiag.runner import run_checks

    cat = catalogue or load_catalogue([s.name for s in specs])
    sym = symptom if isinstance(symptom, Symptom) else find_symptom(cat, symptom)
    by_name = {s.name: s for s in specs}
    wanted = [n for n in sym.checks if n in by_name]
    enabled = [n for n in wanted if by_name[n].enabled(config.check(n))]
    results = run_checks(specs, config, roots, only=enabled, on_result=on_result) \
        if enabled else []
    for name in wanted:
        if name not in enabled:
            off = skipped(name, "disabled", "disabled in the configuration")
            results.append(off)
            if on_result is not None:
                on_result(off)
    order = {n: i for i, n in enumerate(sym.checks)}
    results.sort(key=lambda r: order.get(r.name, len(order)))
    return evaluate(cat, sym, results)
