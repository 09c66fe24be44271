"""Follow-up rules: each one's apply and not-apply paths, and the registry contract."""

from __future__ import annotations

import pytest

from imaging.knowledge.guidelines import (
    RULES,
    AdnexalCystFinding,
    AdrenalFinding,
    LiverObservation,
    NoduleFinding,
    PatientContext,
    PneumoniaFinding,
    RenalCystFinding,
    ScreeningFinding,
    StrokeFinding,
    ThyroidFinding,
)
from imaging.knowledge.schema import has_cjk
from imaging.types import ClinicalContext


def run(rule_id, finding, **patient):
    return RULES[rule_id].evaluate(finding, PatientContext(**patient))


# --- pneumonia ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("patient", "applies", "text"),
    [
        ({"age": 62, "modality": "XR"}, True, "age 50 or over"),
        ({"age": 50, "modality": "XR"}, True, "age 50 or over"),
        ({"age": 35, "smoker": True, "modality": "XR"}, True, "smoker"),
        ({"age": 35, "smoker": False, "modality": "XR"}, False, "age under 50"),
        ({"modality": "XR"}, False, "age and smoking status not given"),
        ({"age": 8, "modality": "XR"}, False, "child"),
    ],
)
def test_pneumonia_followup(patient, applies, text):
    result = run("pneumonia_followup_cxr", PneumoniaFinding(), **patient)
    assert result.applies is applies
    shown = result.recommendation if applies else result.not_applicable_reason
    assert text in shown.en
    if applies:
        assert "6-8 weeks" in result.recommendation.en and result.urgency == "routine"
    assert "BTS" in result.citation
    assert "Acute Respiratory Illness in Immunocompetent Patients" in result.citation


def test_pneumonia_persisting_symptoms_in_young_non_smoker():
    result = run("pneumonia_followup_cxr", PneumoniaFinding(persisting_symptoms=True),
                 age=30, smoker=False)
    assert result.applies and "persisting" in result.recommendation.en


# --- stroke -------------------------------------------------------------------------------

def test_stroke_within_window_is_emergent():
    result = run("stroke_vascular_imaging", StrokeFinding("ischemic", 3), age=70)
    assert result.applies and result.urgency == "emergent"
    assert "CT angiography" in result.recommendation.en
    assert "AHA/ASA 2019" in result.citation


def test_stroke_unknown_onset_is_treated_as_in_window_and_says_so():
    result = run("stroke_vascular_imaging", StrokeFinding("ischemic"), age=70)
    assert result.urgency == "emergent" and "Onset time not stated" in result.note.en


@pytest.mark.parametrize("finding", [StrokeFinding("ischemic", 48), StrokeFinding("tia", 2)])
def test_stroke_late_or_tia_is_urgent_neck_imaging(finding):
    result = run("stroke_vascular_imaging", finding, age=70)
    assert result.applies and result.urgency == "urgent"
    assert "carotid" in result.recommendation.en


def test_stroke_haemorrhagic_not_applicable():
    result = run("stroke_vascular_imaging", StrokeFinding("hemorrhagic"), age=70)
    assert not result.applies and "haemorrhagic" in result.not_applicable_reason.en


# --- adrenal ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("finding", "patient", "category", "urgency"),
    [
        (AdrenalFinding(8), {}, "small", "none"),
        (AdrenalFinding(25, macroscopic_fat=True), {}, "benign", "none"),
        (AdrenalFinding(25, unenhanced_hu=5), {}, "adenoma", "none"),
        (AdrenalFinding(25, unenhanced_hu=10), {}, "adenoma", "none"),
        (AdrenalFinding(25, unenhanced_hu=11, absolute_washout=65), {}, "adenoma", "none"),
        (AdrenalFinding(25, unenhanced_hu=30, relative_washout=45), {}, "adenoma", "none"),
        (AdrenalFinding(25, signal_drop_chemical_shift=True), {"modality": "MR"}, "adenoma",
         "none"),
        (AdrenalFinding(25, unenhanced_hu=30, stable_1yr=True), {}, "stable", "none"),
        (AdrenalFinding(25, unenhanced_hu=30, enlarging=True), {}, "enlarging", "soon"),
        (AdrenalFinding(25, unenhanced_hu=30), {}, "indeterminate", "routine"),
        (AdrenalFinding(45, unenhanced_hu=30), {}, "large", "soon"),
        (AdrenalFinding(25, unenhanced_hu=30), {"known_cancer": True}, "indeterminate_cancer",
         "soon"),
    ],
)
def test_adrenal_paths(finding, patient, category, urgency):
    result = run("adrenal_incidentaloma_acr2017", finding, age=60, **patient)
    assert result.applies and result.category == category and result.urgency == urgency


