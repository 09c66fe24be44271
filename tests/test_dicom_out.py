"""SR (TID 1500) and secondary capture: re-read with pydicom, validated by highdicom."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from imaging.ddx.knowledge_view import load_view
from imaging.dicom_out import AI_DRAFT, build_sc, build_sr
from imaging.notes import Resources, compose
from imaging.types import ClinicalContext

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_notes import chest_radiograph_analysis, write_knowledge  # noqa: E402


@pytest.fixture(scope="module")
def source() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="module")
def note_and_analysis(tmp_path_factory, source):
    analysis = chest_radiograph_analysis(uid=source.StudyInstanceUID)
    series = dataclasses.replace(analysis.series[0],
                                 series_instance_uid=source.SeriesInstanceUID,
                                 source_sop_instance_uids=(source.SOPInstanceUID,))
    analysis = dataclasses.replace(analysis, series=(series,))
    res = Resources(view=load_view(write_knowledge(tmp_path_factory.mktemp("kb"))))
    note = compose(analysis, ClinicalContext(age=70, history="fever, cough"), resources=res)
    return note, analysis


def _texts(items) -> list[str]:
    out = []
    for item in items:
        if getattr(item, "TextValue", None):
            out.append(item.TextValue)
        out.extend(_texts(getattr(item, "ContentSequence", [])))
    return out


def test_sr_round_trip(tmp_path, note_and_analysis, source):
    note, analysis = note_and_analysis
    path = tmp_path / "sr.dcm"
    build_sr(note, analysis, [source]).save_as(path)
    ds = pydicom.dcmread(path)
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.VerificationFlag == "UNVERIFIED"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    texts = _texts(ds.ContentSequence)
    assert AI_DRAFT in texts
    assert any(t.startswith("Differential diagnosis 1: Pneumonia") for t in texts)
    # the observer device names the algorithm and model version
    device = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121012"]
    assert device and device[0].UID
    names = {i.ConceptNameCodeSequence[0].CodeMeaning: getattr(i, "TextValue", None)
             for i in ds.ContentSequence}
    assert names.get("Device Observer Name") == "radassist"
    assert names.get("Device Observer Model Name") == analysis.model_version
    # the key image is referenced, and the differential is coded
    refs = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert refs.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    coded = [_value(i.ConceptCodeSequence[0]) for i in _walk(ds.ContentSequence)
             if getattr(i, "ValueType", "") == "CODE"
             and i.ConceptNameCodeSequence[0].CodeValue.startswith("ddx-")]
    assert coded == [d.diagnosis_id for d in note.differential]


def _value(code) -> str:
    return getattr(code, "CodeValue", None) or code.LongCodeValue


def _walk(items):
    for item in items:
        yield item
        yield from _walk(getattr(item, "ContentSequence", []))


def test_sr_uids_are_deterministic(note_and_analysis, source):
    note, analysis = note_and_analysis
    a, b = build_sr(note, analysis, [source]), build_sr(note, analysis, [source])
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    other = dataclasses.replace(analysis, model_version="test-0.2")
    assert build_sr(note, other, [source]).SOPInstanceUID != a.SOPInstanceUID


def test_sc_round_trip(tmp_path, note_and_analysis, source):
    note, analysis = note_and_analysis
    path = tmp_path / "sc.dcm"
    sc = build_sc(note, analysis, source)
    sc.save_as(path)
    ds = pydicom.dcmread(path)
    image = hd.imread(path)  # highdicom parses the image and its pixel description
    assert image.SOPClassUID == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.PhotometricInterpretation == "RGB" and ds.BurnedInAnnotation == "YES"
    assert ds.ImageComments == AI_DRAFT
    pixels = ds.pixel_array
    assert pixels.shape[2] == 3 and pixels.shape[1] >= 512
    # banner: yellow text pixels on black in the top rows; saliency tints the upper right
    top = pixels[:16]
    assert ((top[..., 0] > 200) & (top[..., 1] > 200) & (top[..., 2] < 80)).sum() > 50
    body = pixels[40:200, 380:470].astype(int)
    assert (body[..., 0] - body[..., 2]).mean() > 40
    assert build_sc(note, analysis, source).SOPInstanceUID == sc.SOPInstanceUID


def test_sc_without_key_image_is_none(note_and_analysis):
    note, analysis = note_and_analysis
    bare = dataclasses.replace(analysis, series=(dataclasses.replace(
        analysis.series[0], key_image=None),))
    assert build_sc(note, bare) is None
    assert np.asarray(analysis.series[0].key_image).ndim == 2


def test_pipeline_objects_reference_the_ingested_study(tmp_path):
    from imaging.pipeline import dicom_objects, source_datasets
    from pacs_bridge.ingest import ingest

    study = ingest([get_testdata_file("CT_small.dcm")]).studies[0]
    instance = study.series[0].instances[0]
    analysis = chest_radiograph_analysis(uid=study.study_instance_uid)
    series = dataclasses.replace(analysis.series[0],
                                 series_instance_uid=study.series[0].series_instance_uid,
                                 source_sop_instance_uids=(instance.sop_instance_uid,))
    analysis = dataclasses.replace(analysis, series=(series,))
    res = Resources(view=load_view(write_knowledge(tmp_path / "kb")))
    note = compose(analysis, ClinicalContext(age=50), resources=res)
    assert [ds.SOPInstanceUID for ds in source_datasets(study, analysis)] == [
        instance.sop_instance_uid]
    sr, sc = dicom_objects(study, analysis, note)
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == study.study_instance_uid
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == instance.sop_instance_uid
    assert sr.SOPInstanceUID != sc.SOPInstanceUID


def test_source_without_patient_attributes_still_gives_valid_objects(tmp_path, note_and_analysis,
                                                                     source):
    note, analysis = note_and_analysis
    bare = source.copy()
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID",
                    "AccessionNumber", "ReferringPhysicianName"):
        if keyword in bare:
            delattr(bare, keyword)
    sr = build_sr(note, analysis, [bare])
    sr.save_as(tmp_path / "sr.dcm")
    assert hd.sr.srread(tmp_path / "sr.dcm").PatientID == ""
    build_sc(note, analysis, bare).save_as(tmp_path / "sc.dcm")
    assert pydicom.dcmread(tmp_path / "sc.dcm").StudyInstanceUID == source.StudyInstanceUID


def test_source_with_empty_character_set_gives_valid_objects(tmp_path, note_and_analysis, source):
    """dcmqi's ct-3slice carries an empty Specific Character Set (the default repertoire);
    highdicom refuses '' and the bridge's study ended in 'failed' before this was handled."""
    note, analysis = note_and_analysis
    empty = source.copy()
    empty.SpecificCharacterSet = ""
    build_sr(note, analysis, [empty]).save_as(tmp_path / "sr.dcm")
    build_sc(note, analysis, empty).save_as(tmp_path / "sc.dcm")
    assert hd.sr.srread(tmp_path / "sr.dcm").StudyInstanceUID == source.StudyInstanceUID
    assert pydicom.dcmread(tmp_path / "sc.dcm").StudyInstanceUID == source.StudyInstanceUID
