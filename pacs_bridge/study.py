"""The product of ingest: Study ▸ Series ▸ Instance, plus what was rejected and why.

These frozen dataclasses are the only `pacs_bridge` types `imaging` may import.
An `Instance` keeps its parsed pydicom `Dataset` (pixel data decoded lazily by `imaging`),
so that files inside a zip or received over the network need no temporary copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydicom.dataset import Dataset


class InstanceKind(StrEnum):
    """What an object is, so non-image objects are listed instead of decoded."""

    IMAGE = "image"
    SR = "structured_report"
    SEG = "segmentation"
    RT = "radiotherapy"
    WAVEFORM = "waveform"
    PRESENTATION_STATE = "presentation_state"
    KOS = "key_object_selection"
    ENCAPSULATED = "encapsulated_document"
    RAW = "raw_data"
    OTHER = "other"


@dataclass(frozen=True)
class IngestWarning:
    """Something the user should know that did not stop loading."""

    code: str  # stable, e.g. "uneven_spacing", "missing_file_meta"
    message: str
    source: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A source that could not be loaded, with the reason code of its typed error."""

    source: str
    reason: str
    message: str


@dataclass(frozen=True)
class Instance:
    source: str  # file path, "archive.zip!member", "upload:name" or "c-store:AE"
    sop_instance_uid: str
    sop_class_uid: str
    kind: InstanceKind
    modality: str
    instance_number: int | None
    dataset: Dataset = field(repr=False, compare=False, hash=False)
    description: str = ""  # for non-image objects: what it is (and SR text summary)
    warnings: tuple[IngestWarning, ...] = ()


@dataclass(frozen=True)
class Series:
    series_instance_uid: str
    modality: str
    description: str
    series_number: int | None
    instances: tuple[Instance, ...]  # images sorted by geometry/instance number
    warnings: tuple[IngestWarning, ...] = ()

    @property
    def is_image(self) -> bool:
        return any(i.kind is InstanceKind.IMAGE for i in self.instances)


@dataclass(frozen=True)
class Study:
    study_instance_uid: str
    patient_id: str
    description: str
    series: tuple[Series, ...]
    warnings: tuple[IngestWarning, ...] = ()


@dataclass(frozen=True)
class IngestResult:
    """Everything one ingest call produced: studies grouped by UID, plus rejections."""

    studies: tuple[Study, ...]
    rejections: tuple[Rejection, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()
