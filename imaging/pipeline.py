"""One call from a study to the DICOM objects sent back: analyse, compose, SR + SC.

The PACS bridge service calls only `report_objects`; the CLI and the viewer use
`analyze_and_compose` for the note itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from common.errors import RadAssistError
from pacs_bridge.study import Study

from .notes import Note, compose
from .types import Analysis, ClinicalContext


def analyze_and_compose(study: Study, context: ClinicalContext | None = None,
                        ) -> tuple[Analysis, Note]:
    from .analyze import analyze  # the model's entry point (imported late: torch)
    from .header_context import merged

    context = merged(context, study)  # age, sex, reason for the exam from the header
    analysis = analyze(study, context)
    return analysis, compose(analysis, context)


def source_datasets(study: Study, analysis: Analysis) -> list[Dataset]:
    """The source image datasets the analysis read (the SR's evidence), in study order."""
    wanted = {uid for s in analysis.series for uid in s.source_sop_instance_uids}
    return [inst.dataset for series in study.series for inst in series.instances
            if inst.sop_instance_uid in wanted and inst.dataset is not None]


def dicom_objects(study: Study, analysis: Analysis, note: Note) -> tuple[Dataset, ...]:
    """The SR (and SC); a `RadAssistError` "nothing_analysed" when no series could be
    analysed (an SR needs at least one measurement group: highdicom raised a TypeError)."""
    from .dicom_out import build_sc, build_sr  # highdicom: only when objects are wanted

    if not analysis.series:
        listed = "; ".join(f"{s.modality or '?'} {s.role}: {s.reason}" for s in analysis.listed)
        raise RadAssistError(
            f"study {analysis.study_instance_uid}", "no series could be analysed, so there is "
            f"no report to send ({listed or 'no image series'})"[:400], reason="nothing_analysed")

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


@dataclass(frozen=True)
class ReportOutputs:
    """Everything a batch run writes for one study: the note as JSON, the SR (+ SC)."""

    note_json: str
    objects: tuple[Dataset, ...]
    model_version: str


def report_outputs(study: Study, context: ClinicalContext | None = None) -> ReportOutputs:
    from .notes import to_json

    analysis, note = analyze_and_compose(study, context)
    return ReportOutputs(to_json(note), dicom_objects(study, analysis, note),
                         analysis.model_version)


def model_version() -> str:
    """The version of the weights `report_outputs` uses, read from the bundle (no model load)."""
    import json
    import os
    from pathlib import Path

    # model.loaded.default_weights_dir's rule, without importing torch into the caller
    weights = Path(os.environ.get("RADASSIST_WEIGHTS") or Path(__file__).parent.parent / "weights")
    meta = weights / "configs" / "metadata.json"
    return str(json.loads(meta.read_text(encoding="utf-8")).get("version", "unknown"))


def warm_up() -> None:
    """Load the model (and its TorchScript export) now, e.g. once per batch worker."""
    from .model import get_model

    get_model()
