"""The note as a DICOM Comprehensive 3D SR following TID 1500 (highdicom).

Per analysed series one measurement group (TID 1501) references the key image and carries
the observations as measurements (calibrated probability, unit "no units") and the ranked
differential and follow-up suggestions as coded qualitative evaluations (private coding
scheme `99RADASSIST`, code values = knowledge entry / rule ids). The algorithm name and
model version identify the observer device; the document is UNVERIFIED and says in text
that it is an AI draft not reviewed by a physician.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    SourceImageForMeasurementGroup,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from ..notes.note import Note
from ..notes.render import to_json
from ..types import Analysis
from .uids import (
    AI_DRAFT,
    AI_DRAFT_ZH,
    ALGORITHM_NAME,
    content_hash,
    derived_uid,
    with_patient_study_attributes,
)

SCHEME = "99RADASSIST"
NO_UNITS = CodedConcept("1", "UCUM", "no units")
PROCEDURE = CodedConcept("363679005", "SCT", "Imaging")
DDX_NAME = "Differential diagnosis"
FOLLOW_UP_NAME = "Follow-up imaging recommendation"


def _code(value: str, meaning: str) -> CodedConcept:
    """Ids longer than 16 characters go to Long Code Value (highdicom picks it)."""
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning[:64])


def build_sr(
    note: Note, analysis: Analysis, evidence: Sequence[Dataset], *, series_number: int = 9901,
) -> Comprehensive3DSR:
    """The SR for a composed note; `evidence` are the source image datasets referenced."""
    digest = content_hash(to_json(note))
    study_uid = analysis.study_instance_uid
    device = DeviceObserverIdentifyingAttributes(
        uid=derived_uid(ALGORITHM_NAME, analysis.model_version, "", "device"),
        name=ALGORITHM_NAME, manufacturer_name=ALGORITHM_NAME,
        model_name=analysis.model_version[:64])
    context = ObservationContext(observer_device_context=ObserverContext(
        observer_type=codes.cid270.Device, observer_identifying_attributes=device))
    algorithm = AlgorithmIdentification(name=ALGORITHM_NAME, version=analysis.model_version[:64])
    by_uid = {ds.SOPInstanceUID: ds for ds in evidence}

    groups = []
    for index, series in enumerate(analysis.series, start=1):
        key_uid = None
        if series.source_sop_instance_uids:
            key = min(series.key_slice, len(series.source_sop_instance_uids) - 1)
            key_uid = series.source_sop_instance_uids[key]
        source = []
        if key_uid in by_uid:
            source = [SourceImageForMeasurementGroup(by_uid[key_uid].SOPClassUID, key_uid)]
        observations = [o for o in note.observations
                        if o.series_instance_uid == series.series_instance_uid]
        measurements = [Measurement(name=_code(o.code, o.label.en), value=o.probability,
                                    unit=NO_UNITS, algorithm_id=algorithm)
                        for o in observations]
        evaluations = []
        if index == 1 or not groups:
            for rank, item in enumerate(note.differential, start=1):
                evaluations.append(QualitativeEvaluation(
                    name=_code(f"ddx-{rank}", f"{DDX_NAME} {rank}"),
                    value=_code(item.diagnosis_id, item.names.en)))
            for rank, f in enumerate(note.follow_up, start=1):
                evaluations.append(QualitativeEvaluation(
                    name=_code(f"followup-{rank}", f"{FOLLOW_UP_NAME} {rank}"),
                    value=_code(f.rule_id or f"{f.modality}-{f.diagnosis_id}",
                                     f"{f.modality}: {f.protocol.en}")))
        groups.append(MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(
                uid=derived_uid(study_uid, analysis.model_version, digest, f"group{index}"),
                identifier=f"series {index}"),
            algorithm_id=algorithm, measurements=measurements or None,
            qualitative_evaluations=evaluations or None, source_images=source or None))

    report = MeasurementReport(observation_context=context, procedure_reported=PROCEDURE,
                               imaging_measurements=groups or None)
    root = report[0]
    texts = [AI_DRAFT, AI_DRAFT_ZH]
    if note.summary is not None:
        texts.append(f"Study: {note.summary.en}")
    texts.extend(caveats(note))
    for rank, item in enumerate(note.differential, start=1):
        texts.append(f"{DDX_NAME} {rank}: {item.names.en} (relative likelihood "
                     f"{item.likelihood:.2f}; knowledge entry {item.diagnosis_id})")
    for f in note.follow_up:
        texts.append(f"{FOLLOW_UP_NAME}: {f.protocol.en} ({f.modality}), {f.timing.en}; "
                     f"urgency {f.urgency}; source: {f.citation}")
    for c in note.considered_rules:
        texts.append(f"Considered, not applicable - {c.rule_id}: {c.reason.en}")
    if note.out_of_distribution:
        texts.append("Out-of-distribution input: no differential is offered.")
    elif not note.differential:
        ddx = next((sec for sec in note.sections if sec.key == "differential"), None)
        if ddx is not None and ddx.lines:
            texts.append(ddx.lines[0].en)
    for text in texts:
        root.ContentSequence.append(TextContentItem(
            name=codes.DCM.Comment, value=text, relationship_type="CONTAINS"))

    sr = Comprehensive3DSR(
        evidence=[with_patient_study_attributes(ds) for ds in evidence], content=report,
        series_instance_uid=derived_uid(study_uid, analysis.model_version, digest, "sr-series"),
        series_number=series_number,
        sop_instance_uid=derived_uid(study_uid, analysis.model_version, digest, "sr"),
        instance_number=1, manufacturer=ALGORITHM_NAME, is_complete=True, is_final=False,
        is_verified=False, series_description=f"{ALGORITHM_NAME} AI draft SR",
    )
    sr.SpecificCharacterSet = "ISO_IR 192"
    return sr


# Warning codes a reader of the PACS copy must see: the note's own caveats, not its detail.
CAVEAT_CODES = ("out_of_distribution", "modality_mismatch", "plane_mismatch",
                "header_window_saturates", "four_d")


def caveats(note: Note) -> list[str]:
    """One "Caveat: ..." line per series warning a PACS reader must see, and per atypical
    or unreadable series, in English (the SR's text is English; the Chinese note is in the
    viewer and the JSON)."""
    out = []
    for index, item in enumerate(note.series, start=1):
        if item.role != "diagnostic":
            out.append(f"Caveat: series {index} ({item.description or item.modality}) is a "
                       f"{item.role.replace('_', '-')} series, not diagnosed: {item.reason}")
            continue
        for w in item.warnings:
            if w.split(":", 1)[0] in CAVEAT_CODES:
                out.append(f"Caveat: series {index}: {w}")
    for line in next((sec.lines for sec in note.sections if sec.key == "analysed"), ()):
        if "less typical of the training images" in line.en:
            out.append(f"Caveat: {line.en}")
    return out


__all__ = ["build_sr", "caveats", "hd"]
