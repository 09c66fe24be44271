"""De-identification proof: no planted PHI value survives anywhere, in elements or in bytes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from pacs_bridge.deid import BASIC_PROFILE, RESOLVE, Deidentifier, profile_code
from pacs_bridge.ingest import ingest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_ingest import bundled, written_bytes  # noqa: E402

# Text attributes the Basic Profile lists, each planted with its own recognisable PHI value.
PLANTED_TEXT = {
    "PatientName": "PHINAME^JOHN",
    "PatientID": "PHIID778899",
    "OtherPatientIDs": "PHIOTHERID",
    "OtherPatientNames": "PHIOTHER^NAME",
    "PatientBirthDate": "19510203",
    "PatientBirthTime": "071122",
    "PatientAddress": "PHIADDRESS 12 ELM STREET",
    "PatientTelephoneNumbers": "PHIPHONE555",
    "PatientMotherBirthName": "PHIMOTHER^MAIDEN",
    "MilitaryRank": "PHIRANK",
    "PatientComments": "PHICOMMENT patient is the mayor",
    "AdditionalPatientHistory": "PHIHISTORY fell at home",
    "InstitutionName": "PHIHOSPITAL GENERAL",
    "InstitutionAddress": "PHIINSTADDRESS 1 MAIN RD",
    "InstitutionalDepartmentName": "PHIDEPARTMENT",
    "ReferringPhysicianName": "PHIREFERRER^DR",
    "ReferringPhysicianAddress": "PHIREFADDRESS",
    "PerformingPhysicianName": "PHIPERFORMER^DR",
    "NameOfPhysiciansReadingStudy": "PHIREADER^DR",
    "OperatorsName": "PHIOPERATOR",
    "RequestingPhysician": "PHIREQUESTER",
    "PhysiciansOfRecord": "PHIRECORDDOC",
    "ConsultingPhysicianName": "PHICONSULTANT",
    "StationName": "PHISTATION",
    "AccessionNumber": "PHIACC4455",
    "StudyID": "PHISTUDYID",
    "StudyDate": "20240517",
    "SeriesDate": "20240518",
    "AcquisitionDate": "20240519",
    "ContentDate": "20240520",
    "InstanceCreationDate": "20240521",
    "StudyTime": "101112",
    "ImageComments": "PHIIMAGECOMMENT",
    "StudyComments": "PHISTUDYCOMMENT",
    "StudyDescription": "PHISTUDYDESC",
    "SeriesDescription": "PHISERIESDESC",
    "ProtocolName": "PHIPROTOCOL",
    "DeviceSerialNumber": "PHISERIAL",
    "RequestedProcedureDescription": "PHIREQPROC",
    "PerformedProcedureStepDescription": "PHIPPSDESC",
    "DerivationDescription": "PHIDERIVATION",
    "Occupation": "PHIJOB",
    "PatientAge": "073Y",
    "EthnicGroup": "PHIETHNIC",
    "ResponsiblePerson": "PHIRESPONSIBLE",
    "MedicalRecordLocator": "PHIMRN",
    "AdmissionID": "PHIADMISSION",
    "IssuerOfPatientID": "PHIISSUER",
    "CurrentPatientLocation": "PHIWARD7",
    "MedicalAlerts": "PHIALERT",
    "Allergies": "PHIALLERGY",
    "ReasonForStudy": "PHIREASON",
    "DetectorID": "PHIDETECTOR",
    "ContrastBolusAgent": "PHICONTRAST",
}
PLANTED_UIDS = {
    "StudyInstanceUID": "1.2.999.1001.1",
    "SeriesInstanceUID": "1.2.999.1001.2",
    "SOPInstanceUID": "1.2.999.1001.3",
    "FrameOfReferenceUID": "1.2.999.1001.4",
    "InstanceCreatorUID": "1.2.999.1001.5",
    "IrradiationEventUID": "1.2.999.1001.6",
}
NESTED = {
    "ref_uid": "1.2.999.1001.7",
    "ref_name": "PHINESTEDNAME",
    "kept_seq_inst": "PHINESTEDHOSPITAL",
    "content_text": "PHISRTEXT the patient John said",
    "content_person": "PHISRPERSON^OBSERVER",
    "other_id_seq": "PHIOTHERIDSEQ",
    "request_seq": "PHIREQUESTSEQ",
    "deep": "PHIDEEPLYNESTED",
    "private": "PHIPRIVATEVALUE",
    "private_creator": "PHIPRIVATECREATOR",
    "overlay_comment": "PHIOVERLAYCOMMENT",
    "curve": "PHICURVEDESC",
    "meta_ae": "PHIAETITLE",
}


def _item(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def planted_dataset() -> Dataset:
    """A CT image carrying PHI in every kind of place the profile covers."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Modality = "CT"
    for keyword, value in {**PLANTED_TEXT, **PLANTED_UIDS}.items():
        setattr(ds, keyword, value)
    ds.ReferencedImageSequence = Sequence(
        [
            _item(
                ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                ReferencedSOPInstanceUID=NESTED["ref_uid"],
                PatientName=NESTED["ref_name"],
            )
        ]
    )
    # A sequence the profile keeps (K): its items are cleaned with the same table.
    ds.ProcedureCodeSequence = Sequence(
        [
            _item(
                CodeValue="CTCHEST",
                CodingSchemeDesignator="99LOCAL",
                CodeMeaning="CT chest",
                InstitutionName=NESTED["kept_seq_inst"],
                ReferencedStudySequence=Sequence([_item(AccessionNumber=NESTED["deep"])]),
            )
        ]
    )
    ds.ContentSequence = Sequence(
        [
            _item(ValueType="TEXT", TextValue=NESTED["content_text"]),
            _item(ValueType="PNAME", PersonName=NESTED["content_person"]),
        ]
    )
    ds.OtherPatientIDsSequence = Sequence([_item(PatientID=NESTED["other_id_seq"])])
    ds.RequestAttributesSequence = Sequence([_item(RequestedProcedureID=NESTED["request_seq"])])
    block = ds.private_block(0x0009, NESTED["private_creator"], create=True)
    block.add_new(0x10, "LO", NESTED["private"])
    ds.add_new(0x60003000, "OW", b"PHIOVERLAYBITS" + b"\0" * 18)
    ds.add_new(0x60004000, "LT", NESTED["overlay_comment"])
    ds.add_new(0x50000022, "LO", NESTED["curve"])
    ds.Rows, ds.Columns = 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = NESTED["meta_ae"]
    return ds