@pytest.mark.parametrize(("patient", "text"), [({"age": 12}, "age under 18"),
                                                ({"age": 50, "modality": "XR"}, "use CT or MR")])
def test_adrenal_not_applicable(patient, text):
    result = run("adrenal_incidentaloma_acr2017", AdrenalFinding(25), **patient)
    assert not result.applies and text in result.not_applicable_reason.en


# --- Bosniak ------------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "urgency", "text"), [
    ("I", "none", "no follow-up"), ("II", "none", "no follow-up"),
    ("IIF", "routine", "6 months and 12 months, then annually for 5 years"),
    ("III", "soon", "surgery or active surveillance"), ("IV", "urgent", "treatment"),
])
def test_bosniak_classes(cls, urgency, text):
    result = run("bosniak_2019", RenalCystFinding(cls), age=55)
    assert result.applies and result.category == cls and result.urgency == urgency
    assert text in result.recommendation.en


@pytest.mark.parametrize(("finding", "patient", "text"), [
    (RenalCystFinding(None), {"age": 55}, "classify with renal-mass protocol CT or MR"),
    (RenalCystFinding("II"), {"age": 55, "modality": "US"}, "classify with renal-mass"),
    (RenalCystFinding("II"), {"age": 9}, "child"),
])
def test_bosniak_not_applicable(finding, patient, text):
    result = run("bosniak_2019", finding, **patient)
    assert not result.applies and text in result.not_applicable_reason.en


def test_bosniak_rejects_unknown_class():
    with pytest.raises(ValueError):
        run("bosniak_2019", RenalCystFinding("V"), age=55)


# --- thyroid ------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "age", "applies_us"), [
    (12, 30, True), (9, 30, False), (12, 50, False), (15, 50, True), (10, 34, True),
])
def test_thyroid_size_thresholds_by_age(size, age, applies_us):
    result = run("thyroid_incidental_acr2015", ThyroidFinding(size), age=age)
    assert result.applies
    assert ("ultrasound" in result.recommendation.en) is applies_us


def test_thyroid_overrides_and_not_applicable():
    assert run("thyroid_incidental_acr2015", ThyroidFinding(5, suspicious_features=True),
               age=60).urgency == "soon"
    assert run("thyroid_incidental_acr2015", ThyroidFinding(5, fdg_avid=True),
               age=60, modality="PET").category == "pet_avid"
    assert run("thyroid_incidental_acr2015", ThyroidFinding(30, limited_life_expectancy=True),
               age=90).urgency == "none"
    us = run("thyroid_incidental_acr2015", ThyroidFinding(12), age=60, modality="US")
    assert not us.applies and "TI-RADS" in us.not_applicable_reason.en
    unknown = run("thyroid_incidental_acr2015", ThyroidFinding(12))
    assert unknown.applies and "Age not stated" in unknown.note.en


# --- adnexal cyst -------------------------------------------------------------------------

@pytest.mark.parametrize(("size_mm", "post", "category", "text"), [
    (25, False, "O-RADS 1", "no follow-up"),
    (45, False, "O-RADS 2", "no follow-up"),
    (70, False, "O-RADS 2", "8-12 weeks"),
    (25, True, "O-RADS 2", "no follow-up"),
    (60, True, "O-RADS 2", "1 year"),
    (110, False, "O-RADS 3", "gynaecologist"),
    (110, True, "O-RADS 3", "gynaecologist"),
])
def test_adnexal_simple_cyst(size_mm, post, category, text):
    result = run("adnexal_simple_cyst_orads", AdnexalCystFinding(size_mm), sex="F",
                 modality="US", postmenopausal=post)
    assert result.applies and result.category == category and text in result.recommendation.en


def test_adnexal_not_applicable_and_inferred_status():
    male = run("adnexal_simple_cyst_orads", AdnexalCystFinding(40), sex="M", modality="US")
    assert not male.applies
    ct = run("adnexal_simple_cyst_orads", AdnexalCystFinding(40), sex="F", modality="CT")
    assert not ct.applies and "pelvic ultrasound" in ct.not_applicable_reason.en
    inferred = run("adnexal_simple_cyst_orads", AdnexalCystFinding(40), sex="F", modality="US",
                   age=60)
    assert inferred.recommendation.en.endswith("1 year.") and "inferred" in inferred.note.en


