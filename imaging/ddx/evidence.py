"""What the ranking says about one differential item: typed evidence, no wording.

`rank.rank` returns, per item, the `Evidence` for and against it; `imaging.notes` alone turns
each item into a sentence (`notes/evidence_text.py`), in every language. A kind is a stable
code; its values are the numbers and names the sentence shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class SimilarCase:
    """A teaching case near the study (see `imaging.cases`)."""

    case_id: str
    diagnosis: str  # the teaching case's own (English) diagnosis text
    similarity: float


class EvidenceKind(StrEnum):
    """The closed vocabulary of evidence; values are stable (the catalogue keys `ev.<value>`)."""

    IMAGE = "image_text"  # value: cosine similarity to the entry's features
    REGION = "region"  # region: the knowledge region that fits
    REGION_NO = "region_no"  # region: the entry's best region, which does not fit
    MODALITY = "modality"  # modality: the study's modality, one the entry is diagnosed on
    MODALITY_NO = "modality_no"  # modality: one the entry is not diagnosed on
    FINDING = "finding"  # label (English fallback), probability: at or above its threshold
    FINDING_LOW = "finding_low"  # label, probability: well below its threshold
    HISTORY_SIMILAR = "history_similar"  # the history resembles the entry's text (TF-IDF)
    HISTORY = "history"  # words: the entry's history keywords found in the history
    AGE_IN = "age_in"  # age, lo, hi: within the entry's typical range
    AGE_OUT = "age_out"  # age, lo, hi: outside it
    SEX_NO = "sex_no"  # sex: the only sex ("F" | "M") the entry typically affects
    CASES = "cases"  # n: similar teaching cases with this diagnosis


Value = str | int | float | tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence for or against a differential item.

    `code` is the observation code it counts as in the note's `supporting_codes` /
    `against_codes` (e.g. `finding:pneumonia`, `region:chest`, `modality:XR`), when it
    counts as one.
    """

    kind: EvidenceKind
    values: tuple[tuple[str, Value], ...] = ()
    code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EvidenceKind(self.kind))  # ValueError on unknown

    @classmethod
    def of(cls, kind: EvidenceKind, code: str | None = None, **values: Value) -> Evidence:
        return cls(kind, tuple(sorted(values.items())), code)

    def value(self, name: str) -> Value:
        return dict(self.values)[name]


def codes(items: tuple[Evidence, ...]) -> tuple[str, ...]:
    """The observation codes of `items`, in order, each once."""
    return tuple(dict.fromkeys(e.code for e in items if e.code is not None))
