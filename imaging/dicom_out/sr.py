"""The note as a DICOM Comprehensive 3D SR following TID 1500 (highdicom).

The Image Library (TID 1600) describes the key images the groups reference. Per analysed
series one measurement group (TID 1501) references the key image and carries the
observations as measurements (concept = what was observed, value = its calibrated
probability, unit UCUM "1" "no units") and the ranked differential and follow-up
suggestions as coded qualitative evaluations, in rank order, named with the standard DCM
concepts "Differential Diagnosis/Impression" (111023) and "Recommended Follow-up" (111053).
The algorithm name and model version identify the observer device; the document is
UNVERIFIED and says in text that it is an AI draft not reviewed by a physician.

Codes. Standard codes wherever pydicom's offline code dictionary (`pydicom.sr.codedict`)
has the concept, see `STANDARD_CODES`: modality from CID 29 (CT, MR; a radiograph as the
header's CR or DX, otherwise RG "Radiographic imaging"), body regions and planes from SNOMED
CT, findings from SNOMED CT or DCM (an "effusion" on CT/MR is SNOMED CT Effusion, on a
radiograph Pleural effusion). These stay in the private scheme `99RADASSIST`
(declared in the Coding Scheme Identification Sequence when used), because no standard
concept with the same meaning is in an offline code list we can check:
- radiograph findings pneumonia, COVID-19 and atelectasis (pydicom's dictionary has no
  SNOMED CT concept for them; "Plate-like atelectasis" is a narrower finding), and CT/MR
  findings enhancement, calcification, fracture, infarct, hydrocephalus, wall thickening,
  fluid, air or gas (SNOMED CT "Air" and "Gas" are the substances) and mass effect;
- regions "spine and muscles" and "reproductive and urinary system" (MedPix organ-system
  categories spanning several SNOMED CT structures) and "chest radiograph" (the model's
  class for a radiograph of the chest, a view rather than an anatomic site; the thorax
  class carries SNOMED CT Thorax);
- "out of distribution" (the model's own typicality measure);
- the differential's values (knowledge-base diagnosis ids, which carry no SNOMED CT or ICD
  mapping) and the follow-up suggestions' values (guideline rule ids).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    ContainerContentItem,
    ContentSequence,
    DeviceObserverIdentifyingAttributes,
    ImageContentItem,
    ImageLibraryEntryDescriptors,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    SourceImageForMeasurementGroup,
    TextContentItem,
    TrackingIdentifier,
    UIDRefContentItem,
)
from highdicom.sr.enum import RelationshipTypeValues
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ..notes.note import Note
from ..notes.render import to_json
from ..notes.strings import STRINGS
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
CODING_SCHEME = CodingSchemeIdentificationItem(
    designator=SCHEME, name="radassist private codes",
    responsible_organization="radassist")
NO_UNITS = CodedConcept("1", "UCUM", "no units")
PROCEDURE = CodedConcept("363679005", "SCT", "Imaging")
DDX_NAME = "Differential diagnosis"
FOLLOW_UP_NAME = "Follow-up imaging recommendation"
DDX_CONCEPT = codes.DCM.DifferentialDiagnosisImpression  # 111023
FOLLOW_UP_CONCEPT = codes.DCM.RecommendedFollowUp  # 111053
SOURCE = CodedConcept("260753009", "SCT", "Source")  # TID 1600 image library entry

# The model's observation codes that have a standard concept in pydicom's offline code
# dictionary; every other observation code stays private (see the module docstring).
STANDARD_CODES: dict[str, Code] = {
    "modality:CT": codes.cid29.ComputedTomography,
    "modality:MR": codes.cid29.MagneticResonance,
    "region:head": codes.SCT.Head,
    "region:thorax": codes.SCT.Thorax,
    "region:abdomen": codes.SCT.Abdomen,
    "plane:axial": codes.SCT.Transverse,
    "plane:coronal": codes.SCT.Coronal,
    "plane:sagittal": codes.SCT.Sagittal,
    # radiograph heads (effusion: see CROSS_SECTIONAL_CODES)
    "finding:edema": codes.SCT.PulmonaryEdema,
    "finding:effusion": codes.SCT.PleuralEffusion,
    "finding:infiltration": codes.DCM.Infiltrate,
    "finding:cardiomegaly": codes.SCT.Cardiomegaly,
    "finding:pneumothorax": codes.SCT.Pneumothorax,
    # both; then the CT/MR heads (imaging.model.findings_ctmr)
    "finding:nodule": codes.SCT.Nodule,
    "finding:mass": codes.SCT.Mass,
    "finding:oedema": codes.SCT.Edema,
    "finding:cyst": codes.SCT.Cyst,
    "finding:haemorrhage": codes.SCT.Hemorrhage,
    "finding:dilatation": codes.SCT.Dilatation,
    "finding:stenosis": codes.SCT.Stenosis,
    "finding:lymphadenopathy": codes.SCT.Lymphadenopathy,
}
# On CT/MR the same observation code names a broader finding than on a radiograph: the
# CT/MR "effusion" head is any effusion (joint, pericardial, pleural...).
CROSS_SECTIONAL_CODES: dict[str, Code] = {"finding:effusion": codes.SCT.Effusion}
# The model's "XR" (any radiograph) as the CID 29 code of the header's modality when the
# header names one, else the generic "Radiographic imaging" (a wrapped PNG/JPEG says OT).
RADIOGRAPH_CODES: dict[str, Code] = {
    "CR": codes.cid29.ComputedRadiography,
    "DX": codes.cid29.DigitalRadiography,
}


def _code(value: str, meaning: str) -> CodedConcept:
    """Ids longer than 16 characters go to Long Code Value (highdicom picks it)."""
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning[:64])


def observation_concept(code: str, label: str, header_modality: str = "") -> CodedConcept:
    """The coded concept for a model observation code ("finding:effusion"): the standard
    code when one is known, else the private one (code value = the observation code)."""
    if code == "modality:XR":
        standard = RADIOGRAPH_CODES.get(header_modality, codes.cid29.RadiographicImaging)
    elif header_modality in ("CT", "MR") and code in CROSS_SECTIONAL_CODES:
        standard = CROSS_SECTIONAL_CODES[code]
    else:
        standard = STANDARD_CODES.get(code)
    if standard is None:
        return _code(code, label)
    return CodedConcept(value=standard.value, scheme_designator=standard.scheme_designator,
                        meaning=standard.meaning)


_DESCRIPTOR_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def _entry_descriptors(ds: Dataset) -> ImageLibraryEntryDescriptors | None:
    """TID 1602 descriptors; an image lacking an attribute TID 1603/1604 needs (a CR
    without Imager Pixel Spacing, an enhanced multi-frame image with its geometry in
    functional groups) keeps the common ones (modality, frame of reference, rows,
    columns); None for a SOP class highdicom cannot name a modality for."""
    try:
        return ImageLibraryEntryDescriptors(ds)
    except _DESCRIPTOR_ERRORS:
        pass
    common = Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns", "FrameOfReferenceUID"):
        if keyword in ds:
            setattr(common, keyword, ds[keyword].value)
    common.Modality = ""  # neither cross-sectional nor projection: common descriptors only
    try:
        return ImageLibraryEntryDescriptors(common)
    except _DESCRIPTOR_ERRORS:
        return None


def image_library(images: Sequence[Dataset]) -> ContainerContentItem:
    """TID 1600 Image Library of the images the content tree references (the key images;
    every analysed slice would add 16 descriptors each: 176 slices made an MR's SR 30 times
    larger), grouped like highdicom's ImageLibrary by modality and frame of reference, in
    the order given so the bytes are stable. Without images, the library is empty."""
    library = ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type="CONTAINS")
    groups: dict[tuple[str, ...], list[ImageContentItem]] = {}
    for ds in images:
        descriptors = _entry_descriptors(ds)
        if descriptors is None:
            continue
        entry = ImageContentItem(name=SOURCE, referenced_sop_class_uid=ds.SOPClassUID,
                                 referenced_sop_instance_uid=ds.SOPInstanceUID,
                                 relationship_type="CONTAINS")
        entry.ContentSequence = ContentSequence(descriptors)
        modality = descriptors[0].ConceptCodeSequence[0].CodeValue
        frame = str(ds.FrameOfReferenceUID) if "FrameOfReferenceUID" in ds else ""
        groups.setdefault((modality, frame), []).append(entry)
    if groups:
        library.ContentSequence = ContentSequence()
    for (_, frame), entries in groups.items():
        group = ContainerContentItem(name=codes.DCM.ImageLibraryGroup,
                                     relationship_type="CONTAINS")
        group.ContentSequence = ContentSequence()
        if frame:
            group.ContentSequence.append(UIDRefContentItem(
                name=codes.DCM.FrameOfReferenceUID, value=frame,
                relationship_type=RelationshipTypeValues.HAS_ACQ_CONTEXT))
        group.ContentSequence.extend(entries)
        library.ContentSequence.append(group)
    return library


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
    referenced: dict[str, Dataset] = {}  # the key images, for the Image Library

    groups = []
    for index, series in enumerate(analysis.series, start=1):
        key_uid = None
        if series.source_sop_instance_uids:
            key = min(series.key_slice, len(series.source_sop_instance_uids) - 1)
            key_uid = series.source_sop_instance_uids[key]
        source = []
        if key_uid in by_uid:
            source = [SourceImageForMeasurementGroup(by_uid[key_uid].SOPClassUID, key_uid)]
            referenced.setdefault(key_uid, by_uid[key_uid])
        observations = [o for o in note.observations
                        if o.series_instance_uid == series.series_instance_uid]
        measurements = [Measurement(
            name=observation_concept(o.code, o.label.en, series.header_modality),
            value=o.probability, unit=NO_UNITS, algorithm_id=algorithm)
            for o in observations]
        evaluations = []
        if index == 1 or not groups:
            # in rank order; the text lines below repeat each rank
            for item in note.differential:
                evaluations.append(QualitativeEvaluation(
                    name=DDX_CONCEPT, value=_code(item.diagnosis_id, item.names.en)))
            for f in note.follow_up:
                evaluations.append(QualitativeEvaluation(
                    name=FOLLOW_UP_CONCEPT,
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
    # TID 1500 row 5: the Image Library after the procedure, before the measurements
    position = next((i for i, item in enumerate(root.ContentSequence)
                     if item.ConceptNameCodeSequence[0].CodeValue
                     == codes.DCM.ImagingMeasurements.value), len(root.ContentSequence))
    root.ContentSequence.insert(position, image_library(list(referenced.values())))
    texts = [AI_DRAFT, AI_DRAFT_ZH]
    if note.summary is not None:
        texts.append(f"Study: {note.summary.en}")
    texts.extend(f"Clinical context: {entry.text.en}" for entry in note.context)
    texts.extend(caveats(note))
    for rank, item in enumerate(note.differential, start=1):
        number = ("not calibrated" if item.likelihood is None
                  else f"probability {item.likelihood:.2f}, {item.band}")
        texts.append(f"{DDX_NAME} {rank}: {item.names.en} ({number}; knowledge entry "
                     f"{item.diagnosis_id})")
    for f in note.follow_up:
        texts.append(f"{FOLLOW_UP_NAME}: {f.protocol.en} ({f.modality}), {f.timing.en}; "
                     f"urgency {f.urgency}; source: {f.citation}")
    for c in note.considered_rules:
        texts.append(f"Considered, not applicable - {c.rule_id}: {c.reason.en}" if c.rule_id
                     else c.reason.en)
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
        coding_schemes=[CODING_SCHEME] if _uses_scheme(root.ContentSequence) else None,
    )
    sr.SpecificCharacterSet = "ISO_IR 192"
    return sr


def _uses_scheme(items, scheme: str = SCHEME) -> bool:
    """Whether any concept name or value in the content tree is in `scheme`."""
    for item in items:
        for keyword in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            if any(c.CodingSchemeDesignator == scheme for c in item.get(keyword, [])):
                return True
        if _uses_scheme(item.get("ContentSequence", []), scheme):
            return True
    return False


# Warning codes a reader of the PACS copy must see: the note's own caveats, not its detail.
CAVEAT_CODES = ("out_of_distribution", "modality_mismatch", "plane_mismatch",
                "region_mismatch", "header_window_saturates", "four_d")


_PAEDIATRIC = STRINGS["lim.paediatric"].split("{", 1)[0]  # "Paediatric patient (age "


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
    for line in next((sec.lines for sec in note.sections if sec.key == "limitations"), ()):
        if line.en.startswith(_PAEDIATRIC):
            out.append(f"Caveat: {line.en}")
    return out


__all__ = ["build_sr", "caveats", "hd"]
