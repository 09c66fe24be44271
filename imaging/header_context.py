"""The clinical context a study's own header carries, item by item, with its source.

A PACS sends no `--age` or `--history`, but the header usually says a lot: PatientAge (or the
birth date against the study date), PatientSex, the body part and anatomic region, the
laterality, the study, series and protocol descriptions, the requested procedure, the reason
for it ((0040,1002) ReasonForTheRequestedProcedure, (0032,1030) ReasonForStudy), the admitting
diagnoses and the additional patient history. `merged(given, study)` is the one place where
this reaches analysis and the note: `analyze_and_compose` (CLI, bridge, batch, evaluation)
and the viewer call it. What the user gives wins, field by field; a history typed by the
user replaces the header's reason, admitting diagnoses and patient history.

No identifying field is ever copied: names, IDs and dates are never read into an item (the
age is derived from the dates, nothing else), and free text is scrubbed as the teaching
library scrubs case text (`imaging.cases.deid.scrub`), after the header's own names and IDs
are blanked wherever they appear in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from imaging.cases.deid import scrub
from imaging.types import ClinicalContext, ContextItem

_AGE = re.compile(r"^(\d{1,3})([DWMY])$")
MAX_TEXT = 200  # characters of one free-text item
MAX_VALUES = 6  # distinct values of one item (e.g. series descriptions) shown

# the items, in the order the note lists them; "history" items feed the ranking's history
HISTORY_KEYS = ("reason", "admitting_diagnoses", "patient_history")
ITEM_ORDER = ("age", "sex", "history", "reason", "admitting_diagnoses", "patient_history",
              "requested_procedure", "study_description", "body_part", "anatomic_region",
              "laterality", "protocol", "series_description")
# identifying values blanked inside free text before the generic scrubber runs
_NAME_KEYWORDS = ("PatientName", "OtherPatientNames", "PatientBirthName",
                  "PatientMotherBirthName", "ReferringPhysicianName", "PerformingPhysicianName",
                  "OperatorsName", "RequestingPhysician", "NameOfPhysiciansReadingStudy",
                  "PhysiciansOfRecord")
_ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID",
                "AdmissionID", "RequestedProcedureID", "InstitutionName", "StationName",
                "DeviceSerialNumber", "MedicalRecordLocator")


def dicom_text(ds, keyword: str) -> str:
    """A header value as stripped text ("" when absent or malformed; values joined by spaces)."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value says nothing
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return " ".join(str(v) for v in value).strip()
    return str(value).strip()


def _values(ds, keyword: str) -> list[str]:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value says nothing
        return []
    if value is None:
        return []
    many = isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
    return [str(v).strip() for v in (value if many else [value]) if str(v).strip()]


def _items_of(ds, keyword: str) -> list:
    try:
        return list(ds.get(keyword) or ())
    except Exception:  # noqa: BLE001 - a malformed sequence says nothing
        return []


def age_text(age: int) -> str:
    """An age as a context item shows it: over 89 it is "90+" (such ages identify, HIPAA)."""
    return str(age) if age <= 89 else "90+"


def age_years(ds) -> int | None:
    """PatientAge in whole years; "000Y" (anonymisers' placeholder) falls back to the dates."""
    match = _AGE.match(dicom_text(ds, "PatientAge").upper())
    if match and not (int(match.group(1)) == 0 and match.group(2) == "Y"):
        n, unit = int(match.group(1)), match.group(2)
        years = {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[unit]
        return years if 0 <= years <= 130 else None
    born, seen = dicom_text(ds, "PatientBirthDate"), dicom_text(ds, "StudyDate")
    try:
        b = date(int(born[:4]), int(born[4:6]), int(born[6:8]))
        s = date(int(seen[:4]), int(seen[4:6]), int(seen[6:8]))
    except (ValueError, IndexError):
        return None
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return years if 0 <= years <= 130 else None


def _identifiers(datasets: Iterable) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Patterns of the header's own names (each name component) and IDs."""
    names: set[str] = set()
    ids: set[str] = set()
    for ds in datasets:
        for keyword in _NAME_KEYWORDS:
            for part in re.split(r"[\^=\s,]+", dicom_text(ds, keyword)):
                if len(part) >= 2 and not part.isdigit():
                    names.add(part.lower())
        for keyword in _ID_KEYWORDS:
            for part in _values(ds, keyword):  # whole values, each of a multi-valued one
                if len(part) >= 2:
                    ids.add(part.lower())

    def pattern(words: set[str]) -> re.Pattern[str] | None:
        if not words:
            return None
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
        return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.I)

    return pattern(names), pattern(ids)


class _Scrubber:
    """Free text of this study, with its own names and IDs blanked, then `deid.scrub`."""

    def __init__(self, datasets: list) -> None:
        self.names, self.ids = _identifiers(datasets)

    def __call__(self, text: str) -> str:
        out = str(text or "").replace("^", " ")
        if self.ids is not None:
            out = self.ids.sub("[id]", out)
        if self.names is not None:
            out = self.names.sub("[name]", out)
        out = scrub(out)
        return out if len(out) <= MAX_TEXT else out[:MAX_TEXT - 1].rstrip() + "…"


