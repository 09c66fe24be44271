"""Instances into Study ▸ Series ▸ Instance, sorted deterministically, duplicates warned."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from pacs_bridge.study import IngestWarning, Instance, InstanceKind, Series, Study

from .checks import _int


def _sort_key(inst: Instance) -> tuple:
    n = inst.instance_number
    return (n is None, n if n is not None else 0, inst.sop_instance_uid)


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:
        return ""


def group(
    instances: Iterable[Instance],
    warnings: list[IngestWarning] | None = None,
    *,
    keep_duplicates: bool = False,
) -> tuple[Study, ...]:
    """Group instances into studies and series by UID, sorted deterministically.

    Duplicates (same SOP Instance UID, e.g. one object sent twice or stored in several
    transfer syntaxes) keep the first copy and warn on the series, unless `keep_duplicates`
    (corpus checks want every file). `warnings`, if given, receives every duplicate warning.
    """
    studies: dict[str, dict[str, list[Instance]]] = {}
    seen: dict[str, Instance] = {}
    dup_warnings: dict[str, list[IngestWarning]] = {}
    for inst in instances:
        ds = inst.dataset
        study_uid = _text(ds, "StudyInstanceUID")
        series_uid = _text(ds, "SeriesInstanceUID")
        if inst.sop_instance_uid in seen:
            w = IngestWarning(
                "duplicate_instance",
                f"same SOP Instance UID as {seen[inst.sop_instance_uid].source}; kept the first",
                inst.source,
            )
            dup_warnings.setdefault(series_uid, []).append(w)
            if warnings is not None:
                warnings.append(w)
            if not keep_duplicates:
                continue
        seen.setdefault(inst.sop_instance_uid, inst)
        studies.setdefault(study_uid, {}).setdefault(series_uid, []).append(inst)

    result = []
    for study_uid in sorted(studies):
        series_list = []
        patient_ids: set[str] = set()
        for series_uid, members in studies[study_uid].items():
            members.sort(key=_sort_key)
            first = members[0].dataset
            patient_ids.update(_text(i.dataset, "PatientID") for i in members)
            series_warnings = list(dup_warnings.get(series_uid, ()))
            modalities = sorted({i.modality for i in members if i.modality})
            if len(modalities) > 1:
                series_warnings.append(
                    IngestWarning("mixed_modality", f"series mixes modalities {modalities}")
                )
            description = _text(first, "SeriesDescription")
            if not description and not any(i.kind is InstanceKind.IMAGE for i in members):
                description = members[0].description.split("\n", 1)[0]
            series_list.append(
                Series(
                    series_instance_uid=series_uid,
                    modality=members[0].modality,
                    description=description,
                    series_number=_int(first, "SeriesNumber"),
                    instances=tuple(members),
                    warnings=tuple(series_warnings),
                )
            )
        series_list.sort(
            key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid)
        )
        first_ds = series_list[0].instances[0].dataset
        study_warnings = []
        patient_ids.discard("")
        if len(patient_ids) > 1:
            study_warnings.append(
                IngestWarning(
                    "mixed_patient_ids",
                    f"one Study Instance UID with {len(patient_ids)} different patient IDs",
                )
            )
        description = next(
            (
                _text(s.instances[0].dataset, "StudyDescription")
                for s in series_list
                if _text(s.instances[0].dataset, "StudyDescription")
            ),
            "",
        )
        result.append(
            Study(
                study_instance_uid=study_uid,
                patient_id=_text(first_ds, "PatientID"),
                description=description,
                series=tuple(series_list),
                warnings=tuple(study_warnings),
            )
        )
    return tuple(result)
