"""LI-RADS v2018 CT/MRI: one test per cell of the diagnostic table, the reader-assigned
categories, management, and the population exclusions."""

from __future__ import annotations

import pytest

from imaging.knowledge.guidelines import RULES, LiverObservation, PatientContext
from imaging.knowledge.guidelines.li_rads import categorize

RULE = RULES["li_rads_2018"]
AT_RISK = PatientContext(age=60, modality="MR")
Obs = LiverObservation

# (aphe, size_mm, washout, capsule, growth) -> category: rows of the v2018 diagnostic table
CELLS = [
    # no APHE: <20 | >=20
    (False, 15, False, False, False, "LR-3"), (False, 25, False, False, False, "LR-3"),
    (False, 15, True, False, False, "LR-3"), (False, 25, True, False, False, "LR-4"),
    (False, 15, True, True, False, "LR-4"), (False, 25, True, True, False, "LR-4"),
    # non-rim APHE: <10 | 10-19 | >=20
    (True, 8, False, False, False, "LR-3"), (True, 15, False, False, False, "LR-3"),
    (True, 25, False, False, False, "LR-4"),
    (True, 8, True, False, False, "LR-4"), (True, 15, True, False, False, "LR-5"),
    (True, 15, False, False, True, "LR-5"), (True, 15, False, True, False, "LR-4"),
    (True, 25, False, True, False, "LR-5"),
    (True, 8, True, True, False, "LR-4"), (True, 15, True, True, False, "LR-5"),
    (True, 25, True, True, True, "LR-5"),
]


@pytest.mark.parametrize(("aphe", "size", "washout", "capsule", "growth", "category"), CELLS)
def test_diagnostic_table_cell(aphe, size, washout, capsule, growth, category):
    obs = Obs(size, aphe=aphe, washout=washout, capsule=capsule, threshold_growth=growth,
            high_risk=True)
    assert categorize(obs) == category
    result = RULE.evaluate(obs, AT_RISK)
    assert result.applies and result.category == category and result.note is None


@pytest.mark.parametrize(("obs", "category"), [
    (Obs(20, aphe=True, washout=True, tumor_in_vein=True), "LR-TIV"),
    (Obs(20, definitely_benign=True), "LR-1"),
    (Obs(20, probably_benign=True), "LR-2"),
    (Obs(20, aphe=True, targetoid=True), "LR-M"),
])
def test_reader_assigned_categories_take_precedence(obs, category):
    assert categorize(obs) == category


@pytest.mark.parametrize(("category", "obs", "text", "urgency"), [
    ("LR-1", Obs(5, definitely_benign=True), "surveillance in 6 months", "routine"),
    ("LR-3", Obs(15), "3-6 months", "routine"),
    ("LR-4", Obs(25, aphe=True), "3 months or less", "soon"),
    ("LR-5", Obs(25, aphe=True, washout=True), "biopsy is not required", "urgent"),
    ("LR-M", Obs(25, targetoid=True), "biopsy is often needed", "urgent"),
])
def test_management(category, obs, text, urgency):
    result = RULE.evaluate(obs, AT_RISK)
    assert result.category == category and text in result.recommendation.en
    assert result.urgency == urgency and result.recommendation.zh


@pytest.mark.parametrize(("obs", "patient", "reason"), [
    (Obs(20, aphe=True), PatientContext(age=15, modality="MR"), "age under 18"),
    (Obs(20, aphe=True, high_risk=False), AT_RISK, "not at high risk of HCC"),
    (Obs(20, aphe=True, cirrhosis_cause_excluded=True), AT_RISK, "congenital hepatic fibrosis"),
    (Obs(20, aphe=True), PatientContext(age=60, modality="US"), "multiphase CT or MR"),
])
def test_not_applicable(obs, patient, reason):
    result = RULE.evaluate(obs, patient)
    assert not result.applies and reason in result.not_applicable_reason.en


def test_unstated_risk_is_flagged():
    result = RULE.evaluate(Obs(20, aphe=True, washout=True), AT_RISK)
    assert result.applies and "Risk not stated" in result.note.en