def _distinct(values: Iterable[str]) -> str:
    kept = list(dict.fromkeys(v for v in values if v))
    more = len(kept) - MAX_VALUES
    text = "; ".join(kept[:MAX_VALUES])
    return text + (f"; +{more}" if more > 0 else "")


def _header_values(study) -> dict[str, str]:
    """key -> value (scrubbed) of every context item the header states."""
    image_series = [s for s in study.series if s.is_image] or list(study.series)
    datasets = [i.dataset for s in study.series for i in s.instances if i.dataset is not None]
    firsts = [next((i.dataset for i in s.instances if i.dataset is not None), None)
              for s in image_series]
    firsts = [ds for ds in firsts if ds is not None]
    clean = _Scrubber(datasets)
    out: dict[str, str] = {}
    age = next((a for a in (age_years(ds) for ds in datasets) if a is not None), None)
    if age is not None:
        out["age"] = age_text(age)
    sex = next((v for v in (dicom_text(ds, "PatientSex").upper() for ds in datasets)
                if v in ("F", "M", "O")), None)
    if sex:
        out["sex"] = sex

    def collect(keyword: str, sources: list, sequence: str | None = None) -> list[str]:
        found = []
        for ds in sources:
            found.append(dicom_text(ds, keyword))
            if sequence:
                found += [dicom_text(item, keyword) for item in _items_of(ds, sequence)]
        return [clean(v) for v in found if v]

    reasons = []
    for ds in datasets[:1] + firsts:
        reasons += collect("ReasonForTheRequestedProcedure", [ds], "RequestAttributesSequence")
        reasons += collect("ReasonForStudy", [ds])
    admitting = collect("AdmittingDiagnosesDescription", datasets[:1] + firsts)
    for ds in datasets[:1] + firsts:
        admitting += [clean(dicom_text(code, "CodeMeaning"))
                      for code in _items_of(ds, "AdmittingDiagnosesCodeSequence")]
    regions = [clean(dicom_text(code, "CodeMeaning")) for ds in firsts
               for code in _items_of(ds, "AnatomicRegionSequence")]
    laterality = [dicom_text(ds, k).upper() for ds in firsts
                  for k in ("Laterality", "ImageLaterality")]
    values = {
        "reason": _distinct(reasons),
        "admitting_diagnoses": _distinct(admitting),
        "patient_history": _distinct(collect("AdditionalPatientHistory", datasets[:1] + firsts)),
        "requested_procedure": _distinct(collect("RequestedProcedureDescription",
                                                 datasets[:1] + firsts,
                                                 "RequestAttributesSequence")),
        "study_description": _distinct(collect("StudyDescription", datasets[:1])),
        "body_part": _distinct(v.upper() for v in collect("BodyPartExamined", firsts)),
        "anatomic_region": _distinct(regions),
        "laterality": _distinct(v for v in laterality if v in ("R", "L", "B", "U")),
        "protocol": _distinct(collect("ProtocolName", firsts)),
        "series_description": _distinct(collect("SeriesDescription", firsts)),
    }
    if values["protocol"] == values["series_description"]:
        values["protocol"] = ""  # the scanner copied one into the other: say it once
    out.update({k: v for k, v in values.items() if v})
    return out


def context_from_study(study) -> ClinicalContext:
    """Every context item the header states (source "header"), age, sex and history."""
    values = _header_values(study)
    items = tuple(ContextItem(k, values[k], "header") for k in ITEM_ORDER if k in values)
    history = "; ".join(dict.fromkeys(values[k] for k in HISTORY_KEYS if k in values))
    sex = values.get("sex")
    age = values.get("age")
    return ClinicalContext(age=None if age is None else int(age.rstrip("+")),
                           sex=sex if sex in ("F", "M") else None, history=history, items=items)


def merged(given: ClinicalContext | None, study) -> ClinicalContext:
    """The header's context with the user's input over it, field by field.

    A context that already lists its items (merged once) is returned as it is.
    """
    given = given or ClinicalContext()
    if given.items:
        return given
    header = context_from_study(study)
    user: dict[str, str] = {}
    if given.age is not None:
        user["age"] = age_text(given.age)
    if given.sex in ("F", "M"):
        user["sex"] = given.sex
    history = " ".join((given.history or "").split())
    if history:
        user["history"] = history
    dropped = set(HISTORY_KEYS) if history else set()
    items = []
    for key in ITEM_ORDER:
        if key in user:
            items.append(ContextItem(key, user[key], "user"))
        elif key not in dropped:
            items += [i for i in header.items if i.key == key]
    return ClinicalContext(
        age=given.age if given.age is not None else header.age,
        sex=given.sex if given.sex in ("F", "M") else header.sex,
        history=history or header.history, lang=given.lang, items=tuple(items))


__all__ = ["HISTORY_KEYS", "ITEM_ORDER", "age_text", "age_years", "context_from_study", "merged"]