# --- registry and bilingual contract ------------------------------------------------------

SAMPLES = {
    "fleischner_2017": [NoduleFinding(7), NoduleFinding(4, "ground_glass")],
    "lung_rads_2022": [ScreeningFinding("solid", 7.0), ScreeningFinding("inflammatory")],
    "pneumonia_followup_cxr": [PneumoniaFinding()],
    "stroke_vascular_imaging": [StrokeFinding(), StrokeFinding("hemorrhagic")],
    "adrenal_incidentaloma_acr2017": [AdrenalFinding(25), AdrenalFinding(5)],
    "bosniak_2019": [RenalCystFinding("IIF"), RenalCystFinding(None)],
    "thyroid_incidental_acr2015": [ThyroidFinding(20)],
    "adnexal_simple_cyst_orads": [AdnexalCystFinding(60)],
    "li_rads_2018": [LiverObservation(25, aphe=True, washout=True), LiverObservation(8)],
}
PATIENTS = [
    PatientContext(), PatientContext(age=20, sex="F", modality="XR"),
    PatientContext(age=60, sex="F", modality="US", screening=True, risk="low"),
    PatientContext(age=70, sex="M", known_cancer=True, smoker=True),
]


def test_every_rule_has_samples():
    assert set(SAMPLES) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_every_result_string_is_bilingual(rule_id):
    rule = RULES[rule_id]
    assert rule.name.en and has_cjk(rule.name.zh) and rule.citation
    for finding in SAMPLES[rule_id]:
        assert isinstance(finding, rule.finding_type)
        for patient in PATIENTS:
            result = rule.evaluate(finding, patient)
            assert result.rule_id == rule_id and result.citation == rule.citation
            for text in result.bilinguals():
                assert text.en.strip() and has_cjk(text.zh), (rule_id, text)


def test_patient_context_from_clinical_history():
    ctx = PatientContext.from_clinical(ClinicalContext(
        age=58, sex="M", history="40 pack-year smoker, history of treated colon cancer"), "CT")
    assert ctx.smoker and ctx.risk == "high" and ctx.known_cancer and ctx.age == 58
    plain = PatientContext.from_clinical(ClinicalContext(age=40, history="non-smoker, cough"))
    assert plain.smoker is False and plain.risk is None and not plain.known_cancer
    screen = PatientContext.from_clinical(ClinicalContext(history="lung cancer screening LDCT"))
    assert screen.screening
    family = PatientContext.from_clinical(ClinicalContext(history="family history of cancer"))
    assert not family.known_cancer  # a relative's cancer is not the patient's
    immuno = PatientContext.from_clinical(ClinicalContext(history="HIV, CD4 50"))
    assert immuno.immunocompromised


NO_MEASUREMENT_NEEDED = {"pneumonia_followup_cxr", "stroke_vascular_imaging"}


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_every_rule_accepts_an_unmeasured_finding_and_says_why(rule_id):
    """The note composer has no measurements: `finding_type()` must still give a reason."""
    rule = RULES[rule_id]
    for patient in PATIENTS:
        result = rule.evaluate(rule.finding_type(), patient)
        if rule_id in NO_MEASUREMENT_NEEDED:
            continue
        assert not result.applies, (rule_id, patient)
        assert result.not_applicable_reason.en.startswith(("not applicable", "radiograph:"))
        assert has_cjk(result.not_applicable_reason.zh)


def test_scope_reason_comes_before_missing_measurement():
    screening = RULES["lung_rads_2022"].evaluate(
        ScreeningFinding(), PatientContext(age=60, modality="CT"))
    assert screening.not_applicable_reason.en == "not applicable: not a screening examination."
    adnexal = RULES["adnexal_simple_cyst_orads"].evaluate(
        AdnexalCystFinding(), PatientContext(sex="F", modality="CT"))
    assert "pelvic ultrasound" in adnexal.not_applicable_reason.en
    bosniak = RULES["bosniak_2019"].evaluate(RenalCystFinding(), PatientContext(age=50))
    assert "classify with renal-mass protocol CT or MR" in bosniak.not_applicable_reason.en
