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
