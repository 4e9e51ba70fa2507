"""The diagnosis as a JSON document (schema ``posdiag.diagnosis/1``, ``schema/diagnosis.json``).

The same document is printed by ``posdiag diagnose --json`` and returned by the MQTT
``diagnose`` command. Texts are in the requested language; ids beside them stay stable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from posdiag import __version__
from posdiag.diagnosis.catalogue import Catalogue
from posdiag.diagnosis.engine import Diagnosis, Evidence, RankedCause
from posdiag.i18n import Texts, catalog
from posdiag.report import rfc3339
from posdiag.summary import localized

SCHEMA_ID = "posdiag.diagnosis/1"


def step_text(texts: Texts, step_id: str) -> str:
    """A remediation step: a diagnosis step ([step]) or a check's hint ([hint])."""
    cat = catalog(texts.lang)
    return cat.get("step", {}).get(step_id) or cat.get("hint", {}).get(step_id) or step_id


def symptom_name(texts: Texts, symptom_id: str) -> str:
    return texts.get("symptom", symptom_id)


def cause_title(texts: Texts, cause_id: str) -> str:
    return texts.get("cause", cause_id)


def _steps(texts: Texts, ids: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"n": n, "id": s, "text": step_text(texts, s)} for n, s in enumerate(ids, 1)]


def _evidence(texts: Texts, e: Evidence) -> dict[str, Any]:
    return {"check": e.check, "status": str(e.status), "reason": e.reason,
            "reason_title": texts.reason(e.reason), "summary": localized(e.summary, texts),
            "metrics": dict(e.metrics), "hints": list(e.hints), "weight": e.weight}


def _cause(texts: Texts, rank: int, c: RankedCause) -> dict[str, Any]:
    return {"rank": rank, "id": c.id, "title": cause_title(texts, c.id), "area": c.cause.area,
            "score": c.score, "evidence": [_evidence(texts, e) for e in c.evidence],
            "steps": _steps(texts, c.steps)}


def document(d: Diagnosis, texts: Texts, *, terminal_id: str, boot_id: str | None,
             now: datetime | None = None) -> dict[str, Any]:
    t = (now or datetime.now(UTC)).replace(microsecond=0)
    top = d.most_likely
    return {
        "schema": SCHEMA_ID,
        "terminal_id": terminal_id,
        "generated_at": rfc3339(t),
        "agent": {"version": __version__, "boot_id": boot_id},
        "lang": texts.lang,
        "symptom": {"id": d.symptom.id, "name": symptom_name(texts, d.symptom.id)},
        "verdict": "fault_found" if d.fault_found else "no_fault_found",
        "status": str(d.status),
        "exit_code": d.exit_code,
        "threshold": d.threshold,
        "most_likely": None if top is None else {"id": top.id,
                                                 "title": cause_title(texts, top.id),
                                                 "score": top.score},
        "causes": [_cause(texts, i, c) for i, c in enumerate(d.likely, 1)],
        "unlikely": [{"id": c.id, "title": cause_title(texts, c.id), "score": c.score}
                     for c in d.unlikely],
        "no_fault_steps": [] if d.fault_found else _steps(texts, d.symptom.no_fault_steps),
        "inconclusive": list(d.inconclusive),
        "checks": [r.to_dict() for r in d.results],
    }


def symptom_list(texts: Texts, catalogue: Catalogue) -> list[dict[str, Any]]:
    """The symptoms with their names and aliases (``posdiag diagnose --json`` without one)."""
    return [{"id": s.id, "name": symptom_name(texts, s.id),
             "name_zh_CN": symptom_name(Texts("zh_CN"), s.id), "aliases": list(s.aliases),
             "checks": list(s.checks)} for s in catalogue.symptoms.values()]
