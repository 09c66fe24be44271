"""Executable guideline rules, registered by id.

`RULES[rule_id].evaluate(finding, patient) -> RuleResult`; the finding type of each rule is
`RULES[rule_id].finding_type` (e.g. `NoduleFinding` for "fleischner_2017"). Knowledge entries
name these ids in `next_imaging[].rule`, and the schema test checks they exist.
"""

from __future__ import annotations

from imaging.knowledge.guidelines import fleischner, followup, li_rads, lung_rads
from imaging.knowledge.guidelines.common import PatientContext, Rule, RuleResult
from imaging.knowledge.guidelines.fleischner import NoduleFinding
from imaging.knowledge.guidelines.followup import (
    AdnexalCystFinding,
    AdrenalFinding,
    PneumoniaFinding,
    RenalCystFinding,
    StrokeFinding,
    ThyroidFinding,
)
from imaging.knowledge.guidelines.li_rads import LiverObservation
from imaging.knowledge.guidelines.lung_rads import ScreeningFinding

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (fleischner.RULE, lung_rads.RULE, li_rads.RULE, *followup.RULES_HERE)
}

__all__ = [
    "RULES",
    "AdnexalCystFinding",
    "AdrenalFinding",
    "LiverObservation",
    "NoduleFinding",
    "PatientContext",
    "PneumoniaFinding",
    "RenalCystFinding",
    "Rule",
    "RuleResult",
    "ScreeningFinding",
    "StrokeFinding",
    "ThyroidFinding",
]
