"""De-identification: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

The attribute table is data, not code: the Basic Profile column of Table E.1-1 as packaged
by `dicom-anonymizer` (its 2026c transcription of the standard, 655 attributes), turned into
one dict `BASIC_PROFILE` of tag -> action code. The profile lets a de-identifier choose
inside a compound code (Z/D, X/Z, X/D, X/Z/D, X/Z/U*); `RESOLVE` records our choice, always
the one that removes most while keeping references usable. On top of the table the profile
removes every private attribute, overlays (60xx) and curves (50xx), and records what was
done (Patient Identity Removed, De-identification Method and its code sequence, 113100).

One `Deidentifier` is one run: every UID is remapped through one salted map, so references
between the objects of a study still resolve after de-identification, while the new UIDs
cannot be traced back without the salt. Pixel data is not examined: an object flagged with
burned-in annotation needs its pixels cleaned separately (`has_burned_in_annotation`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as _annex_e
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from common.errors import CorruptFileError, RadAssistError

ANNEX_E_EDITION = "2026c"
# De-identification Method is LO (64 characters a value), so it says what was done in parts.
METHOD_TEXT = (
    f"PS3.15 Annex E Basic Profile (Table E.1-1 {ANNEX_E_EDITION})",
    "radassist: private tags, overlays and curves removed",
    "UIDs remapped consistently; pixel data not cleaned",
)

# Table E.1-1, Basic Profile column: the package's list name -> the standard's action code.
_TABLE_LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


def _load_table() -> tuple[dict[int, str], tuple[tuple[int, int, str], ...]]:
    """Exact tags, plus repeating-group rows (curves 50xx, overlays 60xx) as (value, mask)."""
    table: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for list_name, code in _TABLE_LISTS.items():
        for row in getattr(_annex_e, list_name):
            if len(row) == 2:
                table[(row[0] << 16) | row[1]] = code
            else:  # (group, element, group mask, element mask)
                group, element, group_mask, element_mask = row
                masked.append(((group << 16) | element, (group_mask << 16) | element_mask, code))
    return table, tuple(masked)


BASIC_PROFILE, BASIC_PROFILE_REPEATING = _load_table()


def profile_code(tag: int) -> str:
    """The Basic Profile action code for a (public) tag; "K" when the table does not list it."""
    code = BASIC_PROFILE.get(tag)
    if code is not None:
        return code
    for value, mask, masked_code in BASIC_PROFILE_REPEATING:
        if tag & mask == value:
            return masked_code
    return "K"


# Our choice inside each compound code. "U*" = keep the sequence, remap the UIDs inside.
RESOLVE: dict[str, str] = {
    "D": "D",
    "Z": "Z",
    "X": "X",
    "K": "K",
    "C": "D",  # cleaning free text needs understanding it; replace instead
    "U": "U",
    "Z/D": "Z",
    "X/Z": "X",
    "X/D": "X",
    "X/Z/D": "X",
    "X/Z/U*": "U*",
}

# Z/D attributes that get a consistent pseudonym (D) instead of an empty value, so the
# objects of one patient still group together after de-identification.
PSEUDONYM_TAGS = {0x00100020}  # Patient ID

# Values for D ("a non-zero length dummy value consistent with the VR").
_DUMMY_TEXT = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "UR": "urn:anonymized",
}
_NUMERIC_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"}

DEIDENTIFICATION_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
_PATIENT_IDENTITY_REMOVED = 0x00120062
_DEIDENTIFICATION_METHOD = 0x00120063
_DEIDENTIFICATION_METHOD_CODES = 0x00120064
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003


def is_overlay_or_curve(tag: int) -> bool:
    group = tag >> 16
    return (0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF) and group % 2 == 0


def has_burned_in_annotation(ds: Dataset) -> bool:
    return str(ds.get("BurnedInAnnotation", "") or "").upper() == "YES"


class Deidentifier:
    """Applies the Basic Profile; one instance = one run = one consistent UID remap.

    `salt` fixes the remap (same salt, same new UIDs: reproducible runs); by default a random
    salt makes the new UIDs unlinkable to the old ones once the run is over.
    """

    def __init__(
        self, salt: str | None = None, *, method_text: tuple[str, ...] = METHOD_TEXT
    ) -> None:
        self.salt = salt if salt is not None else secrets.token_hex(16)
        self.method_text = method_text
        self._uids: dict[str, str] = {}

    # -- replacement values

    def remap_uid(self, uid: str) -> str:
        uid = str(uid).strip()
        if not uid:
            return uid
        new = self._uids.get(uid)
        if new is None:
            # A UUID-derived "2.25." UID (PS3.5 B.2). pydicom's generate_uid(prefix=None)
            # ignores its entropy sources (it is random), so the UUID is built from a salted
            # SHA-256 here: same salt and UID, same result; without the salt, unlinkable.
            digest = hashlib.sha256(f"{self.salt}\x00{uid}".encode()).digest()[:16]
            new = f"2.25.{uuid.UUID(bytes=digest, version=4).int}"
            self._uids[uid] = new
        return new

    def pseudonym(self, value: str) -> str:
        digest = hashlib.sha256(f"{self.salt}\x00{value}".encode()).hexdigest()
        return f"ANON-{digest[:12].upper()}"

    def _dummy(self, elem: DataElement) -> object:
        vr = elem.VR
        if elem.tag in PSEUDONYM_TAGS:
            return self.pseudonym(str(elem.value or ""))
        if vr == "UI":
            return self._remap_value(elem.value)
        if vr in _DUMMY_TEXT:
            return _DUMMY_TEXT[vr]
        if vr in _NUMERIC_VRS:
            return 0
        if vr == "SQ":
            return Sequence([Dataset()])
        return b"\x00\x00"  # OB, OW, OD, OF, OL, OV, UN

    def _remap_value(self, value: object) -> object:
        if value is None or value == "":
            return value
        if isinstance(value, MultiValue | list | tuple):
            return [self.remap_uid(v) for v in value]
        return self.remap_uid(str(value))

    # -- walking

    def _clean(self, source: Dataset, target: Dataset, name: str | None) -> None:
        """Copy what the profile keeps of `source` into `target`.

        The action is decided from the tag alone, before the value is read: pydicom converts
        a value only when it is touched, so an element removed by the profile is never
        converted, and one that must be kept but cannot be read (a broken value, an unknown
        VR, a sequence that ends early) makes a `CorruptFileError` naming the file and the
        tag, never an untyped exception or a silently kept value.
        """
        for tag in sorted(source.keys()):
            tag = int(tag)
            if BaseTag(tag).is_private or is_overlay_or_curve(tag):
                continue
            action = RESOLVE[profile_code(tag)]
            if tag in PSEUDONYM_TAGS:
                action = "D"
            if action == "X":
                continue
            try:
                new = self._element(source[tag], action, name)
            except RadAssistError:
                raise
            except Exception as exc:  # values are PHI: the message names the tag only
                raise CorruptFileError(
                    name,
                    f"element {BaseTag(tag)} cannot be read for de-identification "
                    f"({type(exc).__name__})",
                    reason="unreadable_element",
                ) from exc
            if new is not None:
                target.add(new)

    def _element(self, elem: DataElement, action: str, name: str | None) -> DataElement | None:
        vr = elem.VR
        if action == "Z":
            return DataElement(elem.tag, vr, Sequence() if vr == "SQ" else None)
        if action == "D":
            return DataElement(elem.tag, vr, self._dummy(elem))
        if action in ("U", "U*") and vr == "UI":
            return DataElement(elem.tag, vr, self._remap_value(elem.value))
        # K, or U/U* on a sequence: keep, and clean every item with the same table.
        if vr == "SQ":
            items = []
            for item in elem.value or ():
                clean = Dataset()
                self._clean(item, clean, name)
                items.append(clean)
            return DataElement(elem.tag, vr, Sequence(items))
        new = DataElement(elem.tag, vr, elem.value)
        new.is_undefined_length = elem.is_undefined_length
        return new

    def _file_meta(self, ds: Dataset) -> FileMetaDataset | None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return None
        new = FileMetaDataset()
        for keyword in ("MediaStorageSOPClassUID", "TransferSyntaxUID"):
            if keyword in meta:
                setattr(new, keyword, meta[keyword].value)
        if "SOPInstanceUID" in ds:
            new.MediaStorageSOPInstanceUID = self.remap_uid(ds.SOPInstanceUID)
        elif _MEDIA_STORAGE_SOP_INSTANCE_UID in meta:
            new.MediaStorageSOPInstanceUID = self.remap_uid(meta.MediaStorageSOPInstanceUID)
        new.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        return new

    def apply(self, ds: Dataset, source: str | None = None) -> Dataset:
        """A new, de-identified dataset; `ds` is left unchanged (pixel data is shared).

        Raises `CorruptFileError` (reason "unreadable_element") naming `source` (default: the
        dataset's file name) when an element the profile keeps cannot be read.
        """
        name = source if source is not None else getattr(ds, "filename", None)
        if not isinstance(name, str | None):
            name = None
        out = Dataset()
        self._clean(ds, out, name)
        try:
            meta = self._file_meta(ds)
        except Exception as exc:
            raise CorruptFileError(
                name, f"file meta cannot be read ({type(exc).__name__})",
                reason="unreadable_element",
            ) from exc
        if meta is not None:
            out.file_meta = meta
        try:
            implicit, little = ds.original_encoding
            if implicit is not None:
                out.set_original_encoding(implicit, little, ds.original_character_set)
        except (AttributeError, TypeError):
            pass
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = list(self.method_text)
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = DEIDENTIFICATION_CODE
        out.DeidentificationMethodCodeSequence = Sequence([code])
        return out