def all_phi() -> list[str]:
    return [*PLANTED_TEXT.values(), *PLANTED_UIDS.values(), *NESTED.values()]


def walk_values(ds: Dataset):
    """Every element value in a dataset, its file meta and all nested sequences."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from walk_values_plain(meta)
    yield from walk_values_plain(ds)


def walk_values_plain(ds: Dataset):
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk_values_plain(item)
        else:
            yield elem.tag, elem.value


def _text_of(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _ui_elements(ds: Dataset):
    meta = getattr(ds, "file_meta", None)
    for d in (meta, ds) if meta is not None else (ds,):
        for elem in d.iterall():
            if elem.VR == "UI" and elem.value:
                yield elem


def assert_no_phi(out: Dataset, phi: list[str]) -> None:
    """No secret survives in any value or in the written bytes.

    A secret made only of digits (a study ID, a serial number) is not looked for inside UIDs:
    the remapped UIDs are fresh random 2.25 numbers of ~39 digits, in which any five-digit
    string turns up by chance (it did, once in CI). Whether an original UID survives is
    checked by exact match in ``assert_no_identifiers``; the de-identifier writes no text
    into a UID.
    """
    new_uids = {str(e.value) for e in _ui_elements(out)}
    for tag, value in walk_values(out):
        text = _text_of(value)
        is_uid = text in new_uids
        for secret in phi:
            if is_uid and secret.isdigit():
                continue
            assert secret not in text, f"{secret!r} survived in {tag}"
    raw = written_bytes(out)
    raw_without_uids = raw
    for uid in sorted(new_uids, key=len, reverse=True):
        raw_without_uids = raw_without_uids.replace(uid.encode(), b"")
    for secret in phi:
        haystack = raw_without_uids if secret.isdigit() else raw
        assert secret.encode() not in haystack, f"{secret!r} survived in the written bytes"


def test_planted_fields_are_all_listed_by_the_profile() -> None:
    """The proof means something only if the profile (not luck) is what removes the values."""
    for keyword in [*PLANTED_TEXT, *PLANTED_UIDS]:
        assert profile_code(tag_for_keyword(keyword)) != "K", keyword
    assert len(BASIC_PROFILE) > 600
    assert set(BASIC_PROFILE.values()) <= set(RESOLVE)


def test_no_planted_phi_survives_anywhere() -> None:
    original = planted_dataset()
    raw_before = written_bytes(original)
    assert all(secret.encode() in raw_before for secret in all_phi())  # planted for real
    out = Deidentifier(salt="test").apply(original)
    assert_no_phi(out, all_phi())
    # The original is untouched: apply() builds a new dataset.
    assert original.PatientName == PLANTED_TEXT["PatientName"]
    assert original.file_meta.SourceApplicationEntityTitle == NESTED["meta_ae"]


def test_what_the_profile_leaves_and_records() -> None:
    out = Deidentifier(salt="test").apply(planted_dataset())
    assert out.PatientIdentityRemoved == "YES"
    assert "PS3.15 Annex E Basic Profile" in out.DeidentificationMethod[0]
    (code,) = out.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert not out.PatientName and out.PatientID.startswith("ANON-")
    assert "StudyDescription" not in out and "InstitutionAddress" not in out
    assert "OtherPatientIDsSequence" not in out
    assert not any(e.tag.is_private for e in out)
    assert not any(0x5000 <= e.tag.group <= 0x60FF for e in out)
    # References survive, remapped: the kept sequence and the image reference are still there.
    assert out.ProcedureCodeSequence[0].CodeMeaning == "CT chest"
    assert "InstitutionName" not in out.ProcedureCodeSequence[0]
    ref = out.ReferencedImageSequence[0]
    assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ref.ReferencedSOPInstanceUID.startswith("2.25.")
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert np.array_equal(out.pixel_array, np.arange(16).reshape(4, 4))
    # A written copy reads back as valid DICOM.
    back = pydicom.dcmread(pydicom.filebase.DicomBytesIO(written_bytes(out)))
    assert back.PatientIdentityRemoved == "YES"


def test_uid_remap_is_consistent_within_a_run_and_salted() -> None:
    first = planted_dataset()
    second = planted_dataset()
    second.SOPInstanceUID = "1.2.999.1001.99"
    second.ReferencedImageSequence[0].ReferencedSOPInstanceUID = first.SOPInstanceUID
    run = Deidentifier(salt="run-1")
    a, b = run.apply(first), run.apply(second)
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert a.PatientID == b.PatientID
    same = Deidentifier(salt="run-1").apply(first)
    other = Deidentifier(salt="run-2").apply(first)
    assert same.SOPInstanceUID == a.SOPInstanceUID
    assert other.SOPInstanceUID != a.SOPInstanceUID
    assert Deidentifier().salt != Deidentifier().salt  # default: unlinkable runs


_IDENTITY_KEYWORDS = {
    "PatientID",
    "OtherPatientIDs",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "AccessionNumber",
    "StudyID",
    "DeviceSerialNumber",
    "PatientAddress",
}


def identifying_values(ds: Dataset, texts: set[str], uids: set[str]) -> None:
    """Collect what identifies a person, place, time or object in a real file.

    Names (PN), identity attributes, dates of attributes the profile does not keep, private
    text; and the UIDs the profile remaps. Other kept attributes may legitimately repeat
    words such as a manufacturer, so only these are required to vanish.
    """
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                identifying_values(item, texts, uids)
            continue
        code = "X" if elem.tag.is_private else profile_code(int(elem.tag))
        if code == "K" or elem.value in (None, "", b""):
            continue
        if elem.VR == "UI":
            uids.update(str(v) for v in _text_of(elem.value).split("\\") if v)
            continue
        is_identity = elem.VR in ("PN", "DA", "DT") or elem.keyword in _IDENTITY_KEYWORDS
        is_private_text = elem.tag.is_private and elem.VR in ("LO", "SH", "ST", "LT", "PN")
        if is_identity or is_private_text:
            for part in _text_of(elem.value).replace("^", "\\").split("\\"):
                if len(part.strip()) >= 4:
                    texts.add(part.strip())


def kept_texts(ds: Dataset) -> list[str]:
    """Values of public attributes the profile keeps (Manufacturer, Body Part Examined...)."""
    kept = []
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                kept.extend(kept_texts(item))
        elif not elem.tag.is_private and profile_code(int(elem.tag)) == "K":
            kept.append(_text_of(elem.value))
    return kept


def assert_no_identifiers(
    out: Dataset, texts: set[str], uids: set[str], original: Dataset | None = None
) -> None:
    """No identifying value survives, except words the profile keeps in another attribute
    of the same object (e.g. an institution named like the manufacturer)."""
    if original is not None:
        kept = kept_texts(original)
        texts = {t for t in texts if not any(t in k for k in kept)}
    assert_no_phi(out, sorted(texts))
    for tag, value in walk_values(out):
        for part in _text_of(value).split("\\"):
            assert part not in uids, f"original UID {part} kept in {tag}"


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small.dcm", "rtstruct.dcm", "test-SR.dcm", "JPEG2000.dcm"]
)
def test_real_pydicom_files_keep_no_listed_values(name: str) -> None:
    ds = pydicom.dcmread(bundled(name), force=True)
    texts: set[str] = set()
    uids: set[str] = set()
    identifying_values(ds, texts, uids)
    assert texts and uids  # these files do carry names, dates, UIDs
    assert_no_identifiers(Deidentifier().apply(ds), texts, uids, ds)


def test_real_corpus_series_deidentified_through_ingest(dicom_dir: Path) -> None:
    files = sorted((dicom_dir / "volumes" / "SAG-anon_MR_brain_MPRAGE").glob("*.dcm"))[:12]
    originals = [pydicom.dcmread(f) for f in files]
    texts: set[str] = set()
    uids: set[str] = set()
    for ds in originals:
        identifying_values(ds, texts, uids)
    result = ingest(files, deidentify=True)
    (study,) = result.studies
    (series,) = study.series
    assert len(series.instances) == 12
    assert study.study_instance_uid != originals[0].StudyInstanceUID
    assert study.patient_id.startswith("ANON-")
    kept = [k for ds in originals for k in kept_texts(ds)]
    texts = {t for t in texts if not any(t in k for k in kept)}
    assert uids
    for inst in series.instances:
        assert_no_identifiers(inst.dataset, texts, uids)
        assert inst.dataset.PatientIdentityRemoved == "YES"


def test_sr_and_charset_files_from_corpus(dicom_dir: Path) -> None:
    for rel in ("conformance/dcmqi/sr-example/sr.dcm", "conformance/fo-dicom/charset/chrH32.dcm"):
        ds = pydicom.dcmread(dicom_dir / rel)
        texts: set[str] = set()
        uids: set[str] = set()
        identifying_values(ds, texts, uids)
        assert texts, rel
        out = Deidentifier().apply(ds)
        for tag, value in walk_values(out):
            text = _text_of(value)
            for secret in texts:
                assert secret not in text, f"{rel}: {secret!r} survived in {tag}"
            assert text not in uids, f"{rel}: original UID kept in {tag}"
