"""Symptom-driven diagnosis: from a merchant's complaint (刷卡失败, 交易超时 …) to ranked causes
with the evidence behind each and numbered remediation steps, in English and Chinese.

The symptom catalogue is data (``symptoms.toml``); ``engine`` loads it, runs the checks a symptom
needs through the ordinary runner and ranks the causes; ``document`` and ``render`` present the
result as JSON (``posdiag.diagnosis/1``) and as text.
"""

from __future__ import annotations

from posdiag.diagnosis.catalogue import (
    Catalogue,
    CatalogueError,
    Cause,
    Condition,
    Rule,
    Symptom,
    parse,
)
from posdiag.diagnosis.document import SCHEMA_ID, document, symptom_list
from posdiag.diagnosis.engine import (
    Diagnosis,
    Evidence,
    RankedCause,
    UnknownSymptom,
    diagnose,
    evaluate,
    find_symptom,
    load_catalogue,
)
from posdiag.diagnosis.remote import diagnose_remote

__all__ = [
    "SCHEMA_ID",
    "Catalogue",
    "CatalogueError",
    "Cause",
    "Condition",
    "Diagnosis",
    "Evidence",
    "RankedCause",
    "Rule",
    "Symptom",
    "UnknownSymptom",
    "diagnose",
    "diagnose_remote",
    "document",
    "evaluate",
    "find_symptom",
    "load_catalogue",
    "parse",
    "symptom_list",
]
