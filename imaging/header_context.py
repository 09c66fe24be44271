"""The clinical context a study's own header carries: age, sex, and the reason for the exam.

A PACS sends no `--age` or `--history`, but the header usually has them: PatientAge (or the
birth date against the study date), PatientSex, and the requesting physician's reason in
ReasonForTheRequestedProcedure, AdditionalPatientHistory or RequestedProcedureDescription.
Without them the age-gated guideline rules never run for bridge studies, and a clinical
question that was asked is ignored. Values the user gives on the command line win.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date

from imaging.types import ClinicalContext

_HISTORY_KEYWORDS = ("ReasonForTheRequestedProcedure", "ReasonForStudy",
                     "AdditionalPatientHistory")
_AGE = re.compile(r"^(\d{1,3})([DWMY])$")


def _text(ds, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value says nothing
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return " ".join(str(v) for v in value).strip()
    return str(value).strip()


def _age(ds) -> int | None:
    match = _AGE.match(_text(ds, "PatientAge").upper())
    # "000Y" is the placeholder anonymisers write, not a newborn: try the dates instead
    if match and not (int(match.group(1)) == 0 and match.group(2) == "Y"):
        n, unit = int(match.group(1)), match.group(2)
        years = {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[unit]
        return years if 0 <= years <= 130 else None
    born, seen = _text(ds, "PatientBirthDate"), _text(ds, "StudyDate")
    try:
        b = date(int(born[:4]), int(born[4:6]), int(born[6:8]))
        s = date(int(seen[:4]), int(seen[4:6]), int(seen[6:8]))
    except (ValueError, IndexError):
        return None
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return years if 0 <= years <= 130 else None


def context_from_study(study) -> ClinicalContext:
    """Age, sex and history from the first image instance that states them."""
    datasets = [i.dataset for s in study.series for i in s.instances if i.dataset is not None]
    age = next((a for a in (_age(ds) for ds in datasets) if a is not None), None)
    sex = next((v for v in (_text(ds, "PatientSex").upper() for ds in datasets)
                if v in ("F", "M")), None)
    history = ""
    for ds in datasets:
        parts = [_text(ds, k) for k in _HISTORY_KEYWORDS]
        for item in ds.get("RequestAttributesSequence") or ():
            parts.append(_text(item, "ReasonForTheRequestedProcedure"))
        history = "; ".join(dict.fromkeys(p for p in parts if p))
        if history:
            break
    return ClinicalContext(age=age, sex=sex, history=history)


def merged(given: ClinicalContext | None, study) -> ClinicalContext:
    """`given` with its empty fields filled from the header."""
    header = context_from_study(study)
    if given is None:
        return header
    return dataclasses.replace(
        given,
        age=given.age if given.age is not None else header.age,
        sex=given.sex or header.sex,
        history=given.history or header.history,
    )
