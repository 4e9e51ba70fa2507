"""The technician's view of a diagnosis: ranked causes, the evidence behind each, numbered
steps, and the one most likely cause last, where the eye lands."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from typing import TextIO

from posdiag.diagnosis.catalogue import Catalogue
from posdiag.diagnosis.document import cause_title, step_text, symptom_name
from posdiag.diagnosis.engine import Diagnosis, Evidence, RankedCause
from posdiag.i18n import Texts
from posdiag.render import width
from posdiag.results import MetricValue, Status
from posdiag.summary import in_language

_MARK = {Status.OK: "✔", Status.WARN: "▲", Status.FAIL: "✖", Status.UNKNOWN: "?",
         Status.SKIPPED: "–"}
_WRAP = 96
# A CJK character (or full-width punctuation) alone, a run of other non-space text, or space.
_CJK = "\u2e80-\u9fff\u3000-\u303f\uff00-\uffef"
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+|\\s+")


def _metric(value: MetricValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _wrap(text: str, indent: str, first: str | None = None) -> list[str]:
    """Wrap at ``_WRAP`` display columns: between words, and between any two CJK characters
    (Chinese has no spaces to break at; a CJK character takes two columns)."""
    lead = indent if first is None else first
    if width(text) == len(text):
        return textwrap.wrap(text, _WRAP, initial_indent=lead, subsequent_indent=indent,
                             break_on_hyphens=False) or [lead]
    lines: list[str] = []
    line = lead
    for token in _TOKEN.findall(text):
        if token.isspace():
            if line.strip():
                line += " "
            continue
        if width(line + token) > _WRAP and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += token
    lines.append(line.rstrip())
    return lines


def _evidence_lines(t: Texts, e: Evidence) -> list[str]:
    status = t.status(str(e.status))
    what = in_language(e.summary, e.reason, t)
    against = f"({t.ui('diag_against')}) " if e.weight < 0 else ""
    lines = _wrap(f"{against}[{e.check}] {status} {e.reason}: {what}", "       ", "     - ")
    if e.metrics:
        shown = ", ".join(f"{k}={_metric(v)}" for k, v in e.metrics.items())
        lines += _wrap(shown, "       ")
    return lines


def _steps(t: Texts, ids: Iterable[str], indent: str) -> list[str]:
    out = []
    for n, step in enumerate(ids, 1):
        label = f"{n}. "
        out += _wrap(step_text(t, step), indent + " " * len(label), indent + label)
    return out


def _cause_lines(t: Texts, rank: int, c: RankedCause) -> list[str]:
    lines = [f"{rank}. {cause_title(t, c.id)}  ({t.ui('diag_score')} {c.score:.2f})",
             f"   {t.ui('diag_evidence')}:"]
    for e in c.evidence:
        lines += _evidence_lines(t, e)
    lines.append(f"   {t.ui('what_to_do')}:")
    lines += _steps(t, c.steps, "     ")
    return lines


def render(d: Diagnosis, t: Texts, out: TextIO, *, terminal_id: str) -> None:
    sym = d.symptom
    print(f"{t.ui('diag_title')}: {symptom_name(t, sym.id)} ({sym.id}) — "
          f"{t.ui('terminal')} {terminal_id}", file=out)
    checked = " · ".join(f"{r.name} {_MARK[r.status]} {t.status(str(r.status))}"
                         for r in d.results)
    print(f"{t.ui('diag_checked')}: {checked or '—'}", file=out)
    print(file=out)
    if d.likely:
        print(f"{t.ui('diag_likely')}:", file=out)
        for i, c in enumerate(d.likely, 1):
            print(file=out)
            print("\n".join(_cause_lines(t, i, c)), file=out)
    else:
        print(t.ui("diag_no_fault"), file=out)
        print(f"{t.ui('diag_next')}:", file=out)
        print("\n".join(_steps(t, sym.no_fault_steps, "  ")), file=out)
    if d.unlikely:
        print(file=out)
        weak = "; ".join(f"{cause_title(t, c.id)} ({c.score:.2f})" for c in d.unlikely)
        print("\n".join(_wrap(f"{t.ui('diag_unlikely')}: {weak}", "  ", "")), file=out)
    if d.inconclusive:
        print(file=out)
        print(f"{t.ui('diag_inconclusive')}: {', '.join(d.inconclusive)}", file=out)
    print(file=out)
    top = d.most_likely
    verdict = cause_title(t, top.id) if top is not None else t.ui("diag_none_found")
    print(f"{t.ui('diag_most_likely')}: {verdict}", file=out)


def render_symptoms(catalogue: Catalogue, t: Texts, out: TextIO) -> None:
    """``posdiag diagnose`` without a symptom: what can be asked, with the Chinese names."""
    zh = Texts("zh_CN")
    print(f"{t.ui('diag_symptoms_title')}:", file=out)
    w = max(len(s) for s in catalogue.symptoms) + 2
    for s in catalogue.symptoms.values():
        name = symptom_name(t, s.id)
        zh_name = symptom_name(zh, s.id)
        label = name if name == zh_name else f"{name} — {zh_name}"
        print(f"  {s.id.ljust(w)}{label}", file=out)
        aliases = [a for a in s.aliases if a != zh_name]
        if aliases:
            print(f"  {' ' * w}{t.ui('diag_aliases')}: {', '.join(aliases)}", file=out)
