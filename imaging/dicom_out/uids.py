"""Deterministic UIDs for the objects we send back, so re-sending is idempotent.

A UID is derived (a "2.25." UUID-derived UID, PS3.5 B.2, from a SHA-256 digest)
from the source Study Instance UID, the model version, the note's content hash and the
object's role; the same analysis of the same study always yields the same UIDs, and a
changed model or note yields new ones (PACS ignore re-sent SOP Instance UIDs).
"""

from __future__ import annotations

import hashlib

from pydicom.valuerep import DA, TM

from ..notes.strings import t

ALGORITHM_NAME = "radassist"
AI_DRAFT = t("disclaimer").en  # the note's own label, from its catalogue: one wording
AI_DRAFT_ZH = t("disclaimer").zh


def content_hash(payload: str | bytes) -> str:
    data = payload.encode() if isinstance(payload, str) else payload
    return hashlib.sha1(data).hexdigest()


def derived_uid(study_uid: str, model_version: str, content: str, role: str) -> str:
    digest = hashlib.sha256("\0".join((study_uid, model_version, content, role)).encode())
    return f"2.25.{int.from_bytes(digest.digest()[:16], 'big')}"


# Type 3 General Study attributes of recent editions (PS3.3 C.7.2.1) that the Debian
# dciodvfy (dicom3tools 2022) does not know and reports as "not present in standard
# DICOM IOD"; the PACS holds them on the source images, so the derived objects leave them out.
DROPPED_STUDY = ("RequestingService", "RequestingServiceCodeSequence")

TYPE2_PATIENT_STUDY = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID",
                       "AccessionNumber", "StudyDate", "StudyTime", "ReferringPhysicianName")


def with_patient_study_attributes(ds):
    """A shallow copy carrying every type 2 patient/study attribute highdicom copies into a
    derived object (empty when the source lacks it, as type 2 allows), without the
    `DROPPED_STUDY` ones."""
    copy = ds.copy()
    # an empty Specific Character Set means the default repertoire; highdicom rejects ''
    if "SpecificCharacterSet" in copy and not copy.SpecificCharacterSet:
        del copy.SpecificCharacterSet
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in copy:
            setattr(copy, keyword, "")
    for keyword in DROPPED_STUDY:
        if keyword in copy:
            delattr(copy, keyword)
    # ACR-NEMA style dates and times ("1993.11.22", "11:27:24"), which highdicom refuses,
    # in the DICOM form; a value still not DA/TM becomes empty (unknown, as type 2 allows)
    for keyword, kind, separator in (("StudyDate", DA, "."), ("PatientBirthDate", DA, "."),
                                     ("StudyTime", TM, ":")):
        value = str(copy.get(keyword, "") or "").strip()
        if not value:
            continue
        fixed = value.replace(separator, "")
        try:
            kind(fixed)
        except ValueError:
            fixed = ""
        if fixed != value:
            setattr(copy, keyword, fixed)
    return copy
