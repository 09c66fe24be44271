"""Fleischner 2017: one test per cell of both published tables, plus every stated exclusion."""

from __future__ import annotations

import pytest

from imaging.knowledge.guidelines import RULES, NoduleFinding, PatientContext
from imaging.knowledge.guidelines.fleischner import CITATION

RULE = RULES["fleischner_2017"]
ADULT_LOW = PatientContext(age=60, risk="low")
ADULT_HIGH = PatientContext(age=60, risk="high")

# (size_mm, multiple, risk, expected English recommendation, urgency) — Table 1, solid nodules
SOLID_CELLS = [
    (4.0, False, "low", "No routine follow-up.", "none"),
    (4.0, False, "high", "Optional CT at 12 months.", "routine"),
    (7.0, False, "low", "CT at 6-12 months, then consider CT at 18-24 months.", "routine"),
    (7.0, False, "high", "CT at 6-12 months, then CT at 18-24 months.", "routine"),
    (12.0, False, "low", "Consider CT at 3 months, PET/CT, or tissue sampling.", "soon"),
    (12.0, False, "high", "Consider CT at 3 months, PET/CT, or tissue sampling.", "soon"),
    (4.0, True, "low", "No routine follow-up.", "none"),
    (4.0, True, "high", "Optional CT at 12 months.", "routine"),
    (7.0, True, "low", "CT at 3-6 months, then consider CT at 18-24 months.", "routine"),
    (7.0, True, "high", "CT at 3-6 months, then CT at 18-24 months.", "routine"),
    (12.0, True, "low", "CT at 3-6 months, then consider CT at 18-24 months.", "soon"),
    (12.0, True, "high", "CT at 3-6 months, then consider CT at 18-24 months.", "soon"),
]


@pytest.mark.parametrize(("size", "multiple", "risk", "expected", "urgency"), SOLID_CELLS)
def test_solid_table_cell(size, multiple, risk, expected, urgency):
    result = RULE.evaluate(NoduleFinding(size, "solid", multiple=multiple),
                           PatientContext(age=60, risk=risk))
    assert result.applies
    assert result.recommendation.en == expected
    assert result.urgency == urgency
    assert result.citation == CITATION
    assert result.note is None  # risk and age known: no caveat


# Table 2, subsolid nodules: (type, size, multiple, expected start of English text)
SUBSOLID_CELLS = [
    ("ground_glass", 5.0, False, "No routine follow-up."),
    ("ground_glass", 6.0, False,
     "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years."),
    ("part_solid", 5.0, False, "No routine follow-up."),
    ("part_solid", 8.0, False, "CT at 3-6 months to confirm persistence. If unchanged and the "
                               "solid component remains <6 mm, annual CT for 5 years."),
    ("ground_glass", 4.0, True, "CT at 3-6 months. If stable, consider CT at 2 and 4 years."),
    ("part_solid", 4.0, True, "CT at 3-6 months. If stable, consider CT at 2 and 4 years."),
    ("ground_glass", 9.0, True,
     "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s)."),
    ("part_solid", 9.0, True,
     "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s)."),
]


@pytest.mark.parametrize(("kind", "size", "multiple", "expected"), SUBSOLID_CELLS)
def test_subsolid_table_cell(kind, size, multiple, expected):
    solid = 2.0 if kind == "part_solid" else None
    result = RULE.evaluate(NoduleFinding(size, kind, solid, multiple=multiple), ADULT_LOW)
    assert result.applies
    assert result.recommendation.en == expected
    assert result.note is None


def test_part_solid_with_solid_component_6mm_is_highly_suspicious():
    result = RULE.evaluate(NoduleFinding(12, "part_solid", solid_component_mm=7), ADULT_LOW)
    assert result.applies and result.urgency == "soon"
    assert "highly suspicious" in result.note.en
    assert "PET/CT" in result.note.en


@pytest.mark.parametrize(("size", "band"), [(5.4, "lt6"), (5.5, "6to8"), (8.0, "6to8"),
                                            (8.4, "6to8"), (8.5, "gt8")])
def test_size_is_rounded_half_up_to_whole_mm(size, band):
    result = RULE.evaluate(NoduleFinding(size, "solid"), ADULT_HIGH)
    assert band in result.category


@pytest.mark.parametrize(
    ("patient", "reason"),
    [
        (PatientContext(age=34, risk="low"), "not applicable: age under 35"),
        (PatientContext(age=60, known_cancer=True), "known primary cancer"),
        (PatientContext(age=60, immunocompromised=True), "immunocompromised"),
        (PatientContext(age=60, screening=True), "lung cancer screening"),
        (PatientContext(age=60, modality="XR"), "radiograph: characterise on CT first"),
        (PatientContext(age=60, modality="MR"), "Fleischner applies to CT"),
    ],
)
def test_exclusions_say_why(patient, reason):
    result = RULE.evaluate(NoduleFinding(7, "solid"), patient)
    assert not result.applies
    assert result.recommendation is None
    assert reason in result.not_applicable_reason.en
    assert result.not_applicable_reason.zh


def test_age_35_is_in_scope():
    assert RULE.evaluate(NoduleFinding(7, "solid"), PatientContext(age=35, risk="low")).applies


def test_unknown_risk_gives_conservative_high_risk_and_names_low_risk_alternative():
    result = RULE.evaluate(NoduleFinding(7, "solid"), PatientContext(age=60))
    high = RULE.evaluate(NoduleFinding(7, "solid"), ADULT_HIGH)
    assert result.recommendation == high.recommendation
    assert "Risk not stated" in result.note.en
    assert "consider CT at 18-24 months" in result.note.en  # the low-risk alternative
    same = RULE.evaluate(NoduleFinding(12, "solid"), PatientContext(age=60))
    assert "same for low and high risk" in same.note.en


def test_unknown_age_is_flagged_not_refused():
    result = RULE.evaluate(NoduleFinding(4, "solid"), PatientContext(risk="low"))
    assert result.applies and "Age not stated" in result.note.en


def test_benign_calcification_and_perifissural_need_no_follow_up():
    calc = RULE.evaluate(NoduleFinding(12, "solid", benign_calcification=True), ADULT_HIGH)
    assert calc.applies and calc.urgency == "none"
    peri = RULE.evaluate(NoduleFinding(7, "solid", perifissural=True), ADULT_HIGH)
    assert peri.applies and peri.urgency == "none"
    big = RULE.evaluate(NoduleFinding(11, "solid", perifissural=True), ADULT_HIGH)
    assert big.urgency == "soon"  # 10 mm or more: treated as an ordinary solid nodule


def test_missing_size_is_not_guessed():
    result = RULE.evaluate(NoduleFinding(None, "solid"), ADULT_HIGH)
    assert not result.applies and "size not measured" in result.not_applicable_reason.en


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        NoduleFinding(5, "cavitary")
    with pytest.raises(ValueError):
        PatientContext(risk="medium")


def test_unmeasured_nodule_still_explains_scope():
    """A caller without a measurement (the note composer) still gets the scope reasons."""
    xr = RULE.evaluate(NoduleFinding(), PatientContext(age=60, modality="XR"))
    assert "radiograph: characterise on CT first" in xr.not_applicable_reason.en
    young = RULE.evaluate(NoduleFinding(), PatientContext(age=20))
    assert young.not_applicable_reason.en == "not applicable: age under 35."
    ct = RULE.evaluate(NoduleFinding(), PatientContext(age=60))
    assert "size not measured" in ct.not_applicable_reason.en
