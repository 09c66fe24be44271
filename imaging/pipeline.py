"""One call from a study to the DICOM objects sent back: analyse, compose, SR + SC.

The PACS bridge service calls only `report_objects`; the CLI and the viewer use
`analyze_and_compose` for the note itself.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from pacs_bridge.study import Study

from .notes import Note, compose
from .types import Analysis, ClinicalContext


def analyze_and_compose(study: Study, context: ClinicalContext | None = None,
                        ) -> tuple[Analysis, Note]:
    from .analyze import analyze  # the model's entry point (imported late: torch)

    analysis = analyze(study, context)
    return analysis, compose(analysis, context)


def source_datasets(study: Study, analysis: Analysis) -> list[Dataset]:
    """The source image datasets the analysis read (the SR's evidence), in study order."""
    wanted = {uid for s in analysis.series for uid in s.source_sop_instance_uids}
    return [inst.dataset for series in study.series for inst in series.instances
            if inst.sop_instance_uid in wanted and inst.dataset is not None]


def dicom_objects(study: Study, analysis: Analysis, note: Note) -> tuple[Dataset, ...]:
    from .dicom_out import build_sc, build_sr  # highdicom: only when objects are wanted

    evidence = source_datasets(study, analysis)
    objects: list[Dataset] = [build_sr(note, analysis, evidence)]
    sc = build_sc(note, analysis, evidence[0] if evidence else None)
    if sc is not None:
        objects.append(sc)
    return tuple(objects)


def report_objects(study: Study, context: ClinicalContext | None = None) -> tuple[Dataset, ...]:
    """analyze -> compose -> (SR, SC); the SC is left out when no series has a key image."""
    analysis, note = analyze_and_compose(study, context)
    return dicom_objects(study, analysis, note)
