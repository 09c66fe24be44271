"""The teaching library (MedPix cases from the data folder), the quiz order, and scoring.

MedPix case text is public and already de-identified; it is read in place from the data
folder (never copied into the repository). Quiz cases come from the validation split only,
so the model being quizzed alongside the trainee was never trained on them, in an order fixed
by a seed so two trainees (and two test runs) see the same sequence.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

QUIZ_SPLIT = "val"
QUIZ_SEED = 20260101


@dataclass(frozen=True)
class CaseImage:
    path: Path
    modality: str  # CT | MR
    plane: str
    caption: str
    split: str


@dataclass(frozen=True)
class TeachingCase:
    case_id: str  # MedPix U_id, e.g. "MPX1007"
    title: str
    diagnosis: str
    history: str
    exam: str
    findings: str
    differential_text: str
    discussion: str
    region: str  # MedPix location category, e.g. "Head"
    location: str  # finer location, e.g. "Brain, Vascular"
    age: str
    sex: str
    split: str
    images: tuple[CaseImage, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({i.modality for i in self.images}))

    @property
    def differential(self) -> tuple[str, ...]:
        return split_items(self.differential_text)


def _clean(text: object) -> str:
    return " ".join(str(text or "").split())


def _keep_paragraphs(text: object) -> str:
    return "\n".join(_clean(line) for line in str(text or "").splitlines() if line.strip())


class TeachingLibrary:
    """All MedPix cases under `<data>/medpix`, indexed by case id."""

    def __init__(self, cases: Iterable[TeachingCase], root: Path) -> None:
        self.root = root
        self.cases: dict[str, TeachingCase] = {c.case_id: c for c in cases}

    @classmethod
    def load(cls, data_dir: str | Path) -> TeachingLibrary | None:
        """The library, or None when `<data_dir>/medpix` is absent (fresh machine)."""
        base = Path(data_dir) / "medpix"
        if not (base / "cases.json").is_file() or not (base / "images.csv").is_file():
            return None
        descriptions = {}
        if (base / "descriptions.json").is_file():
            descriptions = {
                d["image"]: d for d in json.loads((base / "descriptions.json").read_text())
            }
        images: dict[str, list[CaseImage]] = {}
        splits: dict[str, str] = {}
        with (base / "images.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                stem = Path(row["image"]).stem
                d = descriptions.get(stem, {})
                desc = d.get("Description") or {}
                images.setdefault(row["U_id"], []).append(
                    CaseImage(
                        path=base / row["image"],
                        modality=row["modality"],
                        plane=_clean(desc.get("Plane")),
                        caption=_clean(desc.get("Caption")),
                        split=row["split"],
                    )
                )
                splits.setdefault(row["U_id"], row["split"])
        cases = []
        for raw in json.loads((base / "cases.json").read_text()):
            uid = raw["U_id"]
            if uid not in images:
                continue
            case = raw.get("Case") or {}
            first = next(
                (descriptions[s] for s in (raw.get("TAC") or []) + (raw.get("MRI") or [])
                 if s in descriptions),
                {},
            )
            desc = first.get("Description") or {}
            cases.append(
                TeachingCase(
                    case_id=uid,
                    title=_clean(case.get("Title")),
                    diagnosis=_clean(case.get("Case Diagnosis")) or _clean(case.get("Title")),
                    history=_keep_paragraphs(case.get("History")),
                    exam=_keep_paragraphs(case.get("Exam")),
                    findings=_keep_paragraphs(case.get("Findings")),
                    differential_text=_keep_paragraphs(case.get("Differential Diagnosis")),
                    discussion=_keep_paragraphs(case.get("Discussion")),
                    region=_clean(first.get("Location Category")) or "Unknown",
                    location=_clean(first.get("Location")),
                    age=_clean(desc.get("Age")),
                    sex=_clean(desc.get("Sex")),
                    split=splits[uid],
                    images=tuple(images[uid]),
                )
            )
        return cls(sorted(cases, key=lambda c: c.case_id), base)

    def __len__(self) -> int:
        return len(self.cases)

    def get(self, case_id: str) -> TeachingCase | None:
        return self.cases.get(case_id)

    def regions(self) -> list[str]:
        return sorted({c.region for c in self.cases.values()})

    def modalities(self) -> list[str]:
        return sorted({m for c in self.cases.values() for m in c.modalities})

    def browse(
        self, region: str | None = None, modality: str | None = None, diagnosis: str = ""
    ) -> list[TeachingCase]:
        """Cases matching all given filters; `diagnosis` is a case-insensitive substring
        of the diagnosis or title ("any"/empty means no filter)."""
        wanted = _norm(diagnosis)
        out = []
        for case in self.cases.values():
            if region and region != "any" and case.region != region:
                continue
            if modality and modality != "any" and modality not in case.modalities:
                continue
            if wanted and wanted not in _norm(case.diagnosis) and wanted not in _norm(case.title):
                continue
            out.append(case)
        return out

    def quiz_order(self, seed: int = QUIZ_SEED, split: str = QUIZ_SPLIT) -> list[str]:
        """Validation cases in a seeded, reproducible order."""
        ids = sorted(cid for cid, c in self.cases.items() if c.split == split)
        random.Random(seed).shuffle(ids)
        return ids


@lru_cache(maxsize=4)
def load_library(data_dir: str) -> TeachingLibrary | None:
    """Loaded once per data folder and process (the JSON is ~10 MB)."""
    return TeachingLibrary.load(data_dir)


# ---------------------------------------------------------------- scoring

_STOP = frozenset(
    "a an the of and or with without in on at to by for from as is are was were be "
    "left right bilateral consistent likely probable possible suspected confirmed caused "
    "due secondary vs versus type case".split()
)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)]|[a-z][.)])\s*", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", str(text or "").lower()).split())


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "is", "us")):
        return word[:-1]
    return word


def content_tokens(text: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in _norm(text).split() if w not in _STOP)


def split_items(text: str) -> tuple[str, ...]:
    """A typed or written differential as separate items (lines, ';', ',' or numbering)."""
    items: list[str] = []
    for line in str(text or "").splitlines():
        for part in re.split(r"[;,]|\s\d+[.)]\s", line):
            part = _BULLET.sub("", part).strip(" .")
            if part:
                items.append(part)
    return tuple(items)


def simple_match(answer: str, diagnosis: str) -> bool:
    """Normalised containment: the answer names the whole diagnosis, or is a large enough
    part of it ("meningioma" for "atypical meningioma"; not "mass" for a 4-word name)."""
    a, d = content_tokens(answer), content_tokens(diagnosis)
    if not a or not d:
        return False
    if d <= a:
        return True
    if a <= d:
        share = len(a) / len(d)
        return share >= 0.5 or (len(a) >= 2 and share >= 1 / 3)
    return False


def _matcher():
    """(item, diagnosis) -> bool: the notes helper's diagnosis matcher when present (it knows
    British spellings, stems and generic words), else `simple_match`."""
    try:
        from imaging.ddx import matcher
    except ImportError:
        return simple_match
    return lambda item, target: matcher.matches(target, [item])


@dataclass(frozen=True)
class QuizScore:
    rank: int | None  # 1-based position of the first item matching the diagnosis
    hit1: bool
    hit5: bool
    items: tuple[str, ...]


def score_differential(answer: str, case: TeachingCase) -> QuizScore:
    """hit@1 / hit@5 of the trainee's ordered differential against the case diagnosis
    (its title counts too: MedPix titles are often the cleaner name)."""
    items = split_items(answer)
    match = _matcher()
    targets = [t for t in (case.diagnosis, case.title) if t]
    rank = next(
        (i + 1 for i, item in enumerate(items) if any(match(item, t) for t in targets)), None
    )
    return QuizScore(rank, rank == 1, rank is not None and rank <= 5, items)


@dataclass(frozen=True)
class Tally:
    answered: int = 0
    hit1: int = 0
    hit5: int = 0

    def add(self, score: QuizScore) -> Tally:
        return Tally(self.answered + 1, self.hit1 + int(score.hit1), self.hit5 + int(score.hit5))

    def text(self) -> str:
        if not self.answered:
            return "No questions answered yet this session."
        return (
            f"Session: {self.answered} answered · hit@1 {self.hit1}/{self.answered} "
            f"({self.hit1 / self.answered:.0%}) · hit@5 {self.hit5}/{self.answered} "
            f"({self.hit5 / self.answered:.0%})"
        )
