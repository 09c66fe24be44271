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
    # in rank order, named "Differential Diagnosis/Impression" (DCM 111023)
    coded = [_value(i.ConceptCodeSequence[0]) for i in _walk(ds.ContentSequence)
             if getattr(i, "ValueType", "") == "CODE"
             and i.ConceptNameCodeSequence[0].CodeValue == "111023"]
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


def _codes(ds) -> dict[str, tuple[str, str]]:
    """Measurement concept (scheme, value) -> meaning, over the whole content tree."""
    return {(i.ConceptNameCodeSequence[0].CodingSchemeDesignator,
             _value(i.ConceptNameCodeSequence[0])): i.ConceptNameCodeSequence[0].CodeMeaning
        for i in _walk(ds.ContentSequence) if getattr(i, "ValueType", "") == "NUM"
        and "MeasuredValueSequence" in i
        and i.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "1"}


def test_sr_uses_standard_codes_where_they_exist(tmp_path, note_and_analysis, source):
    note, analysis = note_and_analysis
    build_sr(note, analysis, [source]).save_as(tmp_path / "sr.dcm")
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    coded = _codes(ds)
    # the fixture's radiograph header says DX: CID 29 Digital Radiography
    assert coded[("DCM", "DX")] == "Digital Radiography"
    assert coded[("SCT", "60046008")] == "Pleural effusion"
    # no offline standard concept: private, and the scheme is declared
    assert ("99RADASSIST", "finding:pneumonia") in coded
    assert ("99RADASSIST", "region:chest_radiograph") in coded
    assert [i.CodingSchemeDesignator for i in ds.CodingSchemeIdentificationSequence] == [
        "99RADASSIST"]
    follow = [i for i in _walk(ds.ContentSequence)
              if _value(i.ConceptNameCodeSequence[0]) == "111053"]
    assert len(follow) == len(note.follow_up)


def test_sr_observation_concepts():
    from imaging.dicom_out.sr import observation_concept

    def pair(code, header=""):
        c = observation_concept(code, "label", header)
        return c.scheme_designator, c.value

    assert pair("modality:CT") == ("DCM", "CT") and pair("modality:MR") == ("DCM", "MR")
    assert pair("modality:XR", "CR") == ("DCM", "CR")
    assert pair("modality:XR", "OT") == ("DCM", "RG")  # a wrapped JPEG: generic radiograph
    assert pair("region:thorax") == ("SCT", "816094009")
    assert pair("plane:axial") == ("SCT", "62824007")
    assert pair("finding:edema") == ("SCT", "19242006")
    assert pair("finding:infiltration") == ("DCM", "112121")
    assert pair("finding:effusion", "DX") == ("SCT", "60046008")  # pleural, on a radiograph
    assert pair("finding:effusion", "MR") == ("SCT", "41699000")  # any effusion on CT/MR
    assert pair("finding:haemorrhage", "CT") == ("SCT", "50960005")
    for private in ("finding:covid19", "finding:atelectasis", "region:spine_muscles",
                    "region:reproductive_urinary", "quality:ood", "finding:fracture",
                    "finding:air"):
        assert pair(private) == ("99RADASSIST", private)


def test_sr_image_library_describes_the_key_image(note_and_analysis, source):
    note, analysis = note_and_analysis
    ds = build_sr(note, analysis, [source])
    names = [i.ConceptNameCodeSequence[0].CodeValue for i in ds.ContentSequence]
    # TID 1500: procedure reported, then the Image Library, then the measurements
    assert names.index("121058") < names.index("111028") < names.index("126010")
    library = ds.ContentSequence[names.index("111028")]
    (group,) = library.ContentSequence
    (entry,) = [i for i in group.ContentSequence if i.ValueType == "IMAGE"]
    assert entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    descriptors = {i.ConceptNameCodeSequence[0].CodeMeaning for i in entry.ContentSequence}
    assert {"Modality", "Pixel Data Rows", "Slice Thickness"} <= descriptors  # CT: TID 1604


def test_sr_image_library_without_geometry_keeps_common_descriptors(note_and_analysis,
                                                                    source):
    from imaging.dicom_out.sr import image_library

    bare = source.copy()
    del bare.PixelSpacing  # TID 1604 needs it: the entry keeps the TID 1602 descriptors
    library = image_library([bare])
    entry = library.ContentSequence[0].ContentSequence[-1]
    descriptors = {i.ConceptNameCodeSequence[0].CodeMeaning for i in entry.ContentSequence}
    assert "Modality" in descriptors and "Slice Thickness" not in descriptors
    assert "ContentSequence" not in image_library([])


def test_sr_content_is_the_same_bytes_twice(note_and_analysis, source):
    from pydicom.filebase import DicomBytesIO

    note, analysis = note_and_analysis

    def content() -> bytes:
        ds = build_sr(note, analysis, [source])
        out = pydicom.Dataset()
        out.SpecificCharacterSet = ds.SpecificCharacterSet
        out.ContentSequence = ds.ContentSequence
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        pydicom.filewriter.write_dataset(buf, out)
        return buf.getvalue()

    assert content() == content()


def test_sc_laterality(note_and_analysis, source):
    from imaging.dicom_out.sc import laterality

    note, analysis = note_and_analysis
    ref = source.copy()
    assert laterality(None) == ""
    ref.BodyPartExamined = "KNEE"
    assert laterality(ref) == ""  # paired, side unknown: present and empty
    ref.ImageLaterality = "R"
    assert laterality(ref) == "R"
    ref.Laterality = "L"
    assert laterality(ref) == "L"
    del ref.Laterality, ref.ImageLaterality
    ref.BodyPartExamined = "HEAD"
    assert laterality(ref) is None  # unpaired: left out
    sc = build_sc(note, analysis, ref)
    assert "Laterality" not in sc and sc.BodyPartExamined == "HEAD"
    assert build_sc(note, analysis, None).Laterality == ""


def test_acr_nema_dates_and_times_give_valid_objects(tmp_path, note_and_analysis, source):
    """fo-dicom's CT-MONO2-16-ankle has StudyTime '11:27:24': highdicom refused it and the
    study got no SR; the DICOM form is written instead, and an unreadable value empty."""
    note, analysis = note_and_analysis
    old = source.copy()
    old.StudyDate, old.StudyTime, old.PatientBirthDate = "1993.11.22", "11:27:24", "19xx"
    build_sr(note, analysis, [old]).save_as(tmp_path / "sr.dcm")
    build_sc(note, analysis, old).save_as(tmp_path / "sc.dcm")
    for name in ("sr.dcm", "sc.dcm"):
        ds = pydicom.dcmread(tmp_path / name)
        assert (ds.StudyDate, ds.StudyTime, ds.PatientBirthDate) == ("19931122", "112724", "")


def test_private_scheme_declared_only_when_used(note_and_analysis, source):
    note, analysis = note_and_analysis
    assert "CodingSchemeIdentificationSequence" in build_sr(note, analysis, [source])
    series = dataclasses.replace(analysis.series[0], observations=tuple(
        o for o in analysis.series[0].observations if o.code == "finding:effusion"))
    plain = dataclasses.replace(analysis, series=(series,))
    bare = dataclasses.replace(note, differential=(), follow_up=(), observations=tuple(
        o for o in note.observations if o.code == "finding:effusion"))
    assert "CodingSchemeIdentificationSequence" not in build_sr(bare, plain, [source])
