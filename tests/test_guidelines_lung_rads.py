"""Lung-RADS v2022: one test per cell of the category table, management per category, scope."""

from __future__ import annotations

import pytest

from imaging.knowledge.guidelines import RULES, PatientContext, ScreeningFinding
from imaging.knowledge.guidelines.lung_rads import categorize, with_s_modifier

RULE = RULES["lung_rads_2022"]
SCREEN = PatientContext(age=65, screening=True, modality="CT", smoker=True)
F = ScreeningFinding

CELLS = [
    # category 0
    (F("prior_pending"), "0"),
    (F("incomplete"), "0"),
    (F("inflammatory"), "0"),
    # category 1
    (F("none"), "1"),
    (F("benign"), "1"),
    # category 2
    (F("juxtapleural", 9.9, status="baseline"), "2"),
    (F("juxtapleural", 8.0, status="new"), "2"),
    (F("solid", 5.9, status="baseline"), "2"),
    (F("solid", 3.9, status="new"), "2"),
    (F("part_solid", 5.9, 2.0, status="baseline"), "2"),
    (F("ground_glass", 29.9, status="baseline"), "2"),
    (F("ground_glass", 20.0, status="new"), "2"),
    (F("ground_glass", 20.0, status="growing"), "2"),
    (F("ground_glass", 31.0, status="stable"), "2"),
    (F("ground_glass", 31.0, status="growing"), "2"),  # >=30 mm slowly growing
    (F("ground_glass", 31.0, status="slow_growing"), "2"),
    (F("airway", airway_level="subsegmental", status="baseline"), "2"),
    (F("airway", airway_level="subsegmental", status="new"), "2"),
    (F("airway", airway_level="subsegmental", status="stable"), "2"),
    (F("solid", 7.0, status="stable", prior_category="3"), "2"),  # 3 stable at 6 months
    # category 3
    (F("solid", 6.0, status="baseline"), "3"),
    (F("solid", 7.9, status="baseline"), "3"),
    (F("solid", 4.0, status="new"), "3"),
    (F("solid", 5.9, status="new"), "3"),
    (F("part_solid", 6.0, 5.9, status="baseline"), "3"),
    (F("part_solid", 5.0, 0.0, status="new"), "3"),
    (F("ground_glass", 30.0, status="baseline"), "3"),
    (F("ground_glass", 35.0, status="new"), "3"),
    (F("cyst", cyst_wall="thin", cyst_change="growing_cyst"), "3"),
    (F("solid", 9.0, status="stable", prior_category="4A"), "3"),  # 4A stable at 3 months
    # category 4A
    (F("solid", 8.0, status="baseline"), "4A"),
    (F("solid", 14.9, status="baseline"), "4A"),
    (F("solid", 7.9, status="growing"), "4A"),
    (F("solid", 6.0, status="new"), "4A"),
    (F("solid", 7.9, status="new"), "4A"),
    (F("part_solid", 10.0, 6.0, status="baseline"), "4A"),
    (F("part_solid", 10.0, 7.9, status="baseline"), "4A"),
    (F("part_solid", 8.0, 3.9, status="new"), "4A"),
    (F("part_solid", 10.0, 3.0, status="growing"), "4A"),
    (F("airway", airway_level="segmental", status="baseline"), "4A"),
    (F("airway", airway_level="segmental", status="new"), "4A"),
    (F("cyst", cyst_wall="thick"), "4A"),
    (F("cyst", cyst_wall="multilocular"), "4A"),
    (F("cyst", cyst_wall="thin", cyst_change="becomes_multilocular"), "4A"),
    (F("juxtapleural", 10.0, status="baseline"), "4A"),  # 10 mm: scored as a solid nodule
    # category 4B
    (F("solid", 15.0, status="baseline"), "4B"),
    (F("solid", 8.0, status="new"), "4B"),
    (F("solid", 8.0, status="growing"), "4B"),
    (F("part_solid", 12.0, 8.0, status="baseline"), "4B"),
    (F("part_solid", 8.0, 4.0, status="new"), "4B"),
    (F("part_solid", 12.0, 4.5, status="growing"), "4B"),
    (F("airway", airway_level="segmental", status="stable", prior_category="4A"), "4B"),
    (F("cyst", cyst_wall="thick", cyst_change="growing_wall"), "4B"),
    (F("cyst", cyst_wall="multilocular", cyst_change="growing_multilocular"), "4B"),
    (F("cyst", cyst_wall="multilocular", cyst_change="increased_loculation"), "4B"),
    (F("solid", 6.5, status="slow_growing"), "4B"),
    (F("part_solid", 9.0, 3.0, status="slow_growing"), "4B"),
    # category 4X
    (F("solid", 7.0, status="baseline", suspicious_features=True), "4X"),
    (F("solid", 10.0, status="baseline", suspicious_features=True), "4X"),
    (F("solid", 20.0, status="baseline", suspicious_features=True), "4X"),
]


