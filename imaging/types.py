"""Data that crosses the `imaging` boundary: the clinical context in, the `Analysis` out.

`analyze(study, context) -> Analysis` produces these; `notes.compose(analysis, context)`,
the bridge and the viewer consume them. Arrays are excluded from equality and hashing
(numpy arrays have no truth value); everything else compares by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONTEXT_SOURCES = ("header", "user")


@dataclass(frozen=True)
class ContextItem:
    """One item of the clinical context and where it came from.

    `key` is stable ("age", "sex", "history", "body_part", "anatomic_region", "laterality",
    "study_description", "series_description", "protocol", "requested_procedure", "reason",
    "admitting_diagnoses", "patient_history"); `value` is already scrubbed of identifiers
    (free text) or a code ("M", "003Y" is never kept: the age is a number of years);
    `source` is "header" (the study's DICOM header) or "user" (typed by the user).
    """

    key: str
    value: str
    source: str

    def __post_init__(self) -> None:
        if self.source not in CONTEXT_SOURCES:
            raise ValueError(f'Argument "source" must be one of {CONTEXT_SOURCES}, '
                             f"got {self.source!r}")


@dataclass(frozen=True)
class ClinicalContext:
    """What the requesting clinician tells us; it may change the ranking, never the pixels.

    `age`, `sex` and `history` are what the ranking and the guideline rules read; `items`
    lists every context item with its source, for the note (`imaging.header_context.merged`
    builds both from the header and the user's input; the user's input wins).
    """

    age: int | None = None
    sex: str | None = None  # "F" | "M" | None
    history: str = ""  # indication or clinical history, free text
    lang: str = "en"  # "en" or any language with a catalogue (common.catalog.languages())
    items: tuple[ContextItem, ...] = ()


@dataclass(frozen=True)
class Observation:
    """One calibrated statement about a series.

    `code` is stable and machine-readable ("modality:CT", "region:chest",
    "plane:axial", "finding:pneumonia", "quality:ood"); `label` is English for logs.
    """

    code: str
    kind: str  # "modality" | "region" | "plane" | "finding" | "quality"
    label: str
    probability: float
    slices: tuple[int, ...] = ()  # stack indices that drive it (empty for one image)
    # findings: the probability at or above which it counts as present (None: 0.5)
    threshold: float | None = None


@dataclass(frozen=True)
class Saliency:
    """Where the model looked for one finding: [0, 1] float32, aligned with the key image."""

    finding_code: str
    slice_index: int
    method: str  # "gradcam" | "occlusion"
    array: np.ndarray = field(repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class SeriesAnalysis:
    series_instance_uid: str
    header_modality: str
    n_images: int
    key_slice: int
    observations: tuple[Observation, ...]
    quality_score: float  # 1.0 = in distribution, 0.0 = certainly out of distribution
    out_of_distribution: bool
    saliency: tuple[Saliency, ...] = ()
    warnings: tuple[str, ...] = ()
    source_sop_instance_uids: tuple[str, ...] = ()
    # L2-normalised image embedding in the joint image-text space (series mean)
    embedding: np.ndarray = field(default=None, repr=False, compare=False, hash=False)
    # display image of the key slice, uint8 HxW, windowed for the modality
    key_image: np.ndarray = field(default=None, repr=False, compare=False, hash=False)
    description: str = ""  # SeriesDescription
    n_volumes: int = 1  # a 4D series (diffusion, time series) is analysed on one volume
    # which evidence decided the plane: "geometry" (ImageOrientationPatient) or "image"
    plane_source: str = ""
    # degrees between the slice normal and the nearest patient axis (None: no geometry)
    plane_angle: float | None = None
    plane_nearest: str = ""  # the nearest standard plane (the oblique's too), from geometry
    patient_position: str = ""  # PatientPosition (HFS, FFP, HFDL...) or ViewPosition code
    # the region(s) the header names and where ("BodyPartExamined: BRAIN"), when combined
    header_regions: tuple[str, ...] = ()
    header_region_evidence: str = ""

    def top(self, kind: str) -> Observation | None:
        """Most probable observation of one kind (e.g. the modality)."""
        items = [o for o in self.observations if o.kind == kind]
        return max(items, key=lambda o: (o.probability, o.code)) if items else None


@dataclass(frozen=True)
class ListedSeries:
    """A series that was not diagnosed, and why (a localizer, a dose screen, an SR...)."""

    series_instance_uid: str
    role: str  # "localizer" | "derived" | "non_image" | "unreadable"
    modality: str
    description: str
    n_objects: int
    reason: str  # English detail
    reason_code: str  # stable, e.g. "image_type_localizer"


@dataclass(frozen=True)
class Analysis:
    study_instance_uid: str
    series: tuple[SeriesAnalysis, ...]  # the diagnostic series' stacks, analysed
    model_version: str
    warnings: tuple[str, ...] = ()
    listed: tuple[ListedSeries, ...] = ()  # every other series, with its role


@dataclass(frozen=True)
class Window:
    """A display window in physical units (e.g. HU for CT)."""

    name: str  # "header", "header 2", "lung", "mediastinum", "bone", "brain", "full range"
    center: float
    width: float


@dataclass(frozen=True)
class ImageStack:
    """One geometrically consistent stack of a series, in physical units.

    A series whose slices differ in orientation, size or spacing is split into several
    stacks (each with a warning), never silently stacked.
    """

    series_instance_uid: str
    modality: str
    photometric: str  # after conversion: "MONOCHROME2" or "RGB"
    # float32, shape (n, rows, cols) or (n, rows, cols, 3); Modality LUT applied,
    # MONOCHROME1 inverted, so higher always means brighter / denser
    array: np.ndarray = field(repr=False, compare=False, hash=False)
    spacing: tuple[float, float, float] = (float("nan"), 1.0, 1.0)  # (slice, row, col) mm
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient (6 cosines)
    origin: tuple[float, float, float] | None = None  # position of the first slice
    windows: tuple[Window, ...] = ()  # header windows first, then modality presets
    sop_instance_uids: tuple[str, ...] = ()  # one per slice (repeated for multi-frame)
    frame_numbers: tuple[int, ...] = ()  # 1-based frame within its instance, per slice
    # readable, each with a stable code prefix, e.g. "uneven_spacing: ..."
    warnings: tuple[str, ...] = ()
    n_volumes: int = 1  # >1 for a 4D series (diffusion, time series, echoes): one is kept
