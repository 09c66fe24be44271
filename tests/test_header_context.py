"""The clinical context a study's header carries reaches the composer (bridge studies too)."""

from __future__ import annotations

from pydicom.data import get_testdata_file

from imaging.header_context import context_from_study, merged
from imaging.types import ClinicalContext
from pacs_bridge.ingest import group, read_instance


def _study(**attrs):
    from pydicom import dcmread

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    for k, v in attrs.items():
        setattr(ds, k, v)
    return group([read_instance("ct", ds)])[0]


def test_age_sex_and_reason_for_the_exam_from_the_header():
    study = _study(PatientAge="064Y", PatientSex="F",
                   ReasonForTheRequestedProcedure="fever, productive cough")
    ctx = context_from_study(study)
    assert (ctx.age, ctx.sex, ctx.history) == (64, "F", "fever, productive cough")


def test_age_from_birth_date_and_placeholders_ignored():
    study = _study(PatientAge="000Y", PatientBirthDate="19600615", StudyDate="20240614")
    assert context_from_study(study).age == 63
    assert context_from_study(_study(PatientAge="000Y", PatientBirthDate="")).age is None
    assert context_from_study(_study(PatientAge="006M")).age == 0


def test_what_the_user_gives_wins_and_fills_from_the_header():
    study = _study(PatientAge="070Y", PatientSex="M")
    ctx = merged(ClinicalContext(age=40, history="headache"), study)
    assert (ctx.age, ctx.sex, ctx.history) == (40, "M", "headache")
    assert merged(None, study).age == 70


# -- every item, with its source; nothing identifying (issue 18) ----------------------------

def _items(ctx) -> dict[str, tuple[str, str]]:
    return {i.key: (i.value, i.source) for i in ctx.items}


def test_every_header_field_becomes_an_item_with_its_source():
    from pydicom.dataset import Dataset

    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-A0100", "SRT", "Brain"
    request = Dataset()
    request.RequestedProcedureDescription = "MR brain with contrast"
    request.ReasonForTheRequestedProcedure = "new seizures"
    study = _study(PatientAge="045Y", PatientSex="F", BodyPartExamined="HEAD",
                   AnatomicRegionSequence=[region], Laterality="L",
                   StudyDescription="MR BRAIN", SeriesDescription="AX T1",
                   ProtocolName="brain routine", RequestAttributesSequence=[request],
                   ReasonForStudy="rule out tumour", AdmittingDiagnosesDescription="epilepsy",
                   AdditionalPatientHistory="headache for 2 weeks")
    items = _items(merged(None, study))
    assert items["age"] == ("45", "header") and items["sex"] == ("F", "header")
    assert items["body_part"] == ("HEAD", "header")
    assert items["anatomic_region"] == ("Brain", "header")
    assert items["laterality"] == ("L", "header")
    assert items["study_description"] == ("MR BRAIN", "header")
    assert items["series_description"] == ("AX T1", "header")
    assert items["protocol"] == ("brain routine", "header")
    assert items["requested_procedure"] == ("MR brain with contrast", "header")
    assert items["reason"] == ("new seizures; rule out tumour", "header")
    assert items["admitting_diagnoses"] == ("epilepsy", "header")
    assert items["patient_history"] == ("headache for 2 weeks", "header")
    ctx = merged(None, study)
    assert ctx.history == "new seizures; rule out tumour; epilepsy; headache for 2 weeks"


def test_the_user_overrides_the_header_item_by_item():
    study = _study(PatientAge="070Y", PatientSex="M", ReasonForStudy="fall",
                   AdmittingDiagnosesDescription="syncope", BodyPartExamined="HEAD")
    ctx = merged(ClinicalContext(age=40, history="headache", lang="zh"), study)
    items = _items(ctx)
    assert items["age"] == ("40", "user") and items["sex"] == ("M", "header")
    assert items["history"] == ("headache", "user")
    # the typed history replaces the header's clinical question, not only in the ranking
    assert "reason" not in items and "admitting_diagnoses" not in items
    assert ctx.history == "headache" and ctx.lang == "zh"
    assert items["body_part"] == ("HEAD", "header")
    assert merged(ctx, study) is ctx  # merging twice changes nothing


def test_no_identifying_field_is_ever_copied():
    study = _study(PatientName="Doe^Johnathan", PatientID="MRN4455667", PatientAge="090Y",
                   PatientBirthDate="19300101", AccessionNumber="ACC778899",
                   ReferringPhysicianName="Smithers^Waylon",
                   StudyDescription="CT head Johnathan Doe MRN4455667 2024-03-02",
                   ReasonForStudy="fall at home, seen by Dr. Smithers, call 555-123-4567",
                   InstitutionName="St Elsewhere Hospital",
                   AdditionalPatientHistory="transferred from St Elsewhere Hospital")
    ctx = merged(None, study)
    text = " ".join(f"{i.key} {i.value}" for i in ctx.items).lower()
    for secret in ("doe", "johnathan", "4455667", "778899", "smithers", "waylon", "1930",
                   "2024", "555", "elsewhere"):
        assert secret not in text, (secret, text)
    items = _items(ctx)
    assert items["age"] == ("90+", "header")  # an age over 89 identifies: shown as 90+
    assert items["study_description"][0].startswith("CT head [name] [name] [id]")
    assert ctx.age == 90
    typed = merged(ClinicalContext(age=95), study)
    assert _items(typed)["age"] == ("90+", "user") and typed.age == 95  # ranked as given


def test_patient_sex_other_is_shown_but_not_ranked():
    ctx = merged(None, _study(PatientSex="O"))
    assert _items(ctx)["sex"] == ("O", "header") and ctx.sex is None