@pytest.mark.parametrize(("finding", "category"), CELLS)
def test_category_table_cell(finding, category):
    assert categorize(finding) == category
    result = RULE.evaluate(finding, SCREEN)
    assert result.applies and result.category == category


def test_suspicious_features_do_not_upgrade_benign_categories():
    assert categorize(F("solid", 4.0, suspicious_features=True)) == "2"


MANAGEMENT = [
    ("0", F("prior_pending"), "Comparison with prior chest CT", "soon"),
    ("0", F("inflammatory"), "1-3 months", "soon"),
    ("1", F("none"), "12 months", "routine"),
    ("2", F("solid", 5.0), "12 months", "routine"),
    ("3", F("solid", 7.0), "6 months", "routine"),
    ("4A", F("solid", 10.0), "3 months", "soon"),
    ("4B", F("solid", 16.0), "Diagnostic chest CT", "urgent"),
    ("4X", F("solid", 16.0, suspicious_features=True), "As for category 4B", "urgent"),
]


@pytest.mark.parametrize(("category", "finding", "text", "urgency"), MANAGEMENT)
def test_management_per_category(category, finding, text, urgency):
    result = RULE.evaluate(finding, SCREEN)
    assert result.category == category
    assert text in result.recommendation.en
    assert result.urgency == urgency
    assert result.recommendation.zh


def test_most_suspicious_finding_sets_the_exam_category():
    result = RULE.evaluate([F("solid", 5.0), F("solid", 9.0), F("ground_glass", 10.0)], SCREEN)
    assert result.category == "4A"
    assert RULE.evaluate([], SCREEN).category == "1"
    assert RULE.evaluate([F("solid", 16.0), F("incomplete")], SCREEN).category == "0"


def test_not_a_screening_examination():
    result = RULE.evaluate(F("solid", 9.0), PatientContext(age=65, screening=False))
    assert not result.applies
    assert result.not_applicable_reason.en == "not applicable: not a screening examination."


def test_radiograph_is_not_in_scope():
    result = RULE.evaluate(F("solid", 9.0), PatientContext(age=65, screening=True, modality="XR"))
    assert not result.applies and "low-dose CT" in result.not_applicable_reason.en


@pytest.mark.parametrize(("age", "caveat"), [(45, True), (50, False), (80, False), (81, True)])
def test_uspstf_age_is_context_not_a_gate(age, caveat):
    result = RULE.evaluate(F("solid", 5.0), PatientContext(age=age, screening=True))
    assert result.applies
    assert (result.note is not None) == caveat


def test_s_modifier():
    result = with_s_modifier(RULE.evaluate(F("solid", 7.0), SCREEN), True)
    assert result.category == "3S" and "S:" in result.note.en
    unchanged = RULE.evaluate(F("solid", 7.0), SCREEN)
    assert with_s_modifier(unchanged, False) == unchanged


def test_incomplete_inputs_raise():
    with pytest.raises(ValueError):
        categorize(F("solid"))
    with pytest.raises(ValueError):
        categorize(F("airway"))
    with pytest.raises(ValueError):
        categorize(F("part_solid", 8.0))
    with pytest.raises(ValueError):
        F("nodule", 5.0)
