"""The DICOM header as a table, with protected health information masked by default.

A radiologist sometimes needs the header (acquisition parameters, transfer syntax), but a
screen-share or screenshot must not leak who the patient is. So the table hides, unless the
user explicitly asks: every person name (VR PN), every date / time (DA, DT, TM), private
tags, and the identifying attributes of the DICOM PS3.15 basic de-identification profile.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

MASK = "••• masked (PHI)"
MAX_VALUE_CHARS = 120
MAX_ROWS = 600

# Identifying attributes of the PS3.15 basic profile that are not already PN / DA / DT / TM.
PHI_KEYWORDS = frozenset(
    {
        "PatientID",
        "IssuerOfPatientID",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientBirthName",
        "PatientMotherBirthName",
        "MedicalRecordLocator",
        "MilitaryRank",
        "BranchOfService",
        "EthnicGroup",
        "Occupation",
        "PatientReligiousPreference",
        "AdditionalPatientHistory",
        "PatientComments",
        "AccessionNumber",
        "StudyID",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "RequestingService",
        "RequestAttributesSequence",
        "PerformedProcedureStepID",
        "ScheduledProcedureStepID",
        "RequestedProcedureID",
        "AdmissionID",
        "ImageComments",
        "TextComments",
        "FillerOrderNumberImagingServiceRequest",
        "PlacerOrderNumberImagingServiceRequest",
        "PersonAddress",
        "PersonTelephoneNumbers",
        "PhysiciansOfRecordIdentificationSequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "CountryOfResidence",
        "RegionOfResidence",
        "CurrentPatientLocation",
        "PatientInstitutionResidence",
    }
)
PHI_VRS = frozenset({"PN", "DA", "DT", "TM"})
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


def is_phi(element: DataElement) -> bool:
    """True if showing this element could identify the patient (or the staff)."""
    return (
        element.tag.is_private
        or element.VR in PHI_VRS
        or (element.keyword or "") in PHI_KEYWORDS
    )


def _value_text(element: DataElement) -> str:
    if element.VR in BINARY_VRS or element.keyword == "PixelData":
        length = len(element.value) if element.value is not None else 0
        return f"<{element.VR} {length} bytes>"
    text = str(element.value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _rows(ds: Dataset, show_phi: bool, depth: int, out: list[list[str]]) -> None:
    for element in ds:
        if len(out) >= MAX_ROWS:
            return
        name = ("  " * depth + ("> " if depth else "")) + (element.keyword or element.name)
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        masked = not show_phi and is_phi(element)
        if element.VR == "SQ":
            items = element.value or []
            out.append([tag, name, "SQ", MASK if masked else f"<{len(items)} item(s)>"])
            if not masked:
                for item in items:
                    _rows(item, show_phi, depth + 1, out)
            continue
        out.append([tag, name, element.VR, MASK if masked else _value_text(element)])


def header_rows(
    dataset: Dataset | None, show_phi: bool = False, query: str = ""
) -> list[list[str]]:
    """Rows (tag, attribute, VR, value) of the file meta and the dataset.

    PHI is masked unless `show_phi` is True; masked sequences are not expanded at all.
    `query` keeps rows whose tag or attribute name contains it (case-insensitive); masked
    values are never searched, so a filter cannot reveal them.
    """
    if dataset is None:
        return []
    out: list[list[str]] = []
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        _rows(meta, show_phi, 0, out)
    _rows(dataset, show_phi, 0, out)
    q = (query or "").strip().lower()
    if q:
        out = [r for r in out if q in r[0].lower() or q in r[1].lower()]
    return out


HEADER_COLUMNS = ["tag", "attribute", "VR", "value"]
