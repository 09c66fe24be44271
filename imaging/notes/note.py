"""The note: frozen, bilingual data, rendered later (`render.py`) to Markdown or JSON.

Every user-visible string is a `Text` holding both languages, so composing is independent of
the display language and one note renders identically in English and Chinese.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.text import Text

from ..ddx.evidence import SimilarCase


@dataclass(frozen=True)
class ObservationItem:
    series_instance_uid: str
    code: str
    label: Text
    probability: float
    band: str  # "likely" | "possible" | "indeterminate"


@dataclass(frozen=True)
class SaliencyRef:
    """Which saliency map backs an item, and where its mass is."""

    series_instance_uid: str
    finding_code: str
    slice_index: int
    zone: Text  # e.g. "upper left zone"
    centroid: tuple[float, float]  # (row, col) as fractions of the image


@dataclass(frozen=True)
class DifferentialItem:
    diagnosis_id: str  # = the knowledge entry id
    names: Text
    # calibrated P(item is the diagnosis); None when the bundle has no calibration
    likelihood: float | None
    band: str
    supporting: tuple[Text, ...]
    against: tuple[Text, ...]
    supporting_codes: tuple[str, ...]  # observation codes that support it
    against_codes: tuple[str, ...]
    saliency: SaliencyRef | None
    similar_cases: tuple[SimilarCase, ...]
    knowledge_entry_id: str
    discriminators: tuple[Text, ...] = ()
    score: float = 0.0


@dataclass(frozen=True)
class FollowUpItem:
    diagnosis_id: str
    modality: str
    protocol: Text
    timing: Text
    urgency: str  # emergent | urgent | soon | routine | none
    citation: str
    rule_id: str | None


@dataclass(frozen=True)
class ConsideredRule:
    rule_id: str  # "" for a knowledge-base recommendation without a rule
    diagnosis_id: str
    reason: Text  # why it does not apply
    protocol: Text | None = None  # the recommendation a knowledge-base line is about


@dataclass(frozen=True)
class ContextEntry:
    """One item of the clinical context as the note lists it (`context` in the JSON)."""

    key: str  # "age", "sex", "history", "body_part", "reason", ... (ContextItem.key)
    value: str  # as given or as the header states it (free text scrubbed)
    source: str  # "header" | "user"
    text: Text  # the line, e.g. "Age: 3 years (from the DICOM header)"


@dataclass(frozen=True)
class SeriesItem:
    """One series as a scoring tool reads it (`series` in the JSON note)."""

    series_instance_uid: str
    role: str  # "diagnostic" | "localizer" | "derived" | "non_image" | "unreadable"
    modality: str  # "CT" | "MR" | "XR" (model + header) or the header's, when not analysed
    region: str | None  # top region code, None when not diagnosed
    plane: str | None
    out_of_distribution: bool
    description: str
    n_images: int
    n_volumes: int
    reason: str  # why it was not diagnosed (empty for diagnostic series)
    warnings: tuple[str, ...]
    plane_source: str = ""  # "geometry" (ImageOrientationPatient) | "image" | "" (none)
    plane_angle: float | None = None  # degrees from the nearest standard plane
    patient_position: str = ""  # PatientPosition / ViewPosition code, as in the header


@dataclass(frozen=True)
class NoteSection:
    key: str  # "context" | "analysed" | "observations" | "differential" | "follow_up" |
    # "limitations"
    title: Text
    lines: tuple[Text, ...]
    levels: tuple[int, ...] = ()  # nesting per line (0 = top); empty means all top level


@dataclass(frozen=True)
class Note:
    study_instance_uid: str
    model_version: str
    knowledge_version: str
    out_of_distribution: bool
    sections: tuple[NoteSection, ...]
    observations: tuple[ObservationItem, ...]
    differential: tuple[DifferentialItem, ...]
    follow_up: tuple[FollowUpItem, ...]
    considered_rules: tuple[ConsideredRule, ...]
    disclaimer: Text
    title: Text
    series: tuple[SeriesItem, ...] = ()
    summary: Text | None = None
    context: tuple[ContextEntry, ...] = ()
