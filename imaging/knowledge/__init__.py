"""Cited, bilingual radiology knowledge: diagnosis entries and executable guideline rules.

    from imaging.knowledge import load_knowledge, RULES
    kb = load_knowledge()            # validated once per process
    kb.find("Crohn's disease")       # -> Diagnosis | None
    RULES["fleischner_2017"].evaluate(NoduleFinding(7, "solid"), PatientContext(age=60))

The format of `diagnoses/*.json` is described in SCHEMA.md and enforced by `schema.py`.
"""

from imaging.knowledge.base import (
    Bilingual,
    Diagnosis,
    Differential,
    KnowledgeBase,
    NextImaging,
    build_knowledge,
    load_knowledge,
    normalize_name,
)
from imaging.knowledge.guidelines import RULES, PatientContext, Rule, RuleResult
from imaging.knowledge.schema import KnowledgeSchemaError

__all__ = [
    "RULES",
    "Bilingual",
    "Diagnosis",
    "Differential",
    "KnowledgeBase",
    "KnowledgeSchemaError",
    "NextImaging",
    "PatientContext",
    "Rule",
    "RuleResult",
    "build_knowledge",
    "load_knowledge",
    "normalize_name",
]
